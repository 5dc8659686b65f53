"""A partition as a replica: its leader epoch, its log, the high watermark's one rule, the fetchers waiting.

Handlers reach a partition one way, as Kafka's ReplicaManager and Partition do it:
``get_partition_or_error(topic, index, current_leader_epoch)`` returns the ``Partition`` or the error code
to answer with: UNKNOWN_TOPIC_OR_PARTITION for a topic or index the broker does not have, then the
current-leader-epoch check (``Partition.check_current_leader_epoch``, Kafka's checkCurrentLeaderEpoch):
FENCED_LEADER_EPOCH when the client's epoch is older than the partition's, UNKNOWN_LEADER_EPOCH when it is
newer. ``None`` skips the check: what a request sends when it has no epoch (Kafka: -1 in ListOffsets and
OffsetForLeaderEpoch, any negative value in Fetch; ``NO_EPOCH`` and ``fetch_epoch`` below).

The log, its offsets, producer state, transactions and leader-epoch cache are the ``UnifiedLog``
(``kbroker/log/``); a partition holds one in ``log`` and nothing outside the two touches the log's store.

Leadership. A partition is a replica on this broker when the broker is in its replicas (the controller's
``PartitionRegistration``, controller.py); only then does it have a log. ``get_partition_or_error`` answers
NOT_LEADER_OR_FOLLOWER for a partition this broker does not lead, with the leader and its epoch on the
``Partition`` for KIP-951's current-leader hints. ``update`` applies the controller's newer state:
becoming the leader (Kafka's makeLeader) starts a leader epoch in the log; losing leadership wakes the
long-polling fetches so they answer at once.

The high watermark. On one broker the leader is the whole in-sync replica set, so the high watermark is
the log end offset as soon as an append is written: ``_maybe_increment_leader_hw`` says so, and it is
the only place that does (after every append and marker, and when the partition becomes leader at
start-up). A replicated partition changes this one method to the smallest log end offset of its ISR.

Concurrency: everything here runs on the event loop, and appends do not await, so no two appends to a
partition interleave. Fetchers waiting for data register a future with ``wait_for_append``; an append wakes
all of them at once (no timers that poll).
"""

from __future__ import annotations

import asyncio

from .errors import ErrorCode, KafkaError
from .log.unified_log import UnifiedLog

NO_EPOCH = -1  # a request's current leader epoch when the client has none (RecordBatch.NO_PARTITION_LEADER_EPOCH)


def fetch_epoch(current_leader_epoch: int) -> int | None:
    """A Fetch partition's current leader epoch as the check takes it: Kafka's FetchRequest ignores every
    negative value, where ListOffsets and OffsetForLeaderEpoch ignore only -1."""
    return None if current_leader_epoch < 0 else current_leader_epoch


def request_epoch(current_leader_epoch: int) -> int | None:
    """A ListOffsets or OffsetForLeaderEpoch partition's current leader epoch as the check takes it."""
    return None if current_leader_epoch == NO_EPOCH else current_leader_epoch


def get_partition_or_error(topic, index: int, current_leader_epoch: int | None = None):
    """The ``Partition`` ``index`` of ``topic`` (a Topic or None), or the error code to answer with.

    Kafka's ReplicaManager.getPartitionOrError followed, when the request carries a current leader epoch
    (not None), by Partition.checkCurrentLeaderEpoch."""
    if topic is None or not 0 <= index < len(topic.partitions):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    partition = topic.partitions[index]
    if not partition.is_leader:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if current_leader_epoch is not None:
        error = partition.check_current_leader_epoch(current_leader_epoch)
        if error:
            return error
    return partition


class Partition:
    __slots__ = ("topic", "index", "log", "leader_epoch", "_waiters", "changes", "node_id", "leader_id",
                 "replicas", "isr", "partition_epoch")

    def __init__(self, topic, index: int, store, leader_epoch: int = 0, changes=None, node_id: int = 0,
                 registration=None):
        """``store``: the partition's log store (``LogStore.open_log``), None when this broker is not one of
        its replicas; the partition makes its log of it. ``registration``: the controller's state of the
        partition (``controller.PartitionRegistration``); without one, this broker is its only replica and
        leader (a partition outside a cluster, as unit tests make them)."""
        self.changes = changes
        self.topic = topic  # the Topic this partition belongs to
        self.index = index
        self.node_id = node_id
        self.log = None if store is None else \
            UnifiedLog(f"{topic.name}-{index}" if topic is not None else str(index), store)
        self._waiters: list[asyncio.Future] = []
        if registration is None:
            self.replicas, self.isr, self.leader_id, self.partition_epoch = [node_id], [node_id], node_id, 0
            self.leader_epoch = leader_epoch
        else:
            self.replicas, self.isr = list(registration.replicas), list(registration.isr)
            self.leader_id, self.leader_epoch = registration.leader, registration.leader_epoch
            self.partition_epoch = registration.partition_epoch
        if self.is_leader:
            self._make_leader()

    @property
    def is_leader(self) -> bool:
        return self.log is not None and self.leader_id == self.node_id

    def update(self, registration) -> None:
        """The controller's newer state of this partition (leader, epochs, ISR); see the module docstring."""
        was_leader = self.is_leader
        self.replicas, self.isr = list(registration.replicas), list(registration.isr)
        self.leader_id, self.leader_epoch = registration.leader, registration.leader_epoch
        self.partition_epoch = registration.partition_epoch
        if self.is_leader:
            self._make_leader()
        elif was_leader:
            self.wake_waiters()  # long-polling fetches answer now; their next request is told of the new leader

    def _make_leader(self) -> None:
        """This broker leads the partition from now on, at ``leader_epoch`` (Kafka's makeLeader)."""
        self.log.maybe_assign_epoch_start_offset(self.leader_epoch, self.log.log_end_offset)
        self._maybe_increment_leader_hw()

    def _maybe_increment_leader_hw(self) -> bool:
        """The one place the high watermark advances: to the log end offset, since on one broker the leader
        is the whole ISR. True if it moved."""
        log = self.log
        return log.maybe_increment_high_watermark(log.log_end_offset)

    def check_current_leader_epoch(self, current_leader_epoch: int | None) -> int:
        """0, or FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when the client's epoch is older / newer than
        ours (Kafka's Partition.checkCurrentLeaderEpoch); None: the request has none, nothing to check."""
        if current_leader_epoch is None or current_leader_epoch == self.leader_epoch:
            return 0
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    # -- offsets -------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset

    # -- writes --------------------------------------------------------------

    def append(self, records, max_message_bytes: int, log_append_time: bool,
               produce_version: int | None = None) -> tuple[int, int]:
        """Append a producer's record batches as the leader (Kafka's appendRecordsToLeader); returns
        (base offset, log append time or -1). Raises KafkaError (see ``UnifiedLog.append_as_leader``)."""
        topic = self.topic
        compacted = topic is not None and "compact" in topic.config("cleanup.policy")
        bounds = None if topic is None or log_append_time else (
            int(topic.config("message.timestamp.before.max.ms")), int(topic.config("message.timestamp.after.max.ms")))
        result = self.log.append_as_leader(records, self.leader_epoch, max_message_bytes, log_append_time,
                                           compacted, produce_version, bounds)
        self._maybe_increment_leader_hw()
        self.wake_waiters()
        return result

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int = 0) -> int:
        """Append a COMMIT or ABORT control batch for a producer's transaction; returns its offset."""
        offset = self.log.append_txn_marker(producer_id, producer_epoch, commit, self.leader_epoch,
                                            coordinator_epoch)
        self._maybe_increment_leader_hw()
        self.wake_waiters()
        return offset

    def delete_records_on_leader(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to ``offset`` (-1: the high watermark); returns the new
        low watermark. OFFSET_OUT_OF_RANGE below 0 or past the high watermark (Kafka's deleteRecordsOnLeader)."""
        log = self.log
        converted = log.high_watermark if offset == -1 else offset
        if converted < 0:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"The offset {converted} for partition {log.name} "
                             "is not valid")
        log.maybe_increment_log_start_offset(converted)
        return log.log_start_offset

    # -- reads ---------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, min_one_batch: bool = True, max_offset: int | None = None,
             regions: bool = False) -> list:
        """Whole batches from the one containing ``offset`` (see ``UnifiedLog.read``)."""
        return self.log.read(offset, max_bytes, min_one_batch, max_offset, regions)

    def aborted_transactions(self, fetch_offset: int, upper_offset: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions that overlap [fetch_offset, upper_offset)."""
        return self.log.collect_aborted_txns(fetch_offset, upper_offset)

    def last_offset_for_leader_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """``(epoch, end offset)`` of ``leader_epoch`` for OffsetForLeaderEpoch; (-1, -1) when unknown."""
        return self.log.end_offset_for_epoch(leader_epoch)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int]:
        """(timestamp, offset) of the first record at or after ``timestamp_ms``; (-1, -1) if there is none."""
        return self.log.offset_for_timestamp(timestamp_ms)

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the record with the largest timestamp (KIP-734); (-1, -1) when empty."""
        return self.log.max_timestamp()

    def active_producer_state(self) -> list:
        """``(producer id, state entry, first offset of its open transaction or -1)`` (DescribeProducers)."""
        return self.log.active_producers()

    def size_bytes(self) -> int:
        return self.log.size_bytes()

    # -- waiting for appends ---------------------------------------------------

    def wait_for_append(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def wake_waiters(self) -> None:
        """Answer whoever waits on this partition: the long-polling fetches (``wait_for_append``) and the
        broker's change notifier. Called on an append, and by whoever deletes the partition or stops the broker."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        if self.changes is not None:
            self.changes.notify()

    def discard_waiter(self, fut: asyncio.Future) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass
