"""server.close_unstarted: an answer task cancelled before it ran closes every coroutine it was handed, also
one wrapped as AwaitingReplication (a Produce waiting for acks=all), so none is reported "never awaited"."""

import inspect

from kbroker.handlers.context import AwaitingReplication
from kbroker.server import close_unstarted


async def _handler_wait():
    return "answer"


async def _answer(awaitable):
    return await awaitable


def test_an_unstarted_answer_closes_the_coroutines_it_was_given():
    inner = _handler_wait()
    outer = _answer(inner)
    close_unstarted(outer)
    assert inspect.getcoroutinestate(outer) == inspect.CORO_CLOSED
    assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED


def test_a_wait_for_replication_is_closed_through_its_wrapper():
    inner = _handler_wait()
    outer = _answer(AwaitingReplication(inner))
    close_unstarted(outer)
    assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED

