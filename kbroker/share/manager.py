"""Share-partitions on the fetch path: share sessions, acquisition from the log, acknowledgements and their
durability (Kafka's SharePartitionManager, ShareSessionCache, DelayedShareFetch and ShareFetchUtils).

Share sessions. A member's ShareFetch at epoch 0 opens its session over the partitions it names (an earlier
session of the member is dropped; acknowledgements in it are INVALID_REQUEST); later requests carry the epoch
the broker expects next (1, 2, ... wrapping to 1) and add partitions or forget them
(INVALID_SHARE_SESSION_EPOCH for another epoch, SHARE_SESSION_NOT_FOUND without a session); -1 closes the
session, releasing what the member holds in it. ShareAcknowledge checks the session the same way (epoch 0:
INVALID_SHARE_SESSION_EPOCH) without changing its partitions. The fetch reads every partition of the session.

Share-partitions. One ``SharePartition`` per (group, topic id, partition) this broker leads, created on the
first fetch: its state read from the share coordinator (share_coordinator.py) or, the first time, started
where ``share.auto.offset.reset`` says (latest: the high watermark, or the last stable offset under
read_committed; earliest: the log start; by_duration:<ISO-8601 duration>: the first record at or after now
minus it). While ``__share_group_state`` is being created or its shard loads, the partition answers with
nothing (and no error), as Kafka's share-partition answers while it initialises.

Durability. A share-partition's change marks it dirty; ``persist`` writes the dirty ones to the share
coordinator and waits for their replication; changes no request waits for (lock expiries) are written on the
next turn of the loop. Acknowledgements are applied after their write, as Kafka's: staged
(``stage_acknowledgements``), written with the share-partition's state, then applied, or rolled back when the
write failed (the records stay acquired and come back when their lock runs out; the acknowledgement's error
is Kafka's mapping of the write's, ``acknowledgement_error``). One write at a time per share-partition. When the share coordinator of the key is on
another broker (a cluster in which this broker does not lead the key's ``__share_group_state`` partition)
the state is read and written with ReadShareGroupState / WriteShareGroupState (persister.py): the
share-partition answers nothing until the read is answered, as while the state topic loads.

Concurrency: the event loop only. A long-polling fetch waits on its partitions' appends and on this
manager's ``available`` notifier (records made available again by an expiry, a release or a share session ending).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..coordinator.share_group_listener import ShareGroupListener, ShareGroupSettings
from ..errors import ErrorCode, KafkaError
from ..records.batch import iter_batches
from . import state_records as SR
from .share_coordinator import Key, ShareCoordinatorService
from .share_partition import ACKNOWLEDGED, ARCHIVED, FetchedBatch, SharePartition, Transition

log = logging.getLogger("kbroker.share")

INITIAL_EPOCH, FINAL_EPOCH = 0, -1
INT32_MAX = 2**31 - 1


@dataclass
class ShareSession:
    group_id: str
    member_id: str
    epoch: int = 1
    partitions: dict[tuple[uuid.UUID, int], None] = field(default_factory=dict)  # ordered set
    connection_id: int | None = None  # the connection that opened it: its close ends the session


def next_epoch(epoch: int) -> int:
    """ShareRequestMetadata.nextEpoch: after the last int32 comes 1 again (0 and -1 are reserved)."""
    return 1 if epoch >= INT32_MAX else epoch + 1


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration_ms(text: str) -> int:
    """An ISO-8601 duration as Kafka's by_duration takes it (java.time.Duration: PnDTnHnMn.nS)."""
    m = _DURATION.match(text.strip().upper())
    if m is None or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    days, hours, minutes, seconds = m.groups()
    total_s = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    return int(total_s * 1000)


class SharePartitionManager(ShareGroupListener):
    def __init__(self, clock, coordinator: ShareCoordinatorService, settings_for: Callable[[str], ShareGroupSettings],
                 state_topic: Callable[[], object], persister=None, max_sessions: int = 2000) -> None:
        """``settings_for(group_id)``: the group's share settings. ``state_topic()``: ``__share_group_state``,
        its creation started when it does not exist (None meanwhile). ``persister``: a RemotePersister for the
        keys whose share coordinator is another broker (None: their state is kept in memory only).
        ``max_sessions``: group.share.max.share.sessions, the share sessions kept at once."""
        self.clock = clock
        self.coordinator = coordinator
        self.settings_for = settings_for
        self.state_topic = state_topic
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self.max_sessions = max_sessions
        self.partitions: dict[Key, SharePartition] = {}
        self._dirty: set[Key] = set()
        self._staged: dict[Key, list[Transition]] = {}  # acknowledgements waiting for the next write
        self._writing: dict[Key, asyncio.Future] = {}  # the write in flight of each share-partition
        self._flush_scheduled = False
        self._memory_only_warned: set[Key] = set()
        self.persister = persister
        self._remote_reads: dict[Key, asyncio.Task] = {}
        self._available: list[asyncio.Future] = []

    # -- sessions ----------------------------------------------------------------------------------------

    def fetch_session(self, group_id: str, member_id: str, epoch: int, wanted: list[tuple[uuid.UUID, int]],
                      forgotten: list[tuple[uuid.UUID, int]], has_acks: bool,
                      connection_id: int | None = None) -> ShareSession:
        """The session a ShareFetch runs in (Kafka's SharePartitionManager.newContext); raises KafkaError with
        the request's top-level error. A session opened (epoch 0) belongs to ``connection_id``."""
        key = (group_id, member_id)
        if epoch == FINAL_EPOCH:
            session = self.sessions.get(key)
            if session is None:
                raise KafkaError(ErrorCode.SHARE_SESSION_NOT_FOUND, "no share session found")
            return session
        if epoch == INITIAL_EPOCH:
            if has_acks:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "acknowledgements in the request opening a share session")
            old = self.sessions.pop(key, None)
            if old is not None:
                self._release(old)
            elif len(self.sessions) >= self.max_sessions:  # Kafka's ShareSessionCache is full: no eviction
                raise KafkaError(ErrorCode.SHARE_SESSION_LIMIT_REACHED, "The limit of share sessions has been reached.")
            session = ShareSession(group_id, member_id, next_epoch(INITIAL_EPOCH), dict.fromkeys(wanted),
                                   connection_id)
            self.sessions[key] = session
            return session
        session = self.sessions.get(key)
        if session is None:
            raise KafkaError(ErrorCode.SHARE_SESSION_NOT_FOUND, "no share session found")
        if session.epoch != epoch:
            raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH,
                             f"expected share session epoch {session.epoch}, got {epoch}")
        for tp in wanted:
            session.partitions.setdefault(tp, None)
        for tp in forgotten:
            session.partitions.pop(tp, None)
        session.epoch = next_epoch(session.epoch)
        return session

    def acknowledge_session(self, group_id: str, member_id: str, epoch: int) -> ShareSession:
        """The session a ShareAcknowledge runs in (Kafka's acknowledgeSessionUpdate)."""
        if epoch == INITIAL_EPOCH:
            raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH, "a share acknowledgement cannot open a session")
        session = self.sessions.get((group_id, member_id))
        if session is None:
            raise KafkaError(ErrorCode.SHARE_SESSION_NOT_FOUND, "no share session found")
        if epoch != FINAL_EPOCH:
            if session.epoch != epoch:
                raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH,
                                 f"expected share session epoch {session.epoch}, got {epoch}")
            session.epoch = next_epoch(session.epoch)
        return session

    def close_session(self, session: ShareSession) -> None:
        """Epoch -1: the session ends and what its member holds in it is released."""
        if self.sessions.get((session.group_id, session.member_id)) is session:
            del self.sessions[(session.group_id, session.member_id)]
        self._release(session)

    def on_connection_closed(self, connection_id: int) -> None:
        """A client connection closed: the share sessions it opened end and what their members hold is
        released, as Kafka 4.1+ ties a share session to its connection (ShareSessionCache's connection
        disconnect listener)."""
        for key, session in [(k, s) for k, s in self.sessions.items() if s.connection_id == connection_id]:
            del self.sessions[key]
            self._release(session)

    def _release(self, session: ShareSession) -> None:
        for topic_id, index in session.partitions:
            sp = self.partitions.get((session.group_id, topic_id, index))
            if sp is not None and sp.release_member(session.member_id):
                self.notify_available()

    # The group coordinator's news (coordinator/share_group_listener.py). A member leaving the group (epoch -1,
    # or fenced when its session times out) is not one of them: Kafka's share-partition leaders hear of
    # departures only from their own share sessions (ShareSessionCache calls ShareGroupListener.onMemberLeave
    # when a session ends with epoch -1 or its connection closes; the group coordinator tells them nothing),
    # so what a fenced member with its connection still open holds stays locked until its locks run out, on
    # every broker, whether or not it is the group's coordinator.

    def on_group_deleted(self, group_id: str, partitions) -> None:
        """DeleteGroups removed the share group: its share-partitions go, and their written state with them
        (tombstones, as Kafka's DeleteShareGroupState), for the keys whose share coordinator is here."""
        keys = {k for k in self.partitions if k[0] == group_id}
        keys.update((group_id, t, p) for t, ps in partitions.items() for p in ps)
        keys.update(k for k in self.group_keys(group_id))
        for key in [k for k in self.sessions if k[0] == group_id]:
            del self.sessions[key]
        try:
            writes = self._tombstone(sorted(keys, key=lambda k: (str(k[1]), k[2])))
        except (KafkaError, OSError) as e:
            log.warning("deleting the share state of group %s failed: %s", group_id, e)
            return
        if writes:
            task = asyncio.ensure_future(asyncio.gather(*writes, return_exceptions=True))
            task.add_done_callback(lambda t: [log.warning("deleting the share state of group %s: %r", group_id, r)
                                              for r in t.result() if isinstance(r, BaseException)])

    # -- share-partitions --------------------------------------------------------------------------------

    def share_partition(self, group_id: str, partition) -> SharePartition | None:
        """The share-partition of the group over ``partition`` (a Partition this broker leads); None while its
        written state cannot be read yet (the state topic is being created or its shard loads)."""
        topic_id = partition.topic.topic_id
        key = (group_id, topic_id, partition.index)
        sp = self.partitions.get(key)
        if sp is not None:
            if sp.leader_epoch == partition.leader_epoch:
                return sp
            # Leadership moved away and back since: another leader may have changed the state meanwhile.
            self._forget(key)
        state = self._read_state(key)
        if state is False:
            return None
        settings = self.settings_for(group_id)
        sp = SharePartition(self.clock, group_id, topic_id, partition.index,
                            record_lock_duration_ms=settings.record_lock_duration_ms,
                            delivery_count_limit=settings.delivery_count_limit,
                            max_record_locks=settings.partition_max_record_locks, on_change=self._on_change)
        sp.leader_epoch = partition.leader_epoch
        if state is not None:
            sp.restore(state.start_offset, state.state_batches, state.state_epoch)
        else:
            sp.restore(self._reset_offset(partition, settings), [])
            self._dirty.add(key)  # the start is written, so that "latest" stays where it was first found
            self._schedule_flush()
        self.partitions[key] = sp
        return sp

    def _read_state(self, key: Key):
        """The written state (None: none), or False when it cannot be read now."""
        if self.state_topic() is None:
            return False
        try:
            return self.coordinator.route(key).read(key)
        except KafkaError as e:
            if e.code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
                return False
            if self.persister is not None:
                return self._read_remote(key)
            if key not in self._memory_only_warned:
                self._memory_only_warned.add(key)
                log.warning("share state of %s is kept in memory only: its share coordinator is on another broker",
                            key)
            return None

    def _forget(self, key: Key) -> None:
        sp = self.partitions.pop(key, None)
        if sp is not None:
            sp.close()
        self._dirty.discard(key)
        _settle(self._staged.pop(key, []), ErrorCode.NOT_LEADER_OR_FOLLOWER)

    def on_topic(self, topic_id, topic) -> None:
        """The topic changed (``topic`` None: deleted): the share-partitions of partitions this broker no longer
        leads, or leads at another leader epoch, go (what they did is written; the leader reads it), as Kafka's
        SharePartitionManager drops them on a leader change. A deleted topic's written state goes too."""
        gone = []
        for key, sp in self.partitions.items():
            if key[1] != topic_id:
                continue
            p = topic.partitions[key[2]] if topic is not None and key[2] < len(topic.partitions) else None
            if p is None or not p.is_leader or p.leader_epoch != sp.leader_epoch:
                gone.append(key)
        for key in gone:
            self._forget(key)
        if gone:
            self.notify_available()
        if topic is None:
            self.coordinator.delete_topic(topic_id)

    def _read_remote(self, key: Key):
        """ReadShareGroupState to the key's share coordinator: False while the answer is awaited (the fetch
        that asked answers nothing, and the answer wakes the long polls), then the state (None: none)."""
        task = self._remote_reads.get(key)
        if task is None:
            task = self._remote_reads[key] = asyncio.ensure_future(self.persister.read(key))
            task.add_done_callback(lambda _t: self.notify_available())
            return False
        if not task.done():
            return False
        del self._remote_reads[key]
        if task.cancelled() or task.exception() is not None:
            log.debug("reading the share state of %s: %r", key, None if task.cancelled() else task.exception())
            return False
        return task.result()

    def _reset_offset(self, partition, settings: ShareGroupSettings) -> int:
        latest = partition.last_stable_offset if settings.isolation_level == "read_committed" \
            else partition.high_watermark
        reset = settings.auto_offset_reset.strip().lower()
        if reset == "earliest":
            return partition.log_start_offset
        if reset.startswith("by_duration:"):
            try:
                duration_ms = parse_duration_ms(reset.split(":", 1)[1])
            except ValueError:
                return latest
            _ts, offset = partition.offset_for_timestamp(self.clock.now_ms() - duration_ms)
            return latest if offset < 0 else max(offset, partition.log_start_offset)
        return latest

    def acquire(self, sp: SharePartition, partition, member_id: str, max_records: int, mode: int,
                batch_size: int, max_bytes: int, read_committed: bool) -> tuple[bytes, list[tuple[int, int, int]]]:
        """Reads from where the share-partition needs records and acquires what may be delivered. Returns the
        batches holding the acquired records (as stored) and the acquired runs."""
        if sp.start_offset < partition.log_start_offset:
            sp.move_start(partition.log_start_offset)
        upper = partition.last_stable_offset if read_committed else partition.high_watermark
        offset = sp.fetch_offset()
        if offset >= upper or not sp.can_acquire():
            return b"", []
        chunks = partition.read(offset, max(max_bytes, 1), True, upper)
        fetched: list[tuple[memoryview, int, object]] = []
        for chunk in chunks:
            view = memoryview(chunk)
            fetched += [(view, pos, h) for pos, h in iter_batches(view)]
        if not fetched:
            return b"", []
        aborted = sorted(partition.aborted_transactions(offset, fetched[-1][2].last_offset + 1),
                         key=lambda a: a[1]) if read_committed else []
        batches = _share_batches([h for _v, _p, h in fetched], aborted, read_committed)
        runs = sp.acquire(member_id, batches, max_records, mode, batch_size)
        if not runs:
            return b"", []
        first, last = runs[0][0], runs[-1][1]
        out = bytearray()
        for view, pos, h in fetched:
            if h.last_offset >= first and h.base_offset <= last:
                out += view[pos:pos + h.size]
        return bytes(out), runs

    # -- durability --------------------------------------------------------------------------------------

    def _on_change(self, sp: SharePartition) -> None:
        self._dirty.add((sp.group_id, sp.topic_id, sp.partition))
        self._schedule_flush()
        self.notify_available()

    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test): the next persist writes it
        self._flush_scheduled = True
        loop.call_soon(self._flush_in_background)

    def _flush_in_background(self) -> None:
        self._flush_scheduled = False
        task = asyncio.ensure_future(self.persist(list(self._dirty)))
        task.add_done_callback(lambda t: t.cancelled() or t.result())

    def stage_acknowledgements(self, sp: SharePartition, member_id: str, batches) -> tuple[int, str | None,
                                                                                         Transition | None]:
        """``sp.stage``: the acknowledgements checked and staged for the share-partition's next write; the
        transition's ``written`` future says how that write went (0 or its error code)."""
        code, message, transition = sp.stage(member_id, batches)
        if transition is not None:
            key = (sp.group_id, sp.topic_id, sp.partition)
            transition.written = asyncio.get_running_loop().create_future()
            self._staged.setdefault(key, []).append(transition)
            self._dirty.add(key)
        return code, message, transition

    async def persist(self, keys) -> dict[Key, int]:
        """Writes the dirty share-partitions among ``keys`` and waits for the writes; the error code of each
        write that failed."""
        keys = list(keys)
        codes = await asyncio.gather(*(self._write(key) for key in keys))
        return {key: code for key, code in zip(keys, codes) if code}

    async def _write(self, key: Key) -> int:
        """Writes the share-partition's state with its staged transitions applied, then applies them (written)
        or rolls them back (not), as Kafka's SharePartition.rollbackOrProcessStateUpdates. One write at a time
        per share-partition, so that a later write never carries a transition an earlier one failed to write;
        a transition staged meanwhile goes with the next write. Returns 0 or the write's error code."""
        while (busy := self._writing.get(key)) is not None:
            await busy
        if key not in self._dirty:
            return 0  # written meanwhile, by the write this one waited for
        self._dirty.discard(key)
        sp = self.partitions.get(key)
        transitions = self._staged.pop(key, [])
        if sp is None:
            _settle(transitions, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            return 0
        snap = sp.snapshot(transitions)
        state = SR.ShareState(snap["start_offset"], snap["state_epoch"], snap["leader_epoch"],
                              state_batches=snap["state_batches"])
        done = self._writing[key] = asyncio.get_running_loop().create_future()
        try:
            code = await self._write_state(key, state)
            if code in (ErrorCode.FENCED_STATE_EPOCH, ErrorCode.FENCED_LEADER_EPOCH):
                # The written state is newer (its offsets altered, or a newer leader): this share-partition
                # is stale and goes; the next fetch reads the state afresh (Kafka fences it likewise).
                log.warning("the share state of %s is fenced (%s): read again", key, ErrorCode(code).name)
                _settle(transitions, code)
                self._forget(key)
                return code
            sp.complete(transitions, code == 0)
            _settle(transitions, code)
            if code:
                self._dirty.add(key)  # what changed without a transition (expiries, releases) is written later
            return code
        finally:
            del self._writing[key]
            done.set_result(None)

    async def _write_state(self, key: Key, state: SR.ShareState) -> int:
        """One write of a share-partition's state to its share coordinator, here or on another broker; 0 or the
        error code. A key whose coordinator is another broker, without a persister, is kept in memory only."""
        try:
            shard = self.coordinator.route(key)
        except KafkaError as e:
            if e.code != ErrorCode.NOT_COORDINATOR:
                return e.code
            if self.persister is None:
                return 0  # kept in memory only (the module's docstring)
            try:
                await self.persister.write(key, state)
            except KafkaError as e2:
                return e2.code
            return 0
        try:
            offset = shard.write(key, state)
        except (KafkaError, OSError) as e:
            log.warning("writing the share state of %s failed: %s", key, e)
            return e.code if isinstance(e, KafkaError) else ErrorCode.KAFKA_STORAGE_ERROR
        try:
            await shard.log.wait_replicated(offset)
        except KafkaError as e:
            return e.code
        return 0

    def _tombstone(self, keys) -> list:
        """Forgets the share-partitions and appends tombstones for their written state in the shards here;
        the (shard, offset) writes to wait for."""
        by_shard: dict[int, list[Key]] = {}
        for key in keys:
            self._forget(key)
            by_shard.setdefault(self.coordinator.partition_for(key), []).append(key)
        writes = []
        for index, shard_keys in by_shard.items():
            shard = self.coordinator.shards.shards.get(index)
            if shard is not None:
                offset = shard.delete(shard_keys)
                if offset is not None:
                    writes.append(shard.log.wait_replicated(offset))
            elif self.persister is not None and self.coordinator.shards.status(index) == ErrorCode.NOT_COORDINATOR:
                writes += [self.persister.delete(k) for k in shard_keys]
        return writes

    async def delete_state(self, keys: list[Key]) -> None:
        """The written state of these share-partitions is deleted (tombstones), and they are forgotten here."""
        for write in self._tombstone(keys):
            await write

    # -- the admin's view: DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets -----------

    def group_keys(self, group_id: str) -> list[Key]:
        """Every share-partition of the group with state on this broker (live or written)."""
        keys = {k for k in self.partitions if k[0] == group_id}
        keys.update(k for k, _s in self.coordinator.all_states() if k[0] == group_id)
        return sorted(keys, key=lambda k: (str(k[1]), k[2]))

    async def start_and_lag(self, key: Key, high_watermark: int | None) -> tuple[int, int, int]:
        """(start offset, leader epoch, lag) of a share-partition; (-1, -1, -1) when it has no state. The lag
        is what the group has yet to finish: records below the high watermark from the start offset, less
        those in flight already acknowledged or archived (KIP-1226)."""
        sp = self.partitions.get(key)
        if sp is not None:
            # In-flight records were read below the high watermark: every one done counts.
            start, epoch = sp.start_offset, sp.leader_epoch
            done = sum(l - f + 1 for f, l, s, _ in sp.runs() if s in (ACKNOWLEDGED, ARCHIVED))
        else:
            summary = await self._summary(key)
            if summary is None:
                return -1, -1, -1
            start, epoch, done = summary
        if high_watermark is None:
            return start, epoch, -1
        return start, epoch, max(high_watermark - start - max(done, 0), 0)

    async def _summary(self, key: Key) -> tuple[int, int, int] | None:
        """(start offset, leader epoch, delivery complete count) as written, here or by the key's share
        coordinator on another broker; None when there is no state (or it cannot be read now)."""
        try:
            state = self.written_state(key)
        except KafkaError as e:
            if e.code != ErrorCode.NOT_COORDINATOR or self.persister is None:
                return None
            try:
                return await self.persister.summary(key)
            except KafkaError:
                return None
        if state is None:
            return None
        return state.start_offset, state.leader_epoch, SR.delivery_complete_count(state)

    async def set_start_offset(self, key: Key, offset: int) -> None:
        """AlterShareGroupOffsets: the share-partition starts afresh at ``offset`` (nothing in flight, a new
        state epoch), written before the answer. Raises KafkaError when it cannot be written."""
        sp = self.partitions.get(key)
        if sp is not None:
            # Acknowledgements staged for the records that go are refused, not written onto the new window.
            _settle(self._staged.pop(key, []), ErrorCode.INVALID_RECORD_STATE)
            sp.restore(offset, [], sp.state_epoch + 1)
            self._dirty.add(key)
            failed = await self.persist([key])
            if failed:
                raise KafkaError(ErrorCode(failed[key]), "the share state could not be written")
            return
        try:
            old = self.written_state(key)
        except KafkaError as e:
            if e.code != ErrorCode.NOT_COORDINATOR or self.persister is None:
                raise
            old = await self.persister.read(key)
            await self.persister.initialize(key, offset, (old.state_epoch + 1) if old is not None else 0)
            return
        state = SR.ShareState(offset, (old.state_epoch + 1) if old is not None else 0)
        await self.coordinator.write(key, state)

    def written_state(self, key: Key) -> SR.ShareState | None:
        """The state of a share-partition as written (None: never written). Raises KafkaError
        (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) when it is not kept on this broker."""
        return self.coordinator.route(key).read(key)

    # -- waiting -----------------------------------------------------------------------------------------

    def wait_available(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._available.append(fut)
        return fut

    def notify_available(self) -> None:
        if self._available:
            waiters, self._available = self._available, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def discard_waiter(self, fut: asyncio.Future) -> None:
        try:
            self._available.remove(fut)
        except ValueError:
            pass

    def close(self) -> None:
        self.notify_available()


def _settle(transitions, code: int) -> None:
    for t in transitions:
        if not t.written.done():
            t.written.set_result(code)


def acknowledgement_error(code: int) -> int:
    """The acknowledgement error a failed share state write becomes, as Kafka's SharePartition.fetchPersisterError
    maps the persister's error: the coordinator moving or away is COORDINATOR_NOT_AVAILABLE, a fenced state
    NOT_LEADER_OR_FOLLOWER, anything else UNKNOWN_SERVER_ERROR. A local write's storage error is the share
    coordinator's NOT_COORDINATOR there (Kafka's coordinator runtime maps KAFKA_STORAGE_ERROR so)."""
    if code in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if code in (ErrorCode.GROUP_ID_NOT_FOUND, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_RECORD_STATE):
        return code  # the last: the share-partition was reset (its offsets altered) before the write
    if code in (ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.FENCED_STATE_EPOCH, ErrorCode.NOT_LEADER_OR_FOLLOWER):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    return ErrorCode.UNKNOWN_SERVER_ERROR


def _share_batches(headers, aborted: list[tuple[int, int]], read_committed: bool) -> list[FetchedBatch]:
    """The fetched batches as the share-partition takes them: control batches never delivered, and under
    read_committed the batches of aborted transactions neither (the consumer's own rule: a producer's
    transactional batches from its aborted transaction's first offset up to its abort marker)."""
    out = []
    ongoing: set[int] = set()
    i = 0
    for h in headers:
        while read_committed and i < len(aborted) and aborted[i][1] <= h.last_offset:
            ongoing.add(aborted[i][0])
            i += 1
        skip = h.is_control
        if read_committed and h.is_transactional and h.producer_id in ongoing:
            skip = True
            if h.is_control:
                ongoing.discard(h.producer_id)  # its abort marker ends the aborted transaction
        out.append(FetchedBatch(h.base_offset, h.last_offset, skip))
    return out
