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

Replication (Kafka's Partition as leader). The leader keeps a ``ReplicaState`` per follower: the offset
the follower last fetched from (its log end offset) and the last time it had caught up with the leader
(``update_follower_fetch_state``, called by the Fetch handler for a follower's fetch). From them:

- the high watermark: ``_maybe_increment_leader_hw`` is the one place it advances, to the smallest log end
  offset over the ISR, the leader's own included (a follower that has not fetched since this broker became
  leader counts as unknown, so the HW waits for it). With the leader alone in the ISR (one broker, or a
  partition whose followers fell out) that is the log end offset as soon as an append is written, so the
  single-broker path costs one length check more than before.
- the ISR: a follower that fetches at or past the high watermark (and past the start of the current leader
  epoch) joins it (``_maybe_expand_isr``, Kafka's maybeExpandIsr); one that has not caught up with the
  leader's log end for ``replica.lag.time.max.ms`` leaves it (``maybe_shrink_isr``, run periodically by the
  broker). Both ask the controller (``alter_partition``, compare-and-set on the epochs); the answer comes
  back through ``update`` before the call returns (in process).
- acks=all: ``wait_for_high_watermark(offset, timeout_s)``, an awaitable woken when the high watermark moves
  (Kafka's DelayedProduce), and ``check_enough_replicas`` (Kafka's checkEnoughReplicasReachOffset).

As a follower (the broker is a replica, not the leader) the partition takes the leader's batches as they are
(``append_as_follower``: offsets and epochs already set), the leader's high watermark capped at its own log
end, and the leader's log start offset; the replica fetcher (replica_fetcher.py) drives it, and truncates it
(``truncate_to``) where it diverged from the leader, or wholly (``truncate_fully_and_start_at``) when its log
ends before the leader's log start offset.

Concurrency: everything here runs on the event loop, and appends do not await, so no two appends to a
partition interleave. Fetchers waiting for data register a future with ``wait_for_append``; an append wakes
all of them at once (no timers that poll). acks=all produces wait on ``wait_for_high_watermark``, woken
when the high watermark moves or leadership is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .controller import eager, run_now
from .errors import ErrorCode, KafkaError
from .log.unified_log import UnifiedLog

log = logging.getLogger("kbroker.partition")

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


class ReplicaState:
    """What the leader knows of one follower (Kafka's Replica): its log end offset as of its last fetch (-1:
    unknown since this broker became leader) and when it last had caught up with the leader."""
    __slots__ = ("log_end_offset", "log_start_offset", "last_caught_up_ms", "last_fetch_ms",
                 "last_fetch_leader_end_offset")

    def __init__(self, now_ms: float):
        self.log_end_offset = -1
        self.log_start_offset = -1  # as the follower's last fetch said (KIP-392: what it can serve)
        self.last_caught_up_ms = now_ms  # an ISR member is given a full lag period from the leader change
        self.last_fetch_ms = now_ms
        self.last_fetch_leader_end_offset = -1

    def update(self, fetch_offset: int, leader_end_offset: int, now_ms: float) -> None:
        """A fetch at ``fetch_offset`` (Kafka's Replica.updateFetchState): caught up now if it reached the
        leader's log end; caught up as of its previous fetch if it reached what the leader had then."""
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_end_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, self.last_fetch_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_end_offset = leader_end_offset
        self.last_fetch_ms = now_ms

    def caught_up(self, leader_end_offset: int, now_ms: float, lag_ms: float) -> bool:
        """Kafka's isCaughtUp: it has the whole log, or had caught up within ``replica.lag.time.max.ms``."""
        return self.log_end_offset == leader_end_offset or now_ms - self.last_caught_up_ms <= lag_ms


def now_ms() -> float:
    return time.monotonic() * 1000.0


def high_watermark_over(isr: list[int], leader_id: int, leader_end_offset: int, followers: dict) -> int:
    """The smallest log end offset over the ISR (the leader's own is ``leader_end_offset``; a follower
    without state counts as -1): where the high watermark may go."""
    hw = leader_end_offset
    for r in isr:
        if r != leader_id:
            state = followers.get(r)
            end = state.log_end_offset if state is not None else -1
            if end < hw:
                hw = end
    return hw


class Partition:
    __slots__ = ("topic", "index", "log", "leader_epoch", "_waiters", "changes", "node_id", "leader_id",
                 "replicas", "isr", "partition_epoch", "controller", "followers", "_hw_waiters",
                 "leader_epoch_start_offset", "on_follower_change", "isr_shrinks", "isr_expands", "pending_isr",
                 "deleted")

    def __init__(self, topic, index: int, store, leader_epoch: int = 0, changes=None, node_id: int = 0,
                 registration=None, controller=None):
        """``store``: the partition's log store (``LogStore.open_log``), None when this broker is not one of
        its replicas; the partition makes its log of it. ``registration``: the controller's state of the
        partition (``controller.PartitionRegistration``); without one, this broker is its only replica and
        leader (a partition outside a cluster, as unit tests make them). ``controller``: where ISR changes
        are asked for (None: the ISR never changes)."""
        self.changes = changes
        self.topic = topic  # the Topic this partition belongs to
        self.index = index
        self.node_id = node_id
        self.controller = controller
        self.log = None if store is None else \
            UnifiedLog(f"{topic.name}-{index}" if topic is not None else str(index), store)
        # Who waits on the partition: long-polling fetches, and acks=all produces by offset. An empty tuple
        # while nobody does (most partitions, most of the time): it is no object the garbage collector
        # examines, where an empty list is (two per partition of the ~30 a partition had).
        self._waiters: list[asyncio.Future] | tuple = ()
        self._hw_waiters: list[tuple[int, asyncio.Future]] | tuple = ()  # (offset, future)
        self.followers: dict[int, ReplicaState] = {}  # as leader: the followers' states
        self.leader_epoch_start_offset = 0
        self.on_follower_change = None  # the replica fetcher manager's hook: called when it must (re)consider us
        self.isr_shrinks = self.isr_expands = 0  # ISR changes this broker made as leader (metrics.py)
        # The ISR an AlterPartition asked for and the controller has not answered yet (a database's): one at a
        # time, and meanwhile the high watermark counts the members of both (Kafka's maximal ISR).
        self.pending_isr: list[int] | None = None
        self.deleted = False  # its topic was deleted (TopicManager.remove): whoever waits answers at once
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

    @property
    def is_follower(self) -> bool:
        """A replica here that another live-or-not broker leads (or none does): it fetches when one does."""
        return self.log is not None and self.leader_id != self.node_id

    def update(self, registration) -> None:
        """The controller's newer state of this partition (leader, epochs, ISR); see the module docstring."""
        was_leader = self.is_leader
        old_epoch = self.leader_epoch
        self.replicas, self.isr = list(registration.replicas), list(registration.isr)
        self.leader_id, self.leader_epoch = registration.leader, registration.leader_epoch
        self.partition_epoch = registration.partition_epoch
        if self.is_leader:
            if not was_leader or old_epoch != self.leader_epoch:
                self._make_leader()
            elif self._maybe_increment_leader_hw():  # the ISR shrank: the high watermark may move
                self.wake_waiters()
        elif was_leader:
            self.followers.clear()
            self.wake_waiters()  # long-polling fetches answer now; their next request is told of the new leader
        if self.log is not None and self.on_follower_change is not None and \
                (not self.is_leader or was_leader != self.is_leader or old_epoch != self.leader_epoch):
            self.on_follower_change(self)

    def open_replica(self, store) -> None:
        """This broker has become one of the partition's replicas (a reassignment adds it): its log, empty
        or as an earlier run left it, from which it fetches from the leader as any follower."""
        self.log = UnifiedLog(f"{self.topic.name}-{self.index}", store)

    def close_replica(self) -> None:
        """This broker is no longer one of the partition's replicas (a reassignment removed it): whoever
        waits answers (NOT_LEADER_OR_FOLLOWER), the fetcher lets it go, and the log is closed without a flush,
        its files about to be deleted (Kafka: StopReplica with deletePartition; in KRaft the broker removes
        the log of a partition it is no longer a replica of)."""
        log_, self.log = self.log, None
        self.followers.clear()
        if log_ is None:
            return
        waiters, self._hw_waiters = self._hw_waiters, ()
        for _offset, fut in waiters:
            if not fut.done():
                fut.set_result(None)
        log_.discard()
        self.wake_waiters()
        if self.on_follower_change is not None:
            self.on_follower_change(self)

    def _make_leader(self) -> None:
        """This broker leads the partition from now on, at ``leader_epoch`` (Kafka's makeLeader): the epoch
        starts at the log end; the followers' positions are unknown until they fetch, and those in the ISR
        get a full lag period from now."""
        log = self.log
        self.leader_epoch_start_offset = log.log_end_offset
        log.maybe_assign_epoch_start_offset(self.leader_epoch, log.log_end_offset)
        t = now_ms()
        self.followers = {r: ReplicaState(t) for r in self.replicas if r != self.node_id}
        if self._maybe_increment_leader_hw():
            self.wake_waiters()

    def _maybe_increment_leader_hw(self) -> bool:
        """The one place the high watermark advances: to the smallest log end offset of the ISR (the log
        end offset at once when the leader is the whole ISR). True if it moved."""
        log = self.log
        isr = self.isr
        if self.pending_isr is not None:
            isr = isr + [r for r in self.pending_isr if r not in isr]
        if len(isr) == 1:
            return log.maybe_increment_high_watermark(log.log_end_offset)
        return log.maybe_increment_high_watermark(
            high_watermark_over(isr, self.node_id, log.log_end_offset, self.followers))

    # -- the leader's view of its followers --------------------------------------------

    def update_follower_fetch_state(self, replica_id: int, fetch_offset: int, log_start_offset: int = -1) -> None:
        """A follower fetched at ``fetch_offset`` (it has everything before it): record it, then maybe let it
        into the ISR and maybe move the high watermark (Kafka's Partition.updateFollowerFetchState)."""
        state = self.followers.get(replica_id)
        if state is None:
            if replica_id not in self.replicas:
                return
            state = self.followers[replica_id] = ReplicaState(now_ms())
        moved = fetch_offset != state.log_end_offset
        state.update(fetch_offset, self.log.log_end_offset, now_ms())
        state.log_start_offset = log_start_offset
        if moved and self.changes is not None:  # a follower's position is news (KIP-392 picks replicas by it)
            self.changes.notify()
        if replica_id not in self.isr:
            self._maybe_expand_isr(replica_id, state)
            if not self.is_leader:  # the change completed a reassignment that moved leadership, or this replica
                return
        if self._maybe_increment_leader_hw():
            self.wake_waiters()

    def _maybe_expand_isr(self, replica_id: int, state: ReplicaState) -> None:
        """A follower at or past the high watermark and the start of this leader epoch is in sync again."""
        end = state.log_end_offset
        if end >= self.log.high_watermark and end >= self.leader_epoch_start_offset:
            if self._alter_isr(self.isr + [replica_id]):
                self.isr_expands += 1

    def out_of_sync_replicas(self, lag_ms: float, t: float | None = None) -> list[int]:
        """ISR members that have not caught up with the log end for ``lag_ms`` (Kafka's getOutOfSyncReplicas)."""
        t = now_ms() if t is None else t
        end = self.log.log_end_offset
        out = []
        for r in self.isr:
            if r != self.node_id:
                state = self.followers.get(r)
                if state is not None and not state.caught_up(end, t, lag_ms):
                    out.append(r)
        return out

    def maybe_shrink_isr(self, lag_ms: float, t: float | None = None) -> bool:
        """Drop the ISR members that lag by more than ``replica.lag.time.max.ms``; True if it asked."""
        if not self.is_leader or len(self.isr) == 1:
            return False
        lagging = self.out_of_sync_replicas(lag_ms, t)
        if not lagging:
            return False
        if not self._alter_isr([r for r in self.isr if r not in lagging]):
            return False
        self.isr_shrinks += 1
        return True

    def _alter_isr(self, isr: list[int]) -> bool:
        """Ask the controller for a new ISR at the epochs we know (AlterPartition); the change comes back
        through ``update``. False if it was refused (a newer state is on its way), another is in flight, or
        there is no controller. A controller that cannot answer at once (the database's) answers later:
        ``pending_isr`` holds the ask until then."""
        if self.controller is None or self.topic is None or self.pending_isr is not None:
            return False
        change = self.controller.alter_partition(self.topic.name, self.index, self.leader_epoch,
                                                 self.partition_epoch, self.node_id, isr)
        if self.controller.changes_complete_at_once:
            try:
                run_now(change)
            except KafkaError as e:
                self._isr_refused(isr, e)
                return False
            return True
        self.pending_isr = list(isr)
        try:
            fut = eager(change)
        except KafkaError as e:
            self.pending_isr = None
            self._isr_refused(isr, e)
            return False
        fut.add_done_callback(lambda f: self._isr_answered(f, isr))
        return True

    def _isr_answered(self, fut, isr: list[int]) -> None:
        self.pending_isr = None
        error = fut.exception() if not fut.cancelled() else None
        if error is not None:
            if isinstance(error, KafkaError):
                self._isr_refused(isr, error)
            else:
                log.warning("%s-%d: ISR change to %s failed: %s", self.topic.name, self.index, isr, error)
        if self.is_leader and self._maybe_increment_leader_hw():  # the maximal ISR is the ISR again
            self.wake_waiters()

    def _isr_refused(self, isr: list[int], e: KafkaError) -> None:
        log.info("%s-%d: ISR change to %s refused: %s", self.topic.name, self.index, isr, e.message)

    # -- acks=all ---------------------------------------------------------------------

    def min_insync_replicas(self) -> int:
        topic = self.topic
        return int(topic.config("min.insync.replicas")) if topic is not None else 1

    def check_enough_replicas(self, required_offset: int) -> int | None:
        """Where an acks=all append that ends at ``required_offset`` stands (Kafka's
        checkEnoughReplicasReachOffset): None while the high watermark is below it; then 0, or
        NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below min.insync.replicas meanwhile;
        NOT_LEADER_OR_FOLLOWER once this broker no longer leads."""
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.log.high_watermark < required_offset:
            return None
        isr = len(self.isr)
        if isr < len(self.replicas) and isr < self.min_insync_replicas():  # a full ISR passed the append's check
            return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return 0

    async def wait_for_high_watermark(self, offset: int, timeout_s: float | None) -> int:
        """Wait until the high watermark reaches ``offset`` (every ISR member has everything before it):
        0 then; NOT_LEADER_OR_FOLLOWER if this broker stops leading first; UNKNOWN_TOPIC_OR_PARTITION if
        the topic is deleted meanwhile (Kafka's DelayedProduce finds the partition gone); REQUEST_TIMED_OUT
        after ``timeout_s`` (None: no limit). Woken by the high watermark's moves, never by a timer that polls."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            if self.deleted:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if not self.is_leader:
                return ErrorCode.NOT_LEADER_OR_FOLLOWER
            if self.log.high_watermark >= offset:
                return 0
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return ErrorCode.REQUEST_TIMED_OUT
            fut = loop.create_future()
            entry = (offset, fut)
            if self._hw_waiters:
                self._hw_waiters.append(entry)
            else:
                self._hw_waiters = [entry]
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if (not fut.done() or fut.cancelled()) and entry in self._hw_waiters:
                    self._hw_waiters.remove(entry)

    def _wake_hw_waiters(self) -> None:
        leading = self.is_leader and not self.deleted
        hw = self.log.high_watermark if leading else 0
        keep = []
        for offset, fut in self._hw_waiters:
            if not leading or offset <= hw:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((offset, fut))
        self._hw_waiters = keep or ()

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
               produce_version: int | None = None, required_acks: int = 1) -> tuple[int, int]:
        """Append a producer's record batches as the leader (Kafka's appendRecordsToLeader); returns
        (base offset, log append time or -1). Raises KafkaError (see ``UnifiedLog.append_as_leader``), and
        NOT_ENOUGH_REPLICAS for acks=all while the ISR is smaller than min.insync.replicas."""
        topic = self.topic
        if required_acks == -1 and len(self.isr) < self.min_insync_replicas():
            raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS,
                             f"The size of the current ISR {self.isr} is insufficient to satisfy the min.isr "
                             f"requirement of {self.min_insync_replicas()} for partition {self.log.name}")
        if topic is None:
            compacted, bounds = False, None
        else:
            settings = topic.produce_settings()
            compacted = settings.compacted
            bounds = None if log_append_time else settings.timestamp_bounds
        result = self.log.append_as_leader(records, self.leader_epoch, max_message_bytes, log_append_time,
                                           compacted, produce_version, bounds)
        self._maybe_increment_leader_hw()
        self.wake_waiters()
        return result

    def append_as_follower(self, records, leader_high_watermark: int, leader_log_start_offset: int) -> int:
        """The leader's batches, as they are (Kafka's appendRecordsToFollowerOrFutureReplica), then its high
        watermark capped at our log end and its log start offset; returns the bytes appended."""
        log = self.log
        size = log.append_as_follower(records) if records else 0
        hw = log.high_watermark
        log.set_follower_high_watermark(leader_high_watermark)
        if leader_log_start_offset > log.log_start_offset:
            log.maybe_increment_log_start_offset(min(leader_log_start_offset, log.high_watermark))
        if size or hw != log.high_watermark:
            self.wake_waiters()  # consumers long-polling this follower (KIP-392) read up to its high watermark
        return size

    def truncate_to(self, offset: int) -> None:
        """Drop this follower's records from ``offset`` on: what the leader does not have (KIP-101, KIP-279)."""
        if offset < self.log.log_end_offset:
            log.info("%s: truncating from %d to %d", self.log.name, self.log.log_end_offset, offset)
        self.log.truncate_to(offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop this follower's whole log and start it at ``offset``: its log ended before the leader's log
        start offset (Kafka's truncateFullyAndStartAt)."""
        log.info("%s: log end %d is below the leader's log start %d: truncating fully", self.log.name,
                 self.log.log_end_offset, offset)
        self.log.truncate_fully_and_start_at(offset)
        if self.changes is not None:
            self.changes.notify()

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
        self.add_waiter(fut)
        return fut

    def add_waiter(self, fut: asyncio.Future) -> None:
        """``fut`` is done at the next wake (``wake_waiters``): one future may wait on several partitions, so
        that a long poll over many is woken by the first append without a future (and a callback) per
        partition."""
        if self._waiters:
            self._waiters.append(fut)
        else:
            self._waiters = [fut]  # no list while nobody waits (see __init__)

    def wake_waiters(self) -> None:
        """Answer whoever waits on this partition: the long-polling fetches (``wait_for_append``), the acks=all
        produces the high watermark has passed (all of them once this broker does not lead) and the broker's
        change notifier. Called on an append, when the high watermark moves, and by whoever deletes the
        partition or stops the broker."""
        if self._hw_waiters:
            self._wake_hw_waiters()
        if self._waiters:
            waiters, self._waiters = self._waiters, ()
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        if self.changes is not None:
            self.changes.notify()

    def discard_waiter(self, fut: asyncio.Future) -> None:
        if fut in self._waiters:
            self._waiters.remove(fut)
