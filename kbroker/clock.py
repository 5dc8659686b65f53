"""Time for the stateful parts of kbroker, behind a seam so that tests can drive it.

A `Clock` reads the time (`now_ms`) and runs callbacks later (`call_later`). Two implementations:

* `AsyncioClock`, on the running asyncio loop: wall-clock milliseconds for timestamps that are stored or shown
  (commit timestamps, as Kafka's), the loop's monotonic timer for delays.
* `ManualClock`, for tests: time stands still until `advance(ms)`, which runs the callbacks that fall due, in order of
  due time (then of scheduling), each with `now_ms()` reading its own due time. Callbacks scheduled by a callback run in
  the same `advance` if they fall due within it.

Callbacks run on the caller's thread; both clocks assume one thread (the event loop), like everything that uses them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def call_later(self, delay_ms: int, callback: Callable[[], object]) -> TimerHandle: ...


class AsyncioClock:
    """The real clock. `loop` defaults to the loop running when a timer is first scheduled."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: int, callback: Callable[[], object]) -> asyncio.TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        return loop.call_later(max(delay_ms, 0) / 1000.0, callback)


class _ManualTimer:
    __slots__ = ("due_ms", "seq", "callback", "cancelled")

    def __init__(self, due_ms: int, seq: int, callback: Callable[[], object]) -> None:
        self.due_ms = due_ms
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _ManualTimer) -> bool:
        return (self.due_ms, self.seq) < (other.due_ms, other.seq)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms
        self._timers: list[_ManualTimer] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    def call_later(self, delay_ms: int, callback: Callable[[], object]) -> _ManualTimer:
        timer = _ManualTimer(self._now_ms + max(delay_ms, 0), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, ms: int) -> None:
        """Move time forward by `ms`, running every callback due by then."""
        if ms < 0:
            raise ValueError("time does not go backwards")
        target = self._now_ms + ms
        while self._timers and self._timers[0].due_ms <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now_ms = timer.due_ms
            timer.callback()
        self._now_ms = target

    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for t in self._timers if not t.cancelled)
