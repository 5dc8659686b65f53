"""A long-polling Fetch is answered on the event loop's next turn after the append that gives it data: the
append sets the one future the poll awaits, which schedules the poll's next step directly. Counted in turns
of the loop, not timed: after the append and a single yield to the loop, the answer has been written (with
asyncio.wait over a future per partition, the answer took a turn more: its callback on the future first)."""

from __future__ import annotations

import asyncio

from kbroker.records.builder import simple_batch
from kbroker.records.batch import iter_batches
from kbroker.records.record import decode_records
from kbroker.wire.messages import fetch
from kbroker.client import BlockingConnection
from support.topics import auto_create
from support.wait import wait_until

F = fetch.FetchRequest


def _consumer_connection(broker):
    """The broker's side of the one connection with a Fetch in flight (busy: its long poll is parked)."""
    busy = [c for s in broker._server.servers for c in s.connections if c.busy]
    return busy[0] if len(busy) == 1 else None


def test_a_parked_fetch_is_answered_on_the_loop_turn_after_the_append(broker, topic_name):
    c = BlockingConnection(broker.host, broker.port)
    auto_create(c, topic_name)
    c.send_bytes(c.frame(1, 12, F(replica_id=-1, max_wait_ms=60_000, min_bytes=1, max_bytes=1 << 20, topics=[
        F.FetchTopic(topic=topic_name, partitions=[F.FetchPartition(partition=0, fetch_offset=0,
                                                                    partition_max_bytes=1 << 20)])])))
    conn = wait_until(lambda: broker.call(lambda: _consumer_connection(broker)), what="the Fetch to be parked")
    state = broker._server.state

    async def append_then_one_turn():
        p = state.topics.get(topic_name).partitions[0]
        p.append(bytearray(simple_batch(b"v")), 1 << 20, False)
        assert conn.busy  # appended: the poll is woken, not yet answered
        await asyncio.sleep(0)  # one turn of the loop
        return conn.busy

    assert broker.call(append_then_one_turn) is False
    part = c.read_response(1, 12).responses[0].partitions[0]
    data = bytes(part.records)
    assert [r.value for pos, _h in iter_batches(data) for r in decode_records(data, pos)] == [b"v"]
