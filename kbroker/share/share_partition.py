"""One share-partition: a topic partition as a share group consumes it (KIP-932; Kafka's SharePartition).

Theory of operation. The group reads the partition from its start offset (SPSO): every record before it is
done with. The records from the SPSO up to ``next_offset`` (exclusive; Kafka's end offset SPEO is the last of
them) are "in flight", each in one of four states with a delivery count:

    AVAILABLE     may be handed to a consumer (again)
    ACQUIRED      handed to one member under an acquisition lock that expires after the record lock duration
    ACKNOWLEDGED  accepted by the consumer: done
    ARCHIVED      rejected, over the delivery count limit, a gap in the log, or an aborted transaction: done

Acquiring a record raises its delivery count. A lock that expires, a RELEASE and a member leaving make it
AVAILABLE again, or ARCHIVED once its delivery count has reached ``group.share.delivery.count.limit``. ACCEPT
acknowledges, REJECT archives, RENEW (KIP-1222) gives the lock a new full duration. The SPSO moves past the
done records at its front; the window [SPSO, next_offset) holds at most
``group.share.partition.max.record.locks`` records, so new records are acquired only while it has room.

Records are kept one entry per offset (Kafka keeps ranges, splitting them as acknowledgements demand): the
window is bounded by the max record locks, so this stays small, and every rule reads the same per record.
What a response carries (AcquiredRecords) is runs of consecutive offsets with one delivery count.

Acknowledgements of one partition are all or nothing, as Kafka's (it rolls the partition's changes back when
one batch fails): every offset is checked first, INVALID_RECORD_STATE when one is not in flight or not
ACQUIRED by the acknowledging member, and only then staged.

Apply after the write (Kafka's startStateTransition / rollbackOrProcessStateUpdates). ``stage`` checks
acknowledgements and returns them as a ``Transition``: each record keeps its state (ACQUIRED by its member)
with the state it is to get as ``pending``, and the owner writes the share state with the transition applied
(``snapshot(transitions)``). Only when that write succeeded does ``complete(transitions, True)`` apply it; a
failed write rolls it back (``complete(transitions, False)``): the records stay acquired by their member, and
a lock that ran out meanwhile releases them then (a record in transition is not released by its lock's
expiry, nor by its member leaving, while the write is out). A record in transition cannot be acknowledged
again (INVALID_RECORD_STATE). RENEW changes nothing written and is applied at once.

Durability: after every change that Kafka's share-partition writes without a transition (releases, lock
expiries, the SPSO moving) ``on_change(self)`` is called; the owner writes ``snapshot()`` to the share
coordinator. Acquisitions are not written (as in Kafka): after a restart, ``restore`` makes every in-flight
record that was not acknowledged or archived AVAILABLE again, with the delivery count last written.

Concurrency: the event loop only; the lock timers run on the injected clock (kbroker/clock.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ErrorCode

# Record states, with Kafka's ids (RecordState; the persisted DeliveryState uses the same numbers).
AVAILABLE, ACQUIRED, ACKNOWLEDGED, ARCHIVED = 0, 1, 2, 4
STATE_NAMES = {AVAILABLE: "AVAILABLE", ACQUIRED: "ACQUIRED", ACKNOWLEDGED: "ACKNOWLEDGED", ARCHIVED: "ARCHIVED"}
# What Kafka answers when acknowledged offsets are not in its in-flight cache (SharePartition.fetchSubMap).
NOT_IN_FLIGHT_MESSAGE = "Batch record not found. The request batch offsets are not found in the cache."
# ... and when a batch starts after the last offset in flight (INVALID_REQUEST there).
PAST_ACQUIRED_MESSAGE = "Batch record not found. The first offset in request is past acquired records."

# Acknowledge types (ShareFetch/ShareAcknowledge AcknowledgeTypes).
ACK_GAP, ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW = 0, 1, 2, 3, 4

# ShareAcquireMode (KIP-1206).
BATCH_OPTIMIZED, RECORD_LIMIT = 0, 1


@dataclass
class FetchedBatch:
    """A batch of the log as a share fetch read it: its offsets, and whether its records are never to be
    delivered (a control batch, or an aborted transaction's under read_committed)."""

    base_offset: int
    last_offset: int
    skip: bool = False


class _Record:
    __slots__ = ("state", "delivery_count", "member_id", "lock", "pending")

    def __init__(self, state: int, delivery_count: int) -> None:
        self.state = state
        self.delivery_count = delivery_count
        self.member_id: str | None = None
        self.lock: _Lock | None = None  # the acquisition (or renewal) whose timer holds this record
        self.pending: int | None = None  # the state a staged acknowledgement gives it once written


class _Lock:
    """One acquisition's (or renewal's) lock: a timer over the offsets it covers."""

    __slots__ = ("offsets", "timer", "expired")

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.timer = None
        self.expired = False


class Transition:
    """Acknowledgements checked and staged, waiting for the write of the state they give: (offset, new state)
    pairs. ``written`` is the owner's (what waits for the write's outcome)."""

    __slots__ = ("changes", "written")

    def __init__(self, changes: list[tuple[int, int]]) -> None:
        self.changes = changes
        self.written = None


class SharePartition:
    def __init__(self, clock, group_id: str, topic_id, partition: int, *, record_lock_duration_ms: int = 30000,
                 delivery_count_limit: int = 5, max_record_locks: int = 2000, start_offset: int = 0,
                 on_change: Callable[[SharePartition], None] | None = None) -> None:
        self.clock = clock
        self.group_id = group_id
        self.topic_id = topic_id
        self.partition = partition
        self.record_lock_duration_ms = record_lock_duration_ms
        self.delivery_count_limit = delivery_count_limit
        self.max_record_locks = max_record_locks
        self.start_offset = start_offset
        self.next_offset = start_offset
        self.records: dict[int, _Record] = {}  # every offset in [start_offset, next_offset)
        self.on_change = on_change
        self.state_epoch = 0
        self.leader_epoch = 0
        self.snapshot_epoch = 0
        self.closed = False

    # -- reading the state -------------------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        """Kafka's SPEO: the last offset in flight (the SPSO when nothing is)."""
        return max(self.start_offset, self.next_offset - 1)

    def fetch_offset(self) -> int:
        """Where a share fetch reads from: the first in-flight AVAILABLE record, else the window's end."""
        for offset in range(self.start_offset, self.next_offset):
            if self.records[offset].state == AVAILABLE:
                return offset
        return self.next_offset

    def can_acquire(self) -> bool:
        """Whether a fetch may find something to acquire: an AVAILABLE record, or room for new ones."""
        return self.fetch_offset() < self.next_offset or self.next_offset - self.start_offset < self.max_record_locks

    def state_of(self, offset: int) -> tuple[int, int] | None:
        """(state, delivery count) of an in-flight offset; None outside the window."""
        r = self.records.get(offset)
        return None if r is None else (r.state, r.delivery_count)

    def runs(self, persisted: bool = False, transitions: Iterable[Transition] = ()) -> list[tuple[int, int, int, int]]:
        """The window as (first offset, last offset, state, delivery count) runs. ``persisted``: as written to
        the share coordinator, ACQUIRED written as AVAILABLE (a lock does not survive a restart), with the
        staged ``transitions`` applied."""
        staged = {offset: state for t in transitions for offset, state in t.changes}
        out: list[list[int]] = []
        for offset in range(self.start_offset, self.next_offset):
            r = self.records[offset]
            state = staged.get(offset, r.state)
            if persisted and state == ACQUIRED:
                state = AVAILABLE
            if out and out[-1][1] == offset - 1 and out[-1][2] == state and out[-1][3] == r.delivery_count:
                out[-1][1] = offset
            else:
                out.append([offset, offset, state, r.delivery_count])
        return [tuple(run) for run in out]  # type: ignore[misc]

    def in_flight_summary(self) -> dict:
        """What the control plane shows of the share-partition."""
        acquired: dict[str, int] = {}
        for r in self.records.values():
            if r.state == ACQUIRED and r.member_id is not None:
                acquired[r.member_id] = acquired.get(r.member_id, 0) + 1
        return {
            "start_offset": self.start_offset, "end_offset": self.end_offset,
            "in_flight": [{"first_offset": f, "last_offset": l, "state": STATE_NAMES[s], "delivery_count": d}
                          for f, l, s, d in self.runs()],
            "acquired_by_member": acquired,
        }

    # -- acquiring ---------------------------------------------------------------------------------------

    def acquire(self, member_id: str, batches: Iterable[FetchedBatch], max_records: int,
                mode: int = BATCH_OPTIMIZED, batch_size: int = 0) -> list[tuple[int, int, int]]:
        """Acquires for ``member_id`` what the fetched ``batches`` hold that may be delivered: in-flight
        AVAILABLE records and records past the window while it has room, at most ``max_records`` of them
        (batch_optimized: a batch begun is acquired whole, as Kafka's "limit can be exceeded for alignment of
        batch boundaries"; record_limit: exactly). Returns the acquired runs (first, last, delivery count),
        each at most ``batch_size`` records when that is positive. Records of skipped batches (control
        batches, aborted transactions) and offsets the log does not have are archived, never acquired."""
        acquired: list[int] = []
        max_records = max(max_records, 1)
        for batch in batches:
            if len(acquired) >= max_records:
                break
            if batch.last_offset < self.start_offset:
                continue
            first = max(batch.base_offset, self.start_offset)
            if first > self.next_offset:
                if self._window_full(self.next_offset):
                    break
                self._archive_new(self.next_offset, first - 1)  # offsets the log does not have
            whole_batch = mode == BATCH_OPTIMIZED
            for offset in range(first, batch.last_offset + 1):
                if len(acquired) >= max_records and not (whole_batch and acquired and acquired[-1] >= first):
                    break
                if offset == self.next_offset:
                    if self._window_full(offset) and not (whole_batch and acquired and acquired[-1] >= first):
                        break
                    self.records[offset] = _Record(ARCHIVED if batch.skip else AVAILABLE, 0)
                    self.next_offset = offset + 1
                r = self.records[offset]
                if r.state != AVAILABLE:
                    continue
                if batch.skip:
                    r.state = ARCHIVED
                    continue
                if r.delivery_count >= self.delivery_count_limit:
                    r.state = ARCHIVED  # written with this count before a restart: delivered enough
                    continue
                r.state, r.member_id = ACQUIRED, member_id
                r.delivery_count += 1
                acquired.append(offset)
            else:
                continue
            break
        self._lock(acquired)
        if self._advance_start():
            self._changed()
        return self._acquired_runs(acquired, batch_size)

    def _window_full(self, offset: int) -> bool:
        return offset - self.start_offset >= self.max_record_locks

    def _archive_new(self, first: int, last: int) -> None:
        for offset in range(first, last + 1):
            self.records[offset] = _Record(ARCHIVED, 0)
        self.next_offset = max(self.next_offset, last + 1)

    def _acquired_runs(self, offsets: list[int], batch_size: int) -> list[tuple[int, int, int]]:
        runs: list[list[int]] = []
        for offset in offsets:
            count = self.records[offset].delivery_count
            last = runs[-1] if runs else None
            if (last is not None and last[1] == offset - 1 and last[2] == count
                    and (batch_size <= 0 or last[1] - last[0] + 1 < batch_size)):
                last[1] = offset
            else:
                runs.append([offset, offset, count])
        return [tuple(run) for run in runs]  # type: ignore[misc]

    def _lock(self, offsets: list[int]) -> None:
        if not offsets:
            return
        lock = _Lock(offsets)
        for offset in offsets:
            self.records[offset].lock = lock
        lock.timer = self.clock.call_later(self.record_lock_duration_ms, lambda: self._expire(lock))

    def _expire(self, lock: _Lock) -> None:
        """An acquisition lock ran out: its records still held under it become available (or archived)."""
        if self.closed:
            return
        lock.expired = True
        released = False
        for offset in lock.offsets:
            r = self.records.get(offset)
            if r is not None and r.state == ACQUIRED and r.lock is lock and r.pending is None:
                self._release(r)
                released = True
        if released:
            self._advance_start()
            self._changed()

    def _release(self, r: _Record) -> None:
        r.state = ARCHIVED if r.delivery_count >= self.delivery_count_limit else AVAILABLE
        r.member_id, r.lock = None, None

    # -- acknowledging -----------------------------------------------------------------------------------

    def acknowledge(self, member_id: str, batches: Iterable[tuple[int, int, list[int]]]) -> tuple[int, str | None]:
        """``stage`` and, the write taken as done, ``complete``: the acknowledgements applied at once."""
        code, message, transition = self.stage(member_id, batches)
        if transition is not None:
            self.complete([transition], True)
            self._changed()
        return code, message

    def stage(self, member_id: str, batches: Iterable[tuple[int, int, list[int]]]
              ) -> tuple[int, str | None, Transition | None]:
        """Checks acknowledgement batches (first offset, last offset, types: one for the whole batch or one
        per offset) of ``member_id``, all or none, renews what RENEW names and stages the rest. Returns (error
        code, message, the staged transition or None): NONE, or INVALID_RECORD_STATE when an offset at or
        after the start offset is not in flight, not acquired by this member or in another transition
        (offsets before the start are finished and skipped, as Kafka 4.4 does); INVALID_REQUEST when a batch
        starts after the last offset in flight. The types are valid (the handler checks them:
        INVALID_REQUEST)."""
        changes: list[tuple[int, int]] = []
        for first, last, types in batches:
            if self.records and first >= self.next_offset:
                return ErrorCode.INVALID_REQUEST, PAST_ACQUIRED_MESSAGE, None
            for offset in range(max(first, self.start_offset), last + 1):  # before the start: done, skipped
                r = self.records.get(offset)
                if r is None:
                    return ErrorCode.INVALID_RECORD_STATE, NOT_IN_FLIGHT_MESSAGE, None
                if r.state != ACQUIRED:
                    return (ErrorCode.INVALID_RECORD_STATE, f"offset {offset} is {STATE_NAMES[r.state]}, not ACQUIRED",
                            None)
                if r.member_id != member_id:
                    return ErrorCode.INVALID_RECORD_STATE, f"offset {offset} is acquired by another member", None
                if r.pending is not None:
                    return ErrorCode.INVALID_RECORD_STATE, f"offset {offset} has an ongoing state transition", None
                changes.append((offset, types[0] if len(types) == 1 else types[offset - first]))
        renewed: list[int] = []
        staged: list[tuple[int, int]] = []
        for offset, ack in changes:
            r = self.records[offset]
            if ack == ACK_RENEW:
                renewed.append(offset)
                continue
            if ack == ACK_ACCEPT:
                r.pending = ACKNOWLEDGED
            elif ack == ACK_RELEASE:
                r.pending = ARCHIVED if r.delivery_count >= self.delivery_count_limit else AVAILABLE
            else:  # REJECT, or GAP: an offset the consumer did not find in the batches it was given
                r.pending = ARCHIVED
            staged.append((offset, r.pending))
        self._lock(renewed)
        return ErrorCode.NONE, None, Transition(staged) if staged else None

    def complete(self, transitions: Iterable[Transition], written: bool) -> None:
        """The write of the state with these ``transitions`` applied is over: it succeeded (``written``: they
        are applied) or failed (rolled back: the records stay acquired by their member, released now if
        their lock ran out meanwhile)."""
        changed = False
        for t in transitions:
            for offset, state in t.changes:
                r = self.records.get(offset)
                if r is None or r.pending is None:
                    continue  # gone meanwhile (the start moved past it, or the share-partition was reset)
                r.pending = None
                if written:
                    r.state, r.member_id, r.lock = state, None, None
                elif r.lock is not None and r.lock.expired:
                    self._release(r)
                    changed = True
        if self.closed:
            return
        self._advance_start()  # a written transition: the start offset written already says so
        if changed:
            self._changed()

    def release_member(self, member_id: str) -> int:
        """A member's session ended or it left the group: what it holds becomes available (or archived, over
        the delivery limit). Returns how many records it held."""
        n = 0
        for r in self.records.values():
            if r.state == ACQUIRED and r.member_id == member_id and r.pending is None:
                self._release(r)
                n += 1
        if n:
            self._advance_start()
            self._changed()
        return n

    # -- the window's start ------------------------------------------------------------------------------

    def _advance_start(self) -> bool:
        moved = False
        while self.start_offset < self.next_offset and self.records[self.start_offset].state in (ACKNOWLEDGED,
                                                                                               ARCHIVED):
            del self.records[self.start_offset]
            self.start_offset += 1
            moved = True
        return moved

    def move_start(self, offset: int) -> None:
        """The log no longer has the records before ``offset`` (retention, DeleteRecords), or an admin set the
        start (AlterShareGroupOffsets): the window starts there, what was before it is forgotten."""
        if offset == self.start_offset and not self.records:
            return
        for o in list(self.records):
            if o < offset:
                r = self.records.pop(o)
                r.lock = None
        self.start_offset = offset
        self.next_offset = max(self.next_offset, offset)
        if not self.records:
            self.next_offset = offset
        self._advance_start()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None and not self.closed:
            self.on_change(self)

    def close(self) -> None:
        """This broker no longer leads the partition (or the share-partition is deleted): its locks and
        changes stop mattering; the next leader starts from the written state."""
        self.closed = True
        for r in self.records.values():
            r.lock = None

    # -- durability --------------------------------------------------------------------------------------

    def snapshot(self, transitions: Iterable[Transition] = ()) -> dict:
        """The state as the share coordinator keeps it (ShareSnapshotValue's fields), with the staged
        ``transitions`` applied (the start offset past the records they finish at the window's front)."""
        runs = self.runs(persisted=True, transitions=transitions)
        start = self.start_offset
        while runs and runs[0][2] in (ACKNOWLEDGED, ARCHIVED):
            start = runs.pop(0)[1] + 1
        return {"start_offset": start, "state_epoch": self.state_epoch, "leader_epoch": self.leader_epoch,
                "state_batches": runs}

    def restore(self, start_offset: int, state_batches: Iterable[tuple[int, int, int, int]],
                state_epoch: int = 0) -> None:
        """Loads written state: the window from ``start_offset`` with the written batches; offsets between
        them were never delivered (AVAILABLE, count 0), and nothing is acquired (locks do not survive)."""
        self.start_offset = self.next_offset = start_offset
        self.records = {}
        self.state_epoch = state_epoch
        for first, last, state, count in sorted(state_batches):
            if last < start_offset:
                continue
            for offset in range(self.next_offset, first):
                self.records[offset] = _Record(AVAILABLE, 0)
            for offset in range(max(first, start_offset), last + 1):
                self.records[offset] = _Record(AVAILABLE if state == ACQUIRED else state, count)
            self.next_offset = max(self.next_offset, last + 1)
        self._advance_start()
