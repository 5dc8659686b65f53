"""Followers fetching from leaders: Kafka's ReplicaFetcherManager and ReplicaFetcherThread, on the event loop.

Theory of operation. Every broker has one ``ReplicaFetcherManager``. A partition this broker is a replica of
but does not lead tells it so (``partition_changed``, hooked to ``Partition.update`` through the topic
manager); the manager hands it to the ``ReplicaFetcher`` of its leader, one per (this broker -> leader
broker), as Kafka runs one fetcher thread per source broker (``num.replica.fetchers`` = 1).

A fetcher is one asyncio task with one connection to the leader, made with kbroker's own client
(client/aio.py) over a real socket to the leader's advertised endpoint of the inter-broker listener, with its
TLS and SASL (inter_broker.py). Its loop, as ReplicaFetcherThread's:

1. Truncation (KIP-101, KIP-279): a partition added at a new leader epoch first asks the leader
   OffsetForLeaderEpoch for the end of the last epoch this replica has, and truncates its log to what the
   leader has (``truncation_offset``) before it fetches.
2. Fetch with ``ReplicaState(replica_id=node id, replica_epoch=-1)`` (``replica_id`` before v15), each
   partition's ``current_leader_epoch``, ``fetch_offset`` = its log end offset and ``last_fetched_epoch``
   (the epoch of its last batch). The leader reads up to its log end, records the follower's position
   (which moves the high watermark and the ISR, partition.py) and answers ``diverging_epoch`` (Fetch v12+)
   when the follower's last epoch ends earlier on the leader: the follower truncates there too.
3. The batches are appended as they are (``Partition.append_as_follower``) with the leader's high watermark
   (capped at the follower's log end) and log start offset.

Out of range (Kafka's handleOffsetOutOfRange): a partition answered OFFSET_OUT_OF_RANGE asks the leader its log
start offset (ListOffsets, earliest, with this broker's replica id). When this replica's log ends before it
(the replica was away longer than the leader's retention, or DeleteRecords moved the start), the replica
drops its whole log and starts at the leader's log start offset (``Partition.truncate_fully_and_start_at``)
and fetches from there at once; otherwise it truncates again as after a leader change (its log ends past the
leader's end) and fetches after ``replica.fetch.backoff.ms``.

Errors: a partition answered NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH waits for
the controller's next change of it (which re-adds it) or ``replica.fetch.backoff.ms``; a connection that
fails is made again after ``replica.fetch.backoff.ms``. A change of the fetcher's partitions or of the links
(below) abandons the fetch in flight (the connection is closed) so that a new leader's followers start at
once rather than after the long poll in progress.

Cut-off (the control plane): a cluster in one process shares one ``ReplicationLinks``; a broker cut off
neither fetches from the others nor is fetched from (its fetchers and theirs to it close their connections
and wait for the link to be restored). Client traffic is untouched.

ISR expiration: the manager also runs Kafka's isr-expiration task: every half ``replica.lag.time.max.ms``,
each partition this broker leads drops the followers that have not caught up for that long
(``Partition.maybe_shrink_isr``).

Concurrency: everything runs on the broker's event loop; a fetcher reads a partition's state, awaits the
leader, then checks that the partition is still its own at the same epoch before applying the answer.
"""

from __future__ import annotations

import asyncio
import logging

from .client.aio import Connection
from .client.protocol import ClientError
from .errors import ErrorCode, KafkaError
from .log.leader_epoch_cache import UNDEFINED_EPOCH
from .storage.base import StorageError
from .wire.messages import fetch as F
from .wire.messages import list_offsets as L
from .wire.messages import offset_for_leader_epoch as E

log = logging.getLogger("kbroker.replica_fetcher")

FETCH_KEY, LIST_OFFSETS_KEY, OFFSET_FOR_LEADER_EPOCH_KEY = 1, 2, 23
EARLIEST_TIMESTAMP = -2  # ListOffsets: the log start offset
# A partition error that means "the leader moved or is moving": wait for the controller's next word on it.
LEADER_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                           ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.LEADER_NOT_AVAILABLE})


def truncation_offset(follower_epoch_end: tuple[int, int], high_watermark: int, leader_epoch: int,
                      leader_end_offset: int) -> int:
    """Where a follower truncates, given the leader's answer for the follower's last epoch: the leader's
    (epoch, end offset) — its largest epoch at or below the one asked for and where it ends on the leader —
    and the follower's own (epoch, end offset) for that epoch (``follower_epoch_end``). The follower keeps
    what both have of that epoch: the smaller end. An undefined answer (-1) truncates to the high watermark,
    what is known committed (Kafka's getOffsetTruncationState)."""
    follower_epoch, follower_end = follower_epoch_end
    if leader_epoch == UNDEFINED_EPOCH or leader_end_offset < 0 or follower_epoch == UNDEFINED_EPOCH:
        return high_watermark
    return min(follower_end, leader_end_offset)


class ReplicationLinks:
    """Which brokers of a cluster in one process are cut off from the others' replication traffic."""

    def __init__(self):
        self.cut: set[int] = set()
        self._listeners: list = []

    def is_open(self, a: int, b: int) -> bool:
        return a not in self.cut and b not in self.cut

    def subscribe(self, callback) -> None:
        self._listeners.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def cut_off(self, node: int) -> None:
        self.cut.add(node)
        self._changed()

    def restore(self, node: int) -> None:
        self.cut.discard(node)
        self._changed()

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()


class FetchState:
    """A partition in a fetcher: the leader epoch it was added at, whether it must truncate first, whether
    its last fetch was out of range (it asks the leader's log start offset next), and until when it waits
    after a leader error (loop time)."""
    __slots__ = ("leader_epoch", "truncating", "out_of_range", "delayed_until", "in_sync")

    def __init__(self, leader_epoch: int):
        self.leader_epoch = leader_epoch
        self.truncating = True
        self.out_of_range = False
        self.delayed_until = 0.0
        # Caught up with the leader's high watermark at the last fetch (Kafka's PartitionFetchState
        # .isReplicaInSync): a replica in sync is never throttled (replication_quotas.py).
        self.in_sync = False


class ReplicaFetcherManager:
    """One broker's fetchers, one per leader it follows, and the ISR expiration task."""

    def __init__(self, state, links: ReplicationLinks | None = None):
        self.state = state
        self.node_id = state.node_id
        self.links = links
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.assigned: dict[object, int] = {}  # partition -> the leader it fetches from
        self.running = False
        self._expiration: asyncio.Task | None = None

    def link_open(self, leader_id: int) -> bool:
        return self.links is None or self.links.is_open(self.node_id, leader_id)

    def start(self) -> None:
        self.running = True
        if self.links is not None:
            self.links.subscribe(self._links_changed)
        for p in list(self.state.topics.local_partitions()):
            self.partition_changed(p)
        self._expiration = asyncio.get_running_loop().create_task(self._isr_expiration())

    async def stop(self) -> None:
        self.running = False
        if self.links is not None:
            self.links.unsubscribe(self._links_changed)
        tasks = [f.stop() for f in self.fetchers.values()]
        self.fetchers.clear()
        self.assigned.clear()
        if self._expiration is not None:
            self._expiration.cancel()
            tasks.append(self._expiration)
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001  stopping: nothing to report
                pass

    def _links_changed(self) -> None:
        for f in self.fetchers.values():
            f.changed()

    def partition_changed(self, p) -> None:
        """``p``'s leadership changed (or it was created): fetch it from its leader, or stop fetching it."""
        if not self.running:
            return
        leader = p.leader_id if p.is_follower and p.leader_id >= 0 and not p.log.store.closed else -1
        current = self.assigned.get(p)
        if current is not None and current != leader:
            self.fetchers[current].remove(p)
            del self.assigned[p]
        if leader < 0:
            return
        fetcher = self.fetchers.get(leader)
        if fetcher is None:
            fetcher = self.fetchers[leader] = ReplicaFetcher(self, leader)
        fetcher.add(p)
        self.assigned[p] = leader

    async def _isr_expiration(self) -> None:
        """Kafka's isr-expiration: every half ``replica.lag.time.max.ms``, shrink the ISR of lagging followers."""
        lag_ms = self.state.config.replica_lag_time_max_ms
        while self.running:
            await asyncio.sleep(lag_ms / 2000.0)
            for p in list(self.state.topics.local_partitions()):
                if p.is_leader and len(p.isr) > 1:
                    p.maybe_shrink_isr(lag_ms)


class ReplicaFetcher:
    """Fetches the partitions this broker follows from one leader (Kafka's ReplicaFetcherThread)."""

    def __init__(self, manager: ReplicaFetcherManager, leader_id: int):
        self.manager = manager
        self.state = manager.state
        self.leader_id = leader_id
        self.partitions: dict[object, FetchState] = {}
        self._changed = asyncio.Event()
        self._conn: Connection | None = None
        self._in_flight: Connection | None = None  # the connection while a round trip is in flight on it
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, p) -> None:
        state = self.partitions.get(p)
        if state is None or state.leader_epoch != p.leader_epoch:
            self.partitions[p] = FetchState(p.leader_epoch)
            self.changed()
        elif state.delayed_until:
            state.delayed_until = 0.0
            self.changed()

    def remove(self, p) -> None:
        if self.partitions.pop(p, None) is not None:
            self.changed()

    def changed(self) -> None:
        self._changed.set()
        conn, self._in_flight = self._in_flight, None
        if conn is not None:  # the round trip in flight is abandoned: fetch again with what changed
            conn.abort(_Interrupted())

    async def stop(self) -> None:
        self._stopped = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        config = self.state.config
        backoff_s = config.replica_fetch_backoff_ms / 1000.0
        loop = asyncio.get_running_loop()
        while not self._stopped:
            self._changed.clear()
            # its topic was deleted, or this broker is no longer its replica (a reassignment)
            for p in [p for p in self.partitions if p.log is None or p.log.store.closed]:
                del self.partitions[p]
                self.manager.assigned.pop(p, None)
            now = loop.time()
            ready = {p: s for p, s in self.partitions.items() if s.delayed_until <= now}
            if not ready or not self.manager.link_open(self.leader_id):
                await self._close()
                delays = [s.delayed_until - now for s in self.partitions.values() if s.delayed_until > now]
                await self._wait_changed(min(delays) if delays and self.manager.link_open(self.leader_id)
                                         else None)
                continue
            try:
                conn = await self._connection()
                if conn is None:
                    await self._wait_changed(backoff_s)
                    continue
                ready = {p: s for p, s in ready.items() if self.partitions.get(p) is s}  # left meanwhile
                if not ready:
                    continue
                out_of_range = {p: s for p, s in ready.items() if s.out_of_range}
                if out_of_range:
                    await self._handle_out_of_range(conn, out_of_range)
                    continue
                truncating = {p: s for p, s in ready.items() if s.truncating}
                if truncating:
                    await self._truncate(conn, truncating)
                    continue
                allowed = self._within_quota(ready)
                if not allowed:  # every partition ready is throttled: Kafka's fetcher backs off too
                    await self._wait_changed(backoff_s)
                    continue
                await self._fetch(conn, allowed)
            except asyncio.CancelledError:
                raise
            except _Interrupted:
                await self._close()  # the answer in flight is abandoned: fetch again with what changed
            except (OSError, ConnectionError, asyncio.TimeoutError, ClientError, KafkaError, StorageError) as e:
                log.info("broker %d fetching from %d: %s", self.manager.node_id, self.leader_id, e)
                await self._close()
                await self._wait_changed(backoff_s)

    async def _wait_changed(self, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def _round_trip(self, conn: Connection, api_key: int, request, version: int | None = None):
        """Send one request and await its answer; a change of partitions or links before or meanwhile
        abandons it (``_Interrupted``; ``changed`` drops the connection). The round trip runs in the
        fetcher's own task: no task per request to make it interruptible."""
        if self._changed.is_set():
            raise _Interrupted()
        self._in_flight = conn
        try:
            resp = await conn.send(api_key, request, version)
        except (OSError, ConnectionError):
            if self._in_flight is conn:
                raise
            resp = None  # ``changed`` aborted the connection under a blocked write
        finally:
            aborted = self._in_flight is not conn
            self._in_flight = None
        if aborted:  # the answer may have come, but something changed meanwhile: fetch again
            raise _Interrupted()
        return resp

    async def _connection(self) -> Connection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        endpoint = self.state.live_endpoint(self.leader_id, self.state.inter_broker.listener_name)
        if endpoint is None:
            return None
        self._conn = await self.state.inter_broker.connect(
            *endpoint, client_id=f"broker-{self.manager.node_id}-fetcher-0",
            timeout_s=self.state.config.replica_socket_timeout_ms / 1000.0)
        return self._conn

    def _current(self, p, state: FetchState) -> bool:
        """Whether ``p`` is still fetched here at the epoch ``state`` was made for."""
        return self.partitions.get(p) is state and p.is_follower and p.leader_id == self.leader_id and \
            p.leader_epoch == state.leader_epoch and not p.log.store.closed

    def _delay(self, state: FetchState) -> None:
        state.delayed_until = asyncio.get_running_loop().time() + \
            self.state.config.replica_fetch_backoff_ms / 1000.0

    # -- truncation ---------------------------------------------------------------------------------

    async def _truncate(self, conn: Connection, partitions: dict) -> None:
        """OffsetForLeaderEpoch for the last epoch of each partition's log, then truncate to what the leader
        has of it."""
        asks = {}
        for p, state in partitions.items():
            epoch = p.log.latest_epoch()
            if epoch < 0 or p.log.log_end_offset == p.log.log_start_offset:
                state.truncating = False  # nothing of ours to compare
                continue
            asks.setdefault(p.topic.name, []).append((p, state, epoch))
        if not asks:
            return
        R = E.OffsetForLeaderEpochRequest
        req = R(replica_id=self.manager.node_id, topics=[R.OffsetForLeaderTopic(topic=name, partitions=[
            R.OffsetForLeaderPartition(partition=p.index, current_leader_epoch=state.leader_epoch, leader_epoch=epoch)
            for p, state, epoch in entries]) for name, entries in asks.items()])
        resp = await self._round_trip(conn, OFFSET_FOR_LEADER_EPOCH_KEY, req)
        answers = {(t.topic, r.partition): r for t in resp.topics for r in t.partitions}
        for name, entries in asks.items():
            for p, state, epoch in entries:
                r = answers.get((name, p.index))
                if r is None or not self._current(p, state):
                    continue
                if r.error_code:
                    log.info("%s-%d: OffsetForLeaderEpoch from %d: error %d", name, p.index, self.leader_id,
                             r.error_code)
                    self._delay(state)
                    continue
                self._truncate_to_leader(p, r.leader_epoch, r.end_offset)
                state.truncating = False

    @staticmethod
    def _truncate_to_leader(p, leader_epoch: int, leader_end_offset: int) -> None:
        log_ = p.log
        ours = log_.end_offset_for_epoch(leader_epoch) if leader_epoch >= 0 else (UNDEFINED_EPOCH, -1)
        p.truncate_to(truncation_offset(ours, log_.high_watermark, leader_epoch, leader_end_offset))

    async def _handle_out_of_range(self, conn: Connection, partitions: dict) -> None:
        """The leader's log start offset for each partition whose fetch was out of range; a log that ends
        before it starts again there (Kafka's fetchOffsetAndTruncate)."""
        by_topic: dict[str, list] = {}
        for p, state in partitions.items():
            by_topic.setdefault(p.topic.name, []).append((p, state))
        R = L.ListOffsetsRequest
        req = R(replica_id=self.manager.node_id, isolation_level=0, timeout_ms=0, topics=[R.ListOffsetsTopic(
            name=name, partitions=[R.ListOffsetsPartition(partition_index=p.index,
                                                          current_leader_epoch=state.leader_epoch,
                                                          timestamp=EARLIEST_TIMESTAMP, max_num_offsets=1)
                                   for p, state in entries]) for name, entries in by_topic.items()])
        resp = await self._round_trip(conn, LIST_OFFSETS_KEY, req)
        answers = {(t.name, r.partition_index): r for t in resp.topics for r in t.partitions}
        for name, entries in by_topic.items():
            for p, state in entries:
                r = answers.get((name, p.index))
                if r is None or not self._current(p, state):
                    continue
                state.out_of_range = False
                if r.error_code or r.offset < 0:
                    log.info("%s-%d: ListOffsets from %d: error %d", name, p.index, self.leader_id, r.error_code)
                    self._delay(state)
                    continue
                if p.log.log_end_offset < r.offset:
                    p.truncate_fully_and_start_at(r.offset)
                else:  # our log ends past the leader's end: find where we diverged, as after a leader change
                    state.truncating = True
                    self._delay(state)

    # -- fetching ---------------------------------------------------------------------------------------

    def _within_quota(self, partitions: dict) -> dict:
        """The partitions to fetch: less those throttled here (``follower.replication.throttled.replicas``)
        that are not in sync, while this broker's ``follower.replication.throttled.rate`` is exceeded
        (Kafka's ReplicaFetcherThread.shouldFollowerThrottle)."""
        quota = self.state.replication_quotas.follower
        held = [p for p, s in partitions.items() if not s.in_sync and quota.is_throttled(p.topic, p.index)]
        if not held or not quota.is_quota_exceeded():
            return partitions
        return {p: s for p, s in partitions.items() if p not in held}

    async def _fetch(self, conn: Connection, partitions: dict) -> None:
        config = self.state.config
        version = conn.version(FETCH_KEY)
        by_id = version >= 13
        R = F.FetchRequest
        topics: dict[str, tuple] = {}  # name -> (Topic, its partitions)
        for p in partitions:
            topics.setdefault(p.topic.name, (p.topic, []))[1].append(p)
        req = R(replica_id=self.manager.node_id if version < 15 else -1,
                replica_state=R.ReplicaState(replica_id=self.manager.node_id, replica_epoch=-1),
                max_wait_ms=config.replica_fetch_wait_max_ms, min_bytes=1,
                max_bytes=config.replica_fetch_response_max_bytes, isolation_level=0, session_id=0,
                session_epoch=-1, forgotten_topics_data=[], rack_id="",
                topics=[R.FetchTopic(topic=t.name, topic_id=t.topic_id, partitions=[R.FetchPartition(
                    partition=p.index, current_leader_epoch=partitions[p].leader_epoch,
                    fetch_offset=p.log.log_end_offset, last_fetched_epoch=p.log.latest_epoch(),
                    log_start_offset=p.log.log_start_offset, partition_max_bytes=config.replica_fetch_max_bytes)
                    for p in ps]) for t, ps in topics.values()])
        resp = await self._round_trip(conn, FETCH_KEY, req, version)
        if resp.error_code:
            raise ClientError(resp.error_code, "Fetch")
        index = {((t.topic_id if by_id else t.name), p.index): p for t, ps in topics.values() for p in ps}
        for rt in resp.responses:
            for rp in rt.partitions:
                p = index.get(((rt.topic_id if by_id else rt.topic), rp.partition_index))
                if p is None:
                    continue
                state = partitions[p]
                if not self._current(p, state):
                    continue
                self._apply(p, state, rp)

    def _apply(self, p, state: FetchState, rp) -> None:
        if rp.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
            state.out_of_range = True  # ask where the leader's log starts (_handle_out_of_range)
            return
        if rp.error_code:
            if rp.error_code not in LEADER_ERRORS:
                log.warning("%s-%d: fetch from %d: error %d", p.topic.name, p.index, self.leader_id, rp.error_code)
            self._delay(state)
            return
        diverging = rp.diverging_epoch  # set only when the leader found our last epoch diverging (v12+)
        if diverging is not None:
            self._truncate_to_leader(p, diverging.epoch, diverging.end_offset)
            return
        records = rp.records
        if isinstance(records, list):  # regions or chunks: never from a remote answer, but be exact
            records = b"".join(bytes(c) for c in records)
        p.append_as_follower(records, rp.high_watermark, rp.log_start_offset)
        state.in_sync = rp.high_watermark <= p.log.log_end_offset
        quota = self.state.replication_quotas.follower
        if records and quota.is_throttled(p.topic, p.index):
            quota.record(len(records))


class _Interrupted(Exception):
    """The fetcher's partitions or links changed during a round trip."""
