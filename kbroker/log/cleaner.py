"""Log compaction's record-level work: which records survive, and the batches that carry them.

Theory of operation (Kafka's LogCleaner, on one broker).  A compacted log is cleaned from its first
segment up to the *first uncleanable offset*: the active segment, the segment holding the last stable offset
(an open transaction's first record) and those after it, and any segment holding a record younger than
``min.compaction.lag.ms``, are never touched.  The *dirty* part is what was appended since the last
clean (the partition's cleaner checkpoint); an offset map built from it says, per key, the offset of its
latest record.  Then every cleanable segment is rewritten, batch by batch, keeping a record when no later
record of its key is in the map:

* Offsets never change.  A batch that loses records is rebuilt at its original base offset with its
  original ``lastOffsetDelta`` (so its offset range, and its producer's sequence range, stay as they
  were), with the producer's codec, producer id, epoch, base sequence, transactional flag, leader epoch
  and timestamp type.  A batch that loses nothing is kept byte for byte.
* A batch that loses every record is dropped -- unless it is the last batch of the log, or the last batch
  its producer wrote (idempotence state is rebuilt from the log at start-up): then an empty batch keeps
  its header (Kafka's ``writeEmptyHeader``).
* Tombstones (null values) are kept for ``delete.retention.ms`` after the clean that first saw them, the
  KIP-534 way: that clean stamps the batch with a *delete horizon* (attributes bit 6, the horizon in
  baseTimestamp) and a later clean past the horizon drops them.
* Transactions, as Kafka's cleaner does them (``CleanedTransactionMetadata``).  Nothing at or above the
  last stable offset is cleaned (the log manager stops before the segment that holds it), so every
  transaction with data in the cleaned range has its marker in the log.  While walking the batches in
  order, ``TxnTracker`` knows for each producer whether the transaction its batches belong to was
  aborted: the partition's aborted transactions (marker offset, producer id, first offset) become
  "ongoing" for their producer when the walk reaches their first offset, and end at their ABORT marker.
  Records of aborted transactions are removed (their batches dropped, or emptied when the rule above
  keeps the header) and never enter the offset map, so an aborted record does not shadow the committed
  record of its key before it.
* A transaction marker (control batch) stays while the clean walks over a batch of its transaction --
  even a batch that this clean removes: a marker only becomes removable in a clean that finds none of
  its transaction's batches, so it never goes while its data may still be in the log (whatever became of
  an earlier clean's swap).  Such a clean is due at once after one that removed a transaction's last
  batches.  The first clean that finds a marker removable stamps it with a delete horizon,
  ``delete.retention.ms`` ahead, as tombstones are stamped; the first clean past the horizon removes it.
  A marker whose producer has no batch in its current epoch (it wrote only markers since its epoch was
  bumped), or that is the log's last batch, keeps its header (emptied) instead.  An empty control batch
  is removable at once.  The aborted transactions whose marker the clean read after some of their
  batches are reported (``aborted_txns_kept``); the log manager forgets the others below the cleaned
  offset, which have nothing left for read_committed consumers to skip (Kafka's cleaner rewrites the
  transaction index so).
* Records without a key cannot be compacted; Produce refuses them on compacted topics
  (``unified_log.require_keys``) and the cleaner drops any that got in before the topic became compacted, as Kafka's
  does.

Concurrency: the functions here take snapshots and writers (``storage.base``) and may run on the cleaner's
thread; they touch no broker state.  ``Abort`` stops them between batches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..records.builder import build_batch
from ..records.record import ABORT, COMMIT, decode_records, parse_control_record

__all__ = ["CleanPlan", "CleanResult", "TxnTracker", "build_offset_map", "clean_groups", "Aborted"]


class Aborted(Exception):
    """The broker is stopping: the clean gave up between two batches."""


@dataclass
class CleanPlan:
    """What one clean of one log does, decided on the loop (``LogManager``)."""

    name: str
    groups: list[tuple[list[int], object, list]]   # (segment uids, CleanedWriter, snapshots), oldest first
    dirty: list                                    # snapshots the offset map is built from
    now_ms: int
    delete_retention_ms: int
    log_end_offset: int
    producer_last_offsets: dict[int, int]          # producer id -> last offset of its last batch
    abort: threading.Event = field(default_factory=threading.Event)
    # The partition's aborted transactions (marker offset, producer id, first offset), a copy.
    aborted_txns: list[tuple[int, int, int]] = field(default_factory=list)
    # Producers whose current epoch has no batch yet (only markers, e.g. after an epoch bump): producer id
    # -> epoch.  Their markers of that epoch keep their header, as a producer's last batch does.
    marker_only_producers: dict[int, int] = field(default_factory=dict)


@dataclass
class CleanResult:
    records_read: int = 0
    records_kept: int = 0
    tombstones_removed: int = 0
    batches_rewritten: int = 0
    batches_dropped: int = 0
    empty_batches_kept: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    keys: int = 0
    aborted_records_removed: int = 0
    markers_removed: int = 0
    next_delete_horizon_ms: int | None = None     # the earliest horizon a kept tombstone or marker waits for
    # Aborted transactions (as in ``CleanPlan.aborted_txns``) whose marker this clean read after some of their
    # batches; the others below the cleaned offset had no records left and can be forgotten.
    aborted_txns_kept: list[tuple[int, int, int]] = field(default_factory=list)
    unchanged_groups: list[int] = field(default_factory=list)  # indexes of groups not worth swapping
    seconds: float = 0.0


class TxnTracker:
    """Which transaction each batch belongs to, during one walk over the log in offset order (Kafka's
    ``CleanedTransactionMetadata``).

    ``aborted`` are the partition's aborted transactions, ``(marker offset, producer id, first offset)``.
    One is "ongoing" for its producer from the first batch walked at or after its first offset until its
    ABORT marker; a transactional batch of a producer with no ongoing aborted transaction belongs to a
    committed transaction (or one whose marker lies beyond the walk).  An aborted transaction whose marker
    comes before the first batch walked ended before the walk and is ignored.
    """

    def __init__(self, aborted=()):
        self._pending = sorted(aborted, key=lambda t: (t[2], t[0]))
        self._next = 0
        # producer id -> [aborted txn, walked over one of its batches, wrote one of its batches]
        self._aborted: dict[int, list] = {}
        # producer id -> wrote one of its batches, for the transaction (committed) whose batches were walked
        self._committed: dict[int, bool] = {}
        self.kept: list[tuple[int, int, int]] = []  # aborted txns whose marker came after some of their batches

    def _start_up_to(self, h) -> None:
        pending = self._pending
        while self._next < len(pending) and pending[self._next][2] <= h.last_offset:
            txn = pending[self._next]
            self._next += 1
            if txn[0] >= h.base_offset:   # its marker is still ahead
                self._aborted.setdefault(txn[1], [txn, False, False])

    def _ongoing_aborted(self, h):
        state = self._aborted.get(h.producer_id)
        if state is not None and state[0][0] < h.base_offset:
            # Past its marker, which is not in the log any more: that transaction is over.
            del self._aborted[h.producer_id]
            return None
        return state

    def on_batch(self, h) -> bool:
        """A data batch; True when it belongs to an aborted transaction (its records go)."""
        self._start_up_to(h)
        if not h.is_transactional:
            return False
        state = self._ongoing_aborted(h)
        if state is not None:
            state[1] = True
            return True
        self._committed.setdefault(h.producer_id, False)
        return False

    def written(self, h) -> None:
        """The cleaner kept (some of) the transactional batch ``h`` it was just told about."""
        state = self._aborted.get(h.producer_id)
        if state is not None:
            state[2] = True
        else:
            self._committed[h.producer_id] = True

    def on_marker(self, h, records) -> tuple[bool, bool]:
        """A control batch and its records: ``(removable, data left)``.  Removable when no batch of its
        transaction was walked over (it may go once past its delete horizon); data left when one of them
        was written (told by ``written``)."""
        self._start_up_to(h)
        if not records:
            return True, False   # emptied by an earlier clean
        kind, _epoch = parse_control_record(records[0])
        if kind == ABORT:
            state = self._ongoing_aborted(h)
            self._aborted.pop(h.producer_id, None)
            unlisted = self._committed.pop(h.producer_id, None)
            if state is not None and state[1]:
                self.kept.append(state[0])
                return False, state[2]
            if unlisted is not None:
                # Batches of this transaction were walked but it is not among the aborted ones (which the
                # partition keeps while it has records): keep them, and the marker, rather than guess.
                return False, unlisted
            return True, False
        if kind == COMMIT:
            if h.producer_id in self._committed:
                return False, self._committed.pop(h.producer_id)
            return True, False
        return False, True


def build_offset_map(snapshots, abort: threading.Event | None = None, aborted_txns=()) -> dict[bytes, int]:
    """Key -> offset of its latest record, over the batches of ``snapshots`` in order; records of
    ``aborted_txns`` (see ``TxnTracker``) do not count."""
    offsets: dict[bytes, int] = {}
    txns = TxnTracker(aborted_txns)
    for snap in snapshots:
        for header, data in snap.batches():
            if abort is not None and abort.is_set():
                raise Aborted()
            if header.is_control:
                txns.on_marker(header, decode_records(data, 0, header))
                continue
            if txns.on_batch(header):
                continue
            for record in decode_records(data, 0, header):
                if record.key is not None:
                    offsets[record.key] = record.offset
    return offsets


def clean_groups(plan: CleanPlan) -> CleanResult:
    """Build the offset map and write every group's cleaned segment (finished, or aborted on error).

    Runs on the cleaner's thread.  Groups that come out byte for byte as they went in (one segment,
    nothing removed or stamped) are listed in ``unchanged_groups``; their writers are aborted.
    """
    started = time.monotonic()
    result = CleanResult()
    try:
        offset_map = build_offset_map(plan.dirty, plan.abort, plan.aborted_txns)
        result.keys = len(offset_map)
        txns = TxnTracker(plan.aborted_txns)
        for i, (uids, writer, snapshots) in enumerate(plan.groups):
            changed = _clean_group(plan, offset_map, txns, writer, snapshots, result)
            if changed or len(uids) > 1:
                writer.finish()
            else:
                writer.abort()
                result.unchanged_groups.append(i)
        result.aborted_txns_kept = txns.kept
    except BaseException:
        for _uids, writer, _snaps in plan.groups:
            writer.abort()
        raise
    finally:
        for _uids, _writer, snapshots in plan.groups:
            for snap in snapshots:
                snap.close()
        for snap in plan.dirty:
            snap.close()
    result.seconds = time.monotonic() - started
    return result


def _clean_group(plan: CleanPlan, offset_map: dict[bytes, int], txns: TxnTracker, writer, snapshots,
                 result: CleanResult) -> bool:
    changed = False
    for snap in snapshots:
        for header, data in snap.batches():
            if plan.abort.is_set():
                raise Aborted()
            result.bytes_read += len(data)
            if header.is_control:
                out = _clean_marker(plan, txns, header, data, result)
            else:
                out = _clean_batch(plan, offset_map, txns, header, data, result)
                if out is not None and header.is_transactional:
                    txns.written(header)
            if out is not data:
                changed = True
            if out is not None:
                writer.append(out)
                result.bytes_written += len(out)
    return changed


def _note_horizon(result: CleanResult, horizon: int) -> None:
    if result.next_delete_horizon_ms is None or horizon < result.next_delete_horizon_ms:
        result.next_delete_horizon_ms = horizon


def _clean_marker(plan: CleanPlan, txns: TxnTracker, h, data, result: CleanResult):
    """The control batch to write for ``data``: itself, stamped with a delete horizon, emptied, or None."""
    records = decode_records(data, 0, h)
    removable, data_left = txns.on_marker(h, records)
    if not removable:
        # Its transaction had batches in this clean.  When none of them is left, the next clean finds the
        # marker removable: have it come without waiting for new dirty data.
        if not data_left:
            _note_horizon(result, plan.now_ms)
        return data
    protected = (h.last_offset == plan.log_end_offset - 1
                 or (h.producer_id >= 0 and plan.marker_only_producers.get(h.producer_id) == h.producer_epoch))
    if not records:
        if protected:
            return data
        result.batches_dropped += 1
        return None
    if h.has_delete_horizon and plan.now_ms >= h.base_timestamp:
        result.markers_removed += 1
        if not protected:
            result.batches_dropped += 1
            return None
        result.empty_batches_kept += 1
        return build_batch(
            [], base_offset=h.base_offset, last_offset_delta=h.last_offset_delta, producer_id=h.producer_id,
            producer_epoch=h.producer_epoch, base_sequence=h.base_sequence, transactional=h.is_transactional,
            control=True, partition_leader_epoch=h.partition_leader_epoch)
    if h.has_delete_horizon:
        _note_horizon(result, h.base_timestamp)
        return data
    horizon = plan.now_ms + plan.delete_retention_ms
    _note_horizon(result, horizon)
    result.batches_rewritten += 1
    return build_batch(
        records, base_offset=h.base_offset, last_offset_delta=h.last_offset_delta, producer_id=h.producer_id,
        producer_epoch=h.producer_epoch, base_sequence=h.base_sequence, transactional=h.is_transactional,
        control=True, partition_leader_epoch=h.partition_leader_epoch,
        log_append_time_ms=h.max_timestamp if h.is_log_append_time else None, delete_horizon_ms=horizon)


def _clean_batch(plan: CleanPlan, offset_map: dict[bytes, int], txns: TxnTracker, h, data, result: CleanResult):
    """The batch to write for ``data``: ``data`` itself, a rebuilt batch, or None (dropped)."""
    if txns.on_batch(h):
        # A batch of an aborted transaction: every record goes.
        records = []
        result.records_read += h.record_count
        result.aborted_records_removed += h.record_count
        horizon = None
    else:
        records = decode_records(data, 0, h)
        result.records_read += len(records)
        horizon = h.base_timestamp if h.has_delete_horizon else None
    tombstones_expire = horizon is not None and plan.now_ms >= horizon
    kept = []
    for r in records:
        if r.key is None:
            continue
        latest = offset_map.get(r.key)
        if latest is not None and r.offset < latest:
            continue
        if r.value is None and tombstones_expire:
            result.tombstones_removed += 1
            continue
        kept.append(r)
    result.records_kept += len(kept)
    has_tombstone = any(r.value is None for r in kept)
    new_horizon = None
    if has_tombstone:
        new_horizon = horizon if horizon is not None else plan.now_ms + plan.delete_retention_ms
        _note_horizon(result, new_horizon)
    if kept and len(kept) == len(records) and new_horizon == horizon:
        return data
    if not kept:
        # The header stays (empty) while it is its producer's last batch, whose sequence numbers idempotence
        # is rebuilt from, or the log's last batch, which carries the log end offset; else the batch goes.
        last_of_producer = h.producer_id >= 0 and plan.producer_last_offsets.get(h.producer_id) == h.last_offset
        if not (last_of_producer or h.last_offset == plan.log_end_offset - 1):
            result.batches_dropped += 1
            return None
        if h.record_count == 0 and not h.has_delete_horizon:
            return data   # emptied by an earlier clean
        result.empty_batches_kept += 1
    else:
        result.batches_rewritten += 1
    return build_batch(
        kept,
        base_offset=h.base_offset,
        last_offset_delta=h.last_offset_delta,
        compression=h.compression,
        producer_id=h.producer_id,
        producer_epoch=h.producer_epoch,
        base_sequence=h.base_sequence,
        transactional=h.is_transactional,
        partition_leader_epoch=h.partition_leader_epoch,
        log_append_time_ms=h.max_timestamp if h.is_log_append_time else None,
        delete_horizon_ms=new_horizon,
    )
