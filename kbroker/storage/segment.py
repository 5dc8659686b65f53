"""The default log store: Kafka's on-disk layout of segment files.

Layout::

    <data_dir>/<topic>-<partition>/
        00000000000000000000.log        batches, back to back, as produced
        00000000000000000000.index      sparse offset index (see index.py)
        00000000000000000000.timeindex  sparse time index
        00000000000000004096.log        the next segment, from offset 4096 ...
        log-start-offset                checkpoint: first offset still readable
        partition.metadata              the topic id, in Kafka's format

Theory of operation.  A partition log is a list of segments ordered by base
offset; only the last (the active segment) is appended to.  An append that
would take the active segment past ``segment.bytes`` -- or its index past
``segment.index.bytes``, or a relative offset past int32 -- first *rolls*: the
active segment is sealed (last batch indexed, everything fsynced) and a new
empty one starts at the append's base offset.  A read finds the segment by
bisecting base offsets, the batch by the segment's sparse index plus a short
walk over batch headers, and returns bytes read with ``os.pread``; nothing is
cached beyond a few numbers and the index entries of each segment.

Deleting records moves ``log_start_offset`` (checkpointed atomically) and then
removes segments that lie wholly below it, renaming each ``.deleted`` first.

Start-up is recovery: every segment's indexes are checked and its tail
scanned with CRC32C (see log_segment.py); a torn or corrupt tail is truncated
and one line is logged to ``kbroker.storage`` per segment repaired.
Durability: see ``base``; ``flush.messages`` bounds what a crash may lose.

Concurrency: none; see ``base``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from bisect import bisect_right

from kbroker.storage.base import (
    LogConfig, LogStore, OffsetOutOfRangeError, PartitionLog, StorageError, split_batches,
)
from kbroker.storage.checkpoint import (
    TMP_SUFFIX, fsync_dir, read_log_start_offset, read_topic_id, write_log_start_offset,
    write_topic_id,
)
from kbroker.storage.index import IndexPair
from kbroker.storage.log_segment import (
    DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, LogSegment, segment_file_name,
)

__all__ = ["SegmentLogStore", "SegmentPartitionLog"]

log = logging.getLogger("kbroker.storage")

_I32_MAX = 2**31 - 1
# Suffix of a partition directory being removed (Kafka: "<topic>-<partition>.<id>-delete").
DELETE_DIR_SUFFIX = "-delete"


class SegmentPartitionLog(PartitionLog):
    def __init__(self, directory: str, config: LogConfig):
        self.directory = directory
        self.name = os.path.basename(directory)
        self.config = config
        self.segments: list[LogSegment] = []
        self._bases: list[int] = []   # segment base offsets, for bisect
        self.log_start_offset = 0
        self.log_end_offset = 0
        self._unflushed_records = 0
        self.closed = False

    @classmethod
    def open(cls, directory: str, config: LogConfig) -> SegmentPartitionLog:
        """Open (creating if needed) and recover the log in ``directory``."""
        os.makedirs(directory, exist_ok=True)
        plog = cls(directory, config)
        try:
            plog._load()
        except BaseException:
            for seg in plog.segments:
                seg.close()
            raise
        return plog

    def _load(self) -> None:
        names = os.listdir(self.directory)
        bases = []
        for name in names:
            if name.endswith(DELETED_SUFFIX) or name.endswith(TMP_SUFFIX):
                # Left by a crash mid-delete or mid-checkpoint.
                os.remove(os.path.join(self.directory, name))
            elif name.endswith(LOG_SUFFIX) and len(name) == 20 + len(LOG_SUFFIX) and name[:20].isdigit():
                bases.append(int(name[:20]))
        bases.sort()
        known = set(bases)
        for name in names:
            stem, dot, suffix = name.partition(".")
            if ("." + suffix) in (INDEX_SUFFIX, TIME_INDEX_SUFFIX) and stem.isdigit() and int(stem) not in known:
                os.remove(os.path.join(self.directory, name))

        checkpoint = read_log_start_offset(self.directory)
        interval = self.config.index_interval_bytes
        for base in bases:
            seg, actions = LogSegment.open(self.directory, base, interval)
            if actions:
                log.warning("%s: recovered segment %s: %s", self.name,
                            segment_file_name(base, LOG_SUFFIX), "; ".join(actions))
            self._add(seg)
        if not self.segments:
            self._add(LogSegment.create(self.directory, checkpoint or 0))
            fsync_dir(self.directory)

        self.log_start_offset = max(checkpoint or 0, self.segments[0].base_offset)
        self.log_end_offset = self.segments[-1].next_offset
        if self.log_start_offset > self.log_end_offset:
            log.warning("%s: log start offset %d is beyond the recovered log end offset %d; "
                        "emptied the log to start at %d", self.name, self.log_start_offset,
                        self.log_end_offset, self.log_start_offset)
            self._reset_at(self.log_start_offset)
        self._delete_segments_below(self.log_start_offset)

    def _add(self, seg: LogSegment) -> None:
        self.segments.append(seg)
        self._bases.append(seg.base_offset)

    # -- writes ----------------------------------------------------------------

    def append(self, batch, base_offset, last_offset, max_timestamp, record_count) -> int:
        self._check_open()
        if base_offset < self.log_end_offset or last_offset < base_offset:
            raise StorageError(f"{self.name}: append of offsets {base_offset}..{last_offset} "
                               f"at log end offset {self.log_end_offset}")
        batches = split_batches(batch)
        if batches[0][2] != base_offset or batches[-1][3] != last_offset:
            raise StorageError(f"{self.name}: batch headers say offsets {batches[0][2]}..{batches[-1][3]}, "
                               f"the append says {base_offset}..{last_offset}")
        seg = self._segment_for_append(len(batch), base_offset, last_offset)
        position = seg.append(batch, batches, self.config.index_interval_bytes)
        self.log_end_offset = last_offset + 1
        flush_messages = self.config.flush_messages
        if flush_messages is not None:
            self._unflushed_records += record_count
            if self._unflushed_records >= flush_messages:
                self.flush()
        return position

    def _segment_for_append(self, size: int, base_offset: int, last_offset: int) -> LogSegment:
        seg = self.segments[-1]
        offset_fits = last_offset - seg.base_offset <= _I32_MAX
        if seg.size == 0:
            if not offset_fits:
                # An empty segment too far below the append: start it again where the append is.
                self.segments.pop()
                self._bases.pop()
                seg.delete()
                seg = LogSegment.create(self.directory, base_offset)
                self._add(seg)
                fsync_dir(self.directory)
            return seg
        cfg = self.config
        index_full = len(seg.index) >= cfg.segment_index_bytes // IndexPair.TIME_ENTRY_BYTES
        if seg.size > cfg.segment_bytes - size or index_full or not offset_fits:
            seg = self._roll(base_offset)
        return seg

    def _roll(self, base_offset: int) -> LogSegment:
        self.segments[-1].seal()
        seg = LogSegment.create(self.directory, base_offset)
        self._add(seg)
        fsync_dir(self.directory)
        return seg

    def delete_records_before(self, offset: int) -> None:
        self._check_open()
        if offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"{self.name}: cannot delete before {offset}: log end offset is {self.log_end_offset}")
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        write_log_start_offset(self.directory, offset)
        if offset == self.log_end_offset and self.segments[-1].size:
            self._roll(offset)  # so the last segment with data can go too
        self._delete_segments_below(offset)

    def _delete_segments_below(self, offset: int) -> None:
        segments = self.segments
        while len(segments) > 1 and segments[1].base_offset <= offset:
            seg = segments.pop(0)
            self._bases.pop(0)
            seg.delete()

    def truncate_to(self, offset: int) -> None:
        self._check_open()
        if offset >= self.log_end_offset:
            return
        if offset <= self.log_start_offset:
            self._reset_at(offset)
            return
        # The first segment starts at or below log_start_offset < offset, so one remains.
        while self.segments[-1].base_offset >= offset:
            self._bases.pop()
            self.segments.pop().delete()
        seg = self.segments[-1]
        dropped_base = seg.truncate_from(offset, self.config.index_interval_bytes)
        seg.flush()
        new_end = offset if dropped_base is None else min(offset, dropped_base)
        self.log_end_offset = new_end
        if seg.next_offset < new_end and seg.size:
            # A gap (after compaction) at the end: keep the log end offset across
            # restarts by starting a segment there.
            self._roll(new_end)

    def _reset_at(self, offset: int) -> None:
        """Remove every segment and start empty at ``offset``."""
        for seg in self.segments:
            seg.delete()
        self.segments.clear()
        self._bases.clear()
        self._add(LogSegment.create(self.directory, offset))
        fsync_dir(self.directory)
        self.log_start_offset = self.log_end_offset = offset
        write_log_start_offset(self.directory, offset)

    # -- reads -------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> list:
        self._check_open()
        if offset < self.log_start_offset:
            raise OffsetOutOfRangeError(
                f"{self.name}: offset {offset} is below the log start offset {self.log_start_offset}")
        if offset >= self.log_end_offset:
            return []
        i = max(bisect_right(self._bases, offset) - 1, 0)
        segments = self.segments
        out = []
        remaining = max_bytes
        while i < len(segments):
            data, full = segments[i].read(offset, remaining, min_one_batch and not out)
            if data is not None:
                out.append(data)
                remaining -= len(data)
            if full or remaining <= 0:
                break
            i += 1
        return out

    def find_offset_by_timestamp(self, timestamp_ms: int):
        self._check_open()
        start = self.log_start_offset
        for seg in self.segments:
            if seg.size and seg.max_timestamp >= timestamp_ms and seg.next_offset > start:
                found = seg.find_batch_by_timestamp(timestamp_ms, start)
                if found is not None:
                    return found
        return None

    def max_timestamp(self) -> tuple[int, int]:
        self._check_open()
        best = (-1, -1)
        for seg in self.segments:
            if seg.size and seg.max_timestamp > best[0]:
                best = (seg.max_timestamp, seg.offset_of_max_timestamp)
        return best

    # -- housekeeping --------------------------------------------------------------

    def size_bytes(self) -> int:
        return sum(seg.size for seg in self.segments)

    def flush(self) -> None:
        self._check_open()
        self.segments[-1].flush()  # older segments were flushed when they rolled
        self._unflushed_records = 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.segments[-1].seal()
        finally:
            for seg in self.segments:
                seg.close()

    def _discard(self) -> None:
        """Close without flushing: the directory is about to be removed."""
        self.closed = True
        for seg in self.segments:
            seg.close()

    def _check_open(self) -> None:
        if self.closed:
            raise StorageError(f"{self.name}: log is closed")


class SegmentLogStore(LogStore):
    """Partition logs as directories of segment files under ``data_dir``."""

    def __init__(self, data_dir):
        self.data_dir = os.fspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        for name in os.listdir(self.data_dir):
            if name.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)
        self._logs: dict[tuple[str, int], SegmentPartitionLog] = {}

    def _dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.data_dir, f"{topic}-{partition}")

    def open_log(self, topic, topic_id, partition, config) -> SegmentPartitionLog:
        key = (topic, partition)
        plog = self._logs.get(key)
        if plog is not None and not plog.closed:
            plog.config = config
            return plog
        directory = self._dir(topic, partition)
        known = read_topic_id(directory) if os.path.isdir(directory) else None
        if known is not None and known != topic_id:
            log.warning("%s-%d: removed the data of an earlier topic with this name (id %s)",
                        topic, partition, known)
            self._remove_dir(directory)
        if known != topic_id:
            os.makedirs(directory, exist_ok=True)
            write_topic_id(directory, topic_id)
            fsync_dir(self.data_dir)
        plog = SegmentPartitionLog.open(directory, config)
        self._logs[key] = plog
        return plog

    def delete_log(self, topic, topic_id, partition) -> None:
        plog = self._logs.pop((topic, partition), None)
        if plog is not None:
            plog._discard()
        self._remove_dir(self._dir(topic, partition))

    def _remove_dir(self, directory: str) -> None:
        if not os.path.isdir(directory):
            return
        # Rename first so a crash never leaves a half-removed log under a live name.
        doomed = f"{directory}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
        os.replace(directory, doomed)
        fsync_dir(self.data_dir)
        shutil.rmtree(doomed)

    def close(self) -> None:
        logs, self._logs = self._logs, {}
        for plog in logs.values():
            plog.close()
