"""Log compaction's record-level work: which records survive, and the batches that carry them.

Theory of operation (Kafka's LogCleaner, on one broker).  A compacted log is cleaned from its first
segment up to the *first uncleanable offset*: the active segment, and any segment holding a record younger
than ``min.compaction.lag.ms``, are never touched.  The *dirty* part is what was appended since the last
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
* Control batches (transaction markers) are kept as they are, for now.
* Records without a key cannot be compacted; Produce refuses them on compacted topics
  (``require_keys``) and the cleaner drops any that got in before the topic became compacted, as Kafka's
  does.

Concurrency: the functions here take snapshots and writers (``storage.base``) and may run on the cleaner's
thread; they touch no broker state.  ``Abort`` stops them between batches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .errors import ErrorCode, KafkaError
from .records.builder import build_batch
from .records.errors import CorruptRecordError
from .records.record import decode_records

__all__ = ["require_keys", "CleanPlan", "CleanResult", "build_offset_map", "clean_groups", "Aborted"]


class Aborted(Exception):
    """The broker is stopping: the clean gave up between two batches."""


def require_keys(buf, batches, topic_partition: str) -> None:
    """Refuse a produced batch with a keyless record on a compacted topic (Kafka's LogValidator:
    INVALID_RECORD, "Compacted topic cannot accept message without key")."""
    for pos, header in batches:
        try:
            records = decode_records(buf, pos, header)
        except CorruptRecordError as e:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
        for record in records:
            if record.key is None:
                raise KafkaError(ErrorCode.INVALID_RECORD,
                                 f"Compacted topic cannot accept message without key in topic partition "
                                 f"{topic_partition}.")


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
    next_delete_horizon_ms: int | None = None     # the earliest horizon a kept tombstone waits for
    unchanged_groups: list[int] = field(default_factory=list)  # indexes of groups not worth swapping
    seconds: float = 0.0


def build_offset_map(snapshots, abort: threading.Event | None = None) -> dict[bytes, int]:
    """Key -> offset of its latest record, over the batches of ``snapshots`` in order."""
    offsets: dict[bytes, int] = {}
    for snap in snapshots:
        for header, data in snap.batches():
            if abort is not None and abort.is_set():
                raise Aborted()
            if header.is_control:
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
        offset_map = build_offset_map(plan.dirty, plan.abort)
        result.keys = len(offset_map)
        for i, (uids, writer, snapshots) in enumerate(plan.groups):
            changed = _clean_group(plan, offset_map, writer, snapshots, result)
            if changed or len(uids) > 1:
                writer.finish()
            else:
                writer.abort()
                result.unchanged_groups.append(i)
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


def _clean_group(plan: CleanPlan, offset_map: dict[bytes, int], writer, snapshots, result: CleanResult) -> bool:
    changed = False
    for snap in snapshots:
        for header, data in snap.batches():
            if plan.abort.is_set():
                raise Aborted()
            result.bytes_read += len(data)
            out = _clean_batch(plan, offset_map, header, data, result)
            if out is not data:
                changed = True
            if out is not None:
                writer.append(out)
                result.bytes_written += len(out)
    return changed


def _clean_batch(plan: CleanPlan, offset_map: dict[bytes, int], h, data, result: CleanResult):
    """The batch to write for ``data``: ``data`` itself, a rebuilt batch, or None (dropped)."""
    if h.is_control:
        return data
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
        if result.next_delete_horizon_ms is None or new_horizon < result.next_delete_horizon_ms:
            result.next_delete_horizon_ms = new_horizon
    if len(kept) == len(records) and new_horizon == horizon:
        return data
    if not kept:
        last_of_producer = h.producer_id >= 0 and plan.producer_last_offsets.get(h.producer_id) == h.last_offset
        if not (last_of_producer or h.last_offset == plan.log_end_offset - 1):
            result.batches_dropped += 1
            return None
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
