"""Where the coordinators live: one shard per partition of an internal topic that this broker leads, loaded
from that partition's records (Kafka's CoordinatorRuntime, CoordinatorLoaderImpl and partitionFor).

Placement. A group id hashes onto a partition of ``__consumer_offsets`` and a transactional id onto one of
``__transaction_state``: ``abs(String.hashCode(key)) % partitions`` with Java's hash over UTF-16 code units
and Kafka's ``Utils.abs`` (Integer.MIN_VALUE -> 0). The coordinator of the key is that partition's leader.

Records. A shard's state is kept as records of its partition (coordinator/records.py), appended through
``Partition.append`` as one batch per change (a batch is appended whole or not at all, so one change is one
step), and read back from the log start when a broker becomes the leader (``CoordinatorLog.replay``).

Life cycle (``CoordinatorShards``). The broker tells it of every change of the internal topic's partitions
(``BrokerState.on_topic_change``, the MetadataListener hook): a partition this broker now leads, at a new
leader epoch, is loaded on the next turn of the event loop (meanwhile its keys are answered
COORDINATOR_LOAD_IN_PROGRESS, as Kafka's loading partitions); one it no longer leads is unloaded at once
(its shard closed: waiting requests answer NOT_COORDINATOR; later requests too, since the shard is gone).

Replication. A change is answered once its records are replicated: ``CoordinatorLog.wait_replicated`` is the
one place that waits for that. With one replica the high watermark moves on the append itself.

Concurrency: the event loop only; a load reads the whole partition in one step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import ErrorCode, KafkaError
from ..records.batch import iter_batches
from ..records.builder import build_batch
from ..records.record import Record, decode_records

log = logging.getLogger("kbroker.coordinator.runtime")

OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
READ_CHUNK_BYTES = 1 << 20
REPLICATION_TIMEOUT_S = 5.0  # Kafka's offsets.commit.timeout.ms / the coordinator runtime's write timeout


def java_string_hash(s: str) -> int:
    """Java's String.hashCode: s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units, in 32-bit arithmetic."""
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, num_partitions: int) -> int:
    """The internal-topic partition of a group id or transactional id (Kafka's partitionFor, Utils.abs)."""
    h = java_string_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


class CoordinatorLog:
    """A partition of an internal topic as one shard's record log: changes in, records out."""

    def __init__(self, partition) -> None:
        self.partition = partition
        self.last_offset = -1  # of the last record appended by this shard (what a reply waits for)

    def append(self, records: list[tuple[bytes, bytes | None]]) -> int:
        """Appends (key, value) records as one batch through the partition's own append path; returns the last
        offset. Raises KafkaError (NOT_COORDINATOR when the partition is no longer led here) or OSError, and
        then nothing was written."""
        p = self.partition
        if not p.is_leader:
            raise KafkaError(ErrorCode.NOT_COORDINATOR, f"{p.topic.name}-{p.index} is not led by this broker")
        now = int(time.time() * 1000)
        batch = build_batch([Record(i, now, k, v) for i, (k, v) in enumerate(records)], base_offset=0)
        base, _ = p.append(batch, max(p.topic.max_message_bytes, len(batch)), False)
        self.last_offset = base + len(records) - 1
        return self.last_offset

    async def wait_replicated(self, offset: int | None = None) -> None:
        """Completes once the record at ``offset`` (default: the last appended) is below the high watermark:
        replicated to the ISR (at once with one replica). The one place a coordinator waits for replication.
        Raises KafkaError with the code Kafka's coordinators answer when the write cannot be confirmed:
        NOT_COORDINATOR when this broker stops leading the partition meanwhile, COORDINATOR_NOT_AVAILABLE
        after ``REPLICATION_TIMEOUT_S`` (Kafka: offsets.commit.timeout.ms, 5 s)."""
        target = (self.last_offset if offset is None else offset) + 1
        error = await self.partition.wait_for_high_watermark(target, REPLICATION_TIMEOUT_S)
        if error == ErrorCode.NOT_LEADER_OR_FOLLOWER:
            raise KafkaError(ErrorCode.NOT_COORDINATOR, "the coordinator's partition moved to another broker")
        if error:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "the write was not replicated in time")

    def replay(self, apply: Callable[[int, bytes, bytes | None], None], up_to: int | None = None) -> int:
        """Calls ``apply(offset, key, value)`` for every keyed data record from the log start to ``up_to``
        (default: the log end, as Kafka's coordinator loader reads), in order; control batches and records
        without a key are skipped. Returns the number of records."""
        p = self.partition
        offset, end, n = p.log_start_offset, p.log_end_offset if up_to is None else up_to, 0
        while offset < end:
            chunks = p.read(offset, READ_CHUNK_BYTES)
            if not chunks:
                break
            for chunk in chunks:
                for pos, h in iter_batches(chunk):
                    offset = h.last_offset + 1
                    if h.is_control:
                        continue
                    for rec in decode_records(chunk, pos, h):
                        if rec.key is not None:
                            apply(rec.offset, bytes(rec.key), None if rec.value is None else bytes(rec.value))
                            n += 1
        return n


Shard = TypeVar("Shard")


class CoordinatorShards(Generic[Shard]):
    """The shards of one internal topic on this broker: loaded when it becomes a partition's leader, unloaded
    when it stops being one. ``make_shard(index, log)`` builds a shard and reads its state from the log;
    ``shard.load()`` makes it serve and ``shard.close()`` ends it."""

    def __init__(self, topic_name: str, make_shard: Callable[[int, CoordinatorLog], Shard]) -> None:
        self.topic_name = topic_name
        self._make_shard = make_shard
        self.shards: dict[int, Shard] = {}
        self.loading: dict[int, int] = {}  # partition -> the leader epoch being loaded
        self._epochs: dict[int, int] = {}  # partition -> the leader epoch its shard was loaded at
        self.closed = False

    def status(self, index: int) -> int:
        """NONE when the shard serves, COORDINATOR_LOAD_IN_PROGRESS while it loads, else NOT_COORDINATOR."""
        if index in self.shards:
            return ErrorCode.NONE
        if index in self.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NOT_COORDINATOR

    def on_topic(self, topic) -> None:
        """The internal topic changed (or was deleted: None): load and unload to match the partitions led here."""
        if self.closed:
            return
        led = {} if topic is None else {p.index: p for p in topic.partitions if p.is_leader}
        for index in list(self.shards) + list(self.loading):
            p = led.get(index)
            epoch = self._epochs.get(index, self.loading.get(index))
            if p is None or p.leader_epoch != epoch:
                self.unload(index)
        for index, p in led.items():
            if index not in self.shards and index not in self.loading:
                self._schedule_load(p)

    def _schedule_load(self, partition) -> None:
        index, epoch = partition.index, partition.leader_epoch
        self.loading[index] = epoch
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._load(partition, epoch)
        else:
            loop.call_soon(self._load, partition, epoch)

    def _load(self, partition, epoch: int) -> None:
        index = partition.index
        if self.closed or self.loading.get(index) != epoch:
            return  # unloaded, or a newer leadership meanwhile
        try:
            shard = self._make_shard(index, CoordinatorLog(partition))
            shard.load()
        except Exception:  # noqa: BLE001  a shard that cannot load stays unavailable; the broker goes on
            log.exception("%s-%d: loading the coordinator state failed", self.topic_name, index)
            del self.loading[index]
            return
        del self.loading[index]
        self.shards[index] = shard
        self._epochs[index] = epoch
        log.debug("%s-%d: coordinator loaded at leader epoch %d", self.topic_name, index, epoch)

    def reload(self, topic) -> None:
        """Reads every partition led here again (records were written past the shards: a migration)."""
        for index in list(self.shards) + list(self.loading):
            self.unload(index)
        self.on_topic(topic)

    def unload(self, index: int) -> None:
        self.loading.pop(index, None)
        self._epochs.pop(index, None)
        shard = self.shards.pop(index, None)
        if shard is not None:
            shard.close()
            log.debug("%s-%d: coordinator unloaded", self.topic_name, index)

    def close(self) -> None:
        for index in list(self.shards) + list(self.loading):
            self.unload(index)
        self.closed = True
