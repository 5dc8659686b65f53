"""The registry's side of partition 0 of ``_schemas``, in a cluster as on one broker: Confluent's ``KafkaStore``
(a producer with acks=all to the partition's leader) and its ``KafkaStoreReaderThread`` (a consumer of what
is below the high watermark).

Reading. Records are applied in offset order, each once, from ``next_offset`` on, and only below a high
watermark: what every in-sync replica has, so what no leader change can take back, and what every broker's
registry reads the same. ``follow`` reads the local replica where this broker has one (up to its high
watermark, which on a follower is what the leader told it); ``catch_up`` asks the leader with Fetch over
kbroker's client (a broker without a replica, or a registry that must see everything the leader has before
it writes). Both apply the same records, so either may be ahead of the other.

Writing. ``write`` appends a request's records as one batch, on condition that the log ends at
``next_offset`` (conditional.py): a local append when this broker leads, else Produce with acks=all to the
leader over the inter-broker listener. It answers the last offset written once the in-sync replicas have it,
None when the condition failed (another registry wrote first: read on and compute again), and raises
``Unavailable`` when the outcome is not known or the partition cannot take writes now (no leader, the leader
moved, not enough replicas, a timeout): the registry then reads again and retries until its deadline.

The topic: ``_schemas`` is followed by identity; when it is deleted or made anew (the control plane's
reset), ``on_reset`` is called and reading starts again from the new topic's start.

Concurrency: the event loop; ``follow`` does not suspend, ``catch_up`` and ``write`` do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..client.node_connections import NodeConnections, NodeUnreachable
from ..client.protocol import ClientError
from ..errors import ErrorCode, KafkaError
from ..records.batch import iter_batches
from ..records.builder import build_batch
from ..records.errors import CorruptRecordError
from ..records.record import Record, decode_records
from ..wire.messages import fetch, produce
from . import errors as E
from .conditional import CONFLICT_PREFIX, EXPECTED_OFFSET_HEADER, SCHEMAS_TOPIC

READ_CHUNK_BYTES = 1 << 20
FETCH_MAX_BYTES = 8 << 20
LONG_POLL_MS = 500  # a read that waits for the next record (after a lost race) waits at most this per Fetch
REQUEST_TIMEOUT_S = 10.0
# Versions that name topics by name (Fetch v13 and Produce v13 name them by id); every kbroker serves them.
FETCH_VERSION, PRODUCE_VERSION = 12, 9
FETCH_KEY, PRODUCE_KEY = 1, 0
# Produce errors that no retry mends: the registry reports them at once.
_FINAL_ERRORS = {ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.INVALID_RECORD,
                 ErrorCode.CORRUPT_MESSAGE, ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.UNSUPPORTED_VERSION,
                 ErrorCode.INVALID_TOPIC_EXCEPTION, ErrorCode.POLICY_VIOLATION}


class Unavailable(Exception):
    """The partition cannot be read or written now, or a write's outcome is unknown: read again and retry."""


def _error_name(code: int) -> str:
    return ClientError(code).name  # Kafka's name for the code, or UNKNOWN_ERROR_CODE_<n>


class KafkaStore:
    def __init__(self, state, apply: Callable[[int, bytes, bytes | None], None], on_reset: Callable[[], None]):
        """``apply(offset, key, value)``: one keyed record, in offset order; ``on_reset()``: the topic went away
        or was made anew, forget everything applied."""
        self.state = state
        self._apply = apply
        self._on_reset = on_reset
        self.topic = None
        self.next_offset = 0  # everything below it is applied
        self._nodes = NodeConnections(f"kbroker-schema-registry-{state.node_id}", REQUEST_TIMEOUT_S,
                                      connect=state.inter_broker.connect)

    async def close(self) -> None:
        await self._nodes.close()

    # -- reading -----------------------------------------------------------------------------------

    def partition(self):
        """Partition 0 of the followed ``_schemas`` (after ``follow``), or None."""
        return None if self.topic is None else self.topic.partitions[0]

    def follow(self) -> None:
        """Follow the topic's identity, then apply the local replica's records below its high watermark."""
        topic = self.state.topics.get(SCHEMAS_TOPIC)
        if topic is not self.topic:
            self._on_reset()
            self.topic, self.next_offset = topic, 0
        p = self.partition()
        if p is None or p.log is None:
            return
        end = p.high_watermark
        self.next_offset = max(self.next_offset, p.log_start_offset)
        while self.next_offset < end:
            before = self.next_offset
            for chunk in p.read(before, READ_CHUNK_BYTES, True, max_offset=end):
                self._apply_batches(chunk, end)
            if self.next_offset == before:
                break  # nothing whole was read: left for the next call

    def _apply_batches(self, data, end: int) -> None:
        """Apply the keyed data records of the whole batches in ``data`` from ``next_offset`` to ``end``."""
        start = self.next_offset
        for pos, h in iter_batches(data):
            if h.base_offset >= end:  # nothing is left below ``end`` (compaction removed it)
                self.next_offset = max(self.next_offset, end)
                break
            if h.last_offset < start:
                continue
            if not h.is_control:
                for rec in decode_records(data, pos, h):
                    if start <= rec.offset < end and rec.key is not None:
                        self._apply(rec.offset, bytes(rec.key), None if rec.value is None else bytes(rec.value))
            self.next_offset = max(self.next_offset, min(h.last_offset + 1, end))

    def _leader(self):
        """(partition, leader id, its endpoint) of the followed topic; Unavailable without a live leader."""
        p = self.partition()
        if p is None:
            raise Unavailable("the _schemas topic does not exist")
        leader = p.leader_id
        endpoint = None if leader < 0 else self.state.live_endpoint(leader, self.state.inter_broker.listener_name)
        if endpoint is None:
            raise Unavailable(f"_schemas-0 has no live leader (leader {leader})")
        return p, leader, endpoint

    async def catch_up(self, deadline: float, at_least: int = 0, wait_for_more: bool = False) -> None:
        """Apply what the leader has below its high watermark, until a Fetch finds nothing more and
        ``next_offset`` is at least ``at_least``; ``wait_for_more``: the first Fetch long-polls (a write is in
        flight past our position). Unavailable when the leader cannot be read, or not enough in time."""
        self.follow()
        waits = wait_for_more
        while True:
            p, leader, endpoint = self._leader()
            if leader == self.state.node_id:  # the local replica is the leader's log
                if waits or self.next_offset < at_least:
                    target = max(at_least, p.log_end_offset if waits else 0)
                    error = await p.wait_for_high_watermark(target, max(0.0, min(deadline - time.monotonic(),
                                                                                 LONG_POLL_MS / 1000)))
                    self.follow()
                    if error not in (0, ErrorCode.REQUEST_TIMED_OUT):
                        raise Unavailable(f"_schemas-0: {_error_name(error)}")
                if self.next_offset >= at_least:
                    return
                waits = False
            else:
                hw = await self._fetch(leader, endpoint, deadline, waits or self.next_offset < at_least)
                waits = False
                if self.next_offset >= max(hw, at_least):
                    return
            if time.monotonic() >= deadline:
                raise Unavailable("_schemas-0: not read to the leader's high watermark in time")

    async def _fetch(self, leader: int, endpoint, deadline: float, long_poll: bool) -> int:
        """One Fetch from ``next_offset``; applies what it answers below the high watermark, returns that."""
        F = fetch.FetchRequest
        wait_ms = int(max(0.0, min(deadline - time.monotonic(), LONG_POLL_MS / 1000)) * 1000) if long_poll else 0
        request = F(replica_id=-1, max_wait_ms=wait_ms, min_bytes=1 if wait_ms else 0, max_bytes=FETCH_MAX_BYTES,
                    isolation_level=0, session_id=0, session_epoch=-1, topics=[F.FetchTopic(
                        topic=SCHEMAS_TOPIC, partitions=[F.FetchPartition(
                            partition=0, fetch_offset=self.next_offset, partition_max_bytes=FETCH_MAX_BYTES)])])
        topic = self.topic
        try:
            resp = await self._nodes.send(leader, endpoint, FETCH_KEY, request, FETCH_VERSION)
        except NodeUnreachable as e:
            raise Unavailable(str(e)) from None
        if self.topic is not topic:
            raise Unavailable("_schemas was deleted or made anew meanwhile")
        if resp.error_code:
            raise Unavailable(f"Fetch from broker {leader}: {_error_name(resp.error_code)}")
        part = resp.responses[0].partitions[0]
        if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE and 0 <= self.next_offset < part.log_start_offset:
            self.next_offset = part.log_start_offset  # records removed (DeleteRecords): nothing to apply there
            return part.high_watermark
        if part.error_code:
            raise Unavailable(f"Fetch of _schemas-0 from broker {leader}: {_error_name(part.error_code)}")
        if part.records:
            try:
                self._apply_batches(part.records, part.high_watermark)
            except CorruptRecordError as e:
                raise Unavailable(f"Fetch of _schemas-0 from broker {leader}: {e}") from None
        return part.high_watermark

    # -- writing -----------------------------------------------------------------------------------

    async def write(self, records: list[tuple[bytes, bytes | None]], deadline: float) -> int | None:
        """Append ``records`` as one batch if the log ends at ``next_offset``; see the module docstring."""
        p, leader, endpoint = self._leader()
        expected = self.next_offset
        now = int(time.time() * 1000)
        batch = build_batch([Record(i, now, k, v, ((EXPECTED_OFFSET_HEADER, str(expected).encode()),) if i == 0
                                    else ()) for i, (k, v) in enumerate(records)], base_offset=0)
        remaining = max(0.0, deadline - time.monotonic())
        if leader == self.state.node_id:
            if p.log_end_offset != expected:
                return None
            try:
                base, _ = p.append(batch, max(self.topic.max_message_bytes, len(batch)), self.topic.log_append_time,
                                   required_acks=-1)
            except KafkaError as e:
                if e.code == ErrorCode.NOT_ENOUGH_REPLICAS:
                    raise Unavailable(e.message) from None
                raise E.RegistryError(500, E.STORE_ERROR, f"Error while writing to the _schemas topic: "
                                                          f"{e.message}") from None
            except OSError as e:
                raise E.RegistryError(500, E.STORE_ERROR, f"Error while writing to the _schemas topic: {e}") from None
            last = base + len(records) - 1
            error = await p.wait_for_high_watermark(last + 1, remaining)
            if error == 0:
                error = p.check_enough_replicas(last + 1) or 0
            if error:
                raise Unavailable(f"_schemas-0 offset {last}: {_error_name(error)}")
            return last
        P = produce.ProduceRequest
        request = P(acks=-1, timeout_ms=int(remaining * 1000), topic_data=[P.TopicProduceData(
            name=SCHEMAS_TOPIC, partition_data=[P.PartitionProduceData(index=0, records=batch)])])
        try:
            resp = await self._nodes.send(leader, endpoint, PRODUCE_KEY, request, PRODUCE_VERSION)
        except NodeUnreachable as e:
            raise Unavailable(str(e)) from None
        part = resp.responses[0].partition_responses[0]
        if part.error_code == 0:
            return part.base_offset + len(records) - 1
        message = part.error_message or ""
        if part.error_code == ErrorCode.INVALID_RECORD and message.startswith(CONFLICT_PREFIX):
            return None
        if part.error_code in _FINAL_ERRORS:
            raise E.RegistryError(500, E.STORE_ERROR, f"Error while writing to the _schemas topic: "
                                                      f"{_error_name(part.error_code)} {message}".rstrip())
        raise Unavailable(f"Produce to _schemas-0 on broker {leader}: {_error_name(part.error_code)}")
