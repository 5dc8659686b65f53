"""In-memory log store: the semantics of the segment store without files.

Each partition keeps its batches as immutable ``bytes`` in a list, with
parallel lists of base offsets, last offsets and running maximum timestamps so
that offset and timestamp lookups are a bisect.  Segments are virtual: a list
of base offsets (and ages) cut the batches into runs, rolled by
``segment.bytes`` and ``segment.ms`` exactly as files would be, so that
retention and compaction behave the same on both backends.  Used by
``--storage memory`` and tests; everything is lost when the process exits.

Concurrency: none; see ``base``.  Snapshots are lists of immutable bytes.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from bisect import bisect_left

from kbroker.records.batch import read_header
from kbroker.storage.base import (
    CleanedWriter, FlushPolicy, LogConfig, LogStore, OffsetOutOfRangeError, PartitionLog,
    SegmentInfo, SegmentSnapshot, StorageError,
)

__all__ = ["MemoryLogStore", "MemoryPartitionLog"]

_uids = itertools.count(1)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _Segment:
    """A virtual segment: the batches whose base offset is at or above its own
    and below the next segment's.  ``size`` is kept for the active one only
    (the base class's roll rules read it)."""

    __slots__ = ("uid", "base_offset", "rolling_base_ms", "modified_ms", "roll_jitter_ms", "size")

    def __init__(self, base_offset: int, jitter_ms: int = 0):
        self.uid = next(_uids)
        self.base_offset = base_offset
        self.rolling_base_ms = self.modified_ms = _wall_ms()
        self.roll_jitter_ms = random.randrange(jitter_ms) if jitter_ms > 0 else 0
        self.size = 0


class MemoryPartitionLog(PartitionLog):
    def __init__(self, config: LogConfig, name: str = "memory"):
        super().__init__(name, config)
        self._batches: list[bytes] = []
        self._base_offsets: list[int] = []
        self._last_offsets: list[int] = []
        self._max_timestamps: list[int] = []
        self._running_max_ts: list[int] = []  # non-decreasing: bisect for timestamps
        self._size = 0
        self._segments = [_Segment(0)]

    # -- writes --------------------------------------------------------------

    def append(self, batch, base_offset, last_offset, record_count, layout=None) -> int:
        data = bytes(batch)
        parts = self._check_append(data, base_offset, last_offset, layout)
        now = _wall_ms()
        if self._roll_before_append(self._segments[-1], len(data), now):
            self._roll(base_offset)
        if len(parts) == 1:
            pieces = [(data, parts[0][2], parts[0][3], parts[0][4])]
        else:
            pieces = [(data[pos:pos + size], base, last, ts) for pos, size, base, last, ts in parts]
        running = self._running_max_ts[-1] if self._running_max_ts else -1
        for piece, base, last, ts in pieces:
            self._batches.append(piece)
            self._base_offsets.append(base)
            self._last_offsets.append(last)
            self._max_timestamps.append(ts)
            running = max(running, ts)
            self._running_max_ts.append(running)
        self._size += len(data)
        active = self._segments[-1]
        active.size += len(data)
        active.modified_ms = now
        self.log_end_offset = last_offset + 1
        return 0

    def _active_segment(self) -> _Segment:
        return self._segments[-1]

    def _roll(self, base_offset: int) -> None:
        self._segments.append(_Segment(base_offset, self.config.segment_jitter_ms))

    def _recount_active(self) -> None:
        self._segments[-1].size = self._segment_size(len(self._segments) - 1)

    def delete_records_before(self, offset: int) -> None:
        self._check_open()
        if offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"cannot delete before {offset}: log end offset is {self.log_end_offset}")
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        n = bisect_left(self._last_offsets, offset)  # batches entirely below offset
        if n:
            self._drop_front(n)
        segments = self._segments
        while len(segments) > 1 and segments[1].base_offset <= offset:
            segments.pop(0)

    def _drop_front(self, n: int) -> None:
        self._size -= sum(len(b) for b in self._batches[:n])
        del self._batches[:n], self._base_offsets[:n], self._last_offsets[:n], self._max_timestamps[:n]
        self._rebuild_running_max()
        self._recount_active()

    def delete_oldest_segments(self, count: int) -> int:
        self._check_open()
        count = min(count, len(self._segments) - 1)
        if count <= 0:
            return 0
        new_start = self._segments[count].base_offset
        self.log_start_offset = max(self.log_start_offset, new_start)
        n = bisect_left(self._base_offsets, new_start)
        freed = sum(len(b) for b in self._batches[:n])
        del self._segments[:count]
        if n:
            self._drop_front(n)
        return freed

    def truncate_to(self, offset: int) -> None:
        self._check_open()
        if offset >= self.log_end_offset:
            return
        if offset <= self.log_start_offset:
            self._reset_at(offset)
            return
        while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
            self._segments.pop()
        n = bisect_left(self._last_offsets, offset)  # batches kept
        new_end = offset
        if n < len(self._batches):
            new_end = min(offset, self._base_offsets[n])
        self._size -= sum(len(b) for b in self._batches[n:])
        del self._batches[n:], self._base_offsets[n:], self._last_offsets[n:]
        del self._max_timestamps[n:], self._running_max_ts[n:]
        self._recount_active()
        self.log_end_offset = new_end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self._check_open()
        self._reset_at(offset)

    def _reset_at(self, offset: int) -> None:
        """Drop every batch and start empty at ``offset``."""
        self._batches.clear()
        self._base_offsets.clear()
        self._last_offsets.clear()
        self._max_timestamps.clear()
        self._running_max_ts.clear()
        self._size = 0
        self._segments = [_Segment(offset, self.config.segment_jitter_ms)]
        self.log_start_offset = self.log_end_offset = offset

    def _rebuild_running_max(self) -> None:
        running = -1
        out = []
        for ts in self._max_timestamps:
            if ts > running:
                running = ts
            out.append(running)
        self._running_max_ts = out

    # -- segments ------------------------------------------------------------

    def _batch_range(self, i: int) -> tuple[int, int]:
        """Indexes ``[lo, hi)`` of segment ``i``'s batches."""
        segments = self._segments
        lo = bisect_left(self._base_offsets, segments[i].base_offset)
        hi = (bisect_left(self._base_offsets, segments[i + 1].base_offset) if i + 1 < len(segments)
              else len(self._batches))
        return lo, hi

    def _segment_size(self, i: int) -> int:
        lo, hi = self._batch_range(i)
        return sum(len(b) for b in self._batches[lo:hi])

    def segment_infos(self) -> list[SegmentInfo]:
        self._check_open()
        out = []
        last = len(self._segments) - 1
        for i, seg in enumerate(self._segments):
            lo, hi = self._batch_range(i)
            out.append(SegmentInfo(
                seg.uid, seg.base_offset, self._last_offsets[hi - 1] + 1 if hi > lo else seg.base_offset,
                sum(len(b) for b in self._batches[lo:hi]), max(self._max_timestamps[lo:hi], default=-1),
                seg.rolling_base_ms, seg.modified_ms, i == last))
        return out

    def _closed_segment(self, uid: int) -> int:
        for i, seg in enumerate(self._segments[:-1]):
            if seg.uid == uid:
                return i
        return -1

    def snapshot_segment(self, segment: SegmentInfo) -> SegmentSnapshot:
        self._check_open()
        i = self._closed_segment(segment.uid)
        if i < 0:
            raise StorageError(f"segment {segment.base_offset} is not a closed segment of the log")
        lo, hi = self._batch_range(i)
        return _ListSnapshot(self._batches[lo:hi])

    def cleaned_writer(self, base_offset: int) -> CleanedWriter:
        self._check_open()
        return _ListWriter(base_offset)

    def replace_segments(self, replacements) -> list[bool]:
        return [self._replace(uids, writer) for uids, writer in replacements]

    def _replace(self, uids: list[int], writer) -> bool:
        first = self._closed_segment(uids[0]) if uids and not self.closed else -1
        end = first + len(uids)
        if (first < 0 or [s.uid for s in self._segments[first:end]] != list(uids) or end >= len(self._segments)
                or self._segments[first].base_offset != writer.base_offset):
            writer.abort()
            return False
        lo, _ = self._batch_range(first)
        _, hi = self._batch_range(end - 1)
        new = writer.batches
        headers = [read_header(b) for b in new]
        self._size += sum(len(b) for b in new) - sum(len(b) for b in self._batches[lo:hi])
        self._batches[lo:hi] = new
        self._base_offsets[lo:hi] = [h.base_offset for h in headers]
        self._last_offsets[lo:hi] = [h.last_offset for h in headers]
        self._max_timestamps[lo:hi] = [h.max_timestamp for h in headers]
        self._rebuild_running_max()
        seg = _Segment(writer.base_offset)
        seg.rolling_base_ms = self._segments[first].rolling_base_ms
        self._segments[first:end] = [seg]
        return True

    def purge_deleted(self, now_ms: int, remove=None) -> int | None:
        return None

    def set_cleaner_checkpoint(self, offset: int) -> None:
        self.cleaner_checkpoint = offset

    # -- reads ---------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> list:
        self._check_open()
        if offset < self.log_start_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is below the log start offset {self.log_start_offset}")
        if offset >= self.log_end_offset:
            return []
        i = bisect_left(self._last_offsets, offset)
        out = []
        total = 0
        batches = self._batches
        while i < len(batches):
            b = batches[i]
            if total + len(b) > max_bytes and (out or not min_one_batch):
                break
            out.append(b)
            total += len(b)
            i += 1
        return out

    def find_offset_by_timestamp(self, timestamp_ms: int):
        self._check_open()
        i = bisect_left(self._running_max_ts, timestamp_ms)
        # Batches below the log start offset are skipped, not answered.
        while i < len(self._batches):
            if self._max_timestamps[i] >= timestamp_ms and self._last_offsets[i] >= self.log_start_offset:
                return self._batches[i]
            i += 1
        return None

    def max_timestamp(self) -> tuple[int, int]:
        self._check_open()
        if not self._batches:
            return -1, -1
        best = self._running_max_ts[-1]
        i = bisect_left(self._running_max_ts, best)
        return best, self._last_offsets[i]

    # -- housekeeping ----------------------------------------------------------

    def size_bytes(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class _ListSnapshot(SegmentSnapshot):
    def __init__(self, batches: list[bytes]):
        self._batches = batches

    def batches(self):
        for b in self._batches:
            yield read_header(b), b

    def close(self) -> None:
        self._batches = []


class _ListWriter(CleanedWriter):
    def __init__(self, base_offset: int):
        self.base_offset = base_offset
        self.batches: list[bytes] = []

    def append(self, batch) -> None:
        self.batches.append(bytes(batch))

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        self.batches = []


class MemoryLogStore(LogStore):
    def __init__(self):
        self.flush_policy = FlushPolicy()  # nothing to fsync
        self._logs: dict[tuple[str, int], tuple[uuid.UUID, MemoryPartitionLog]] = {}
        self._high_watermarks: dict[tuple[str, int], int] = {}  # the last checkpoint, for logs reopened

    def checkpoint_high_watermarks(self, offsets: dict[tuple[str, int], int]) -> None:
        self._high_watermarks = dict(offsets)

    def open_log(self, topic, topic_id, partition, config) -> MemoryPartitionLog:
        key = (topic, partition)
        entry = self._logs.get(key)
        if entry is not None:
            known_id, log = entry
            if known_id != topic_id:
                raise StorageError(f"{topic}-{partition} belongs to topic id {known_id}, not {topic_id}")
            # A closed log reopens with its data, like a segment log after a restart.
            if log.closed:
                log.checkpointed_high_watermark = self._high_watermarks.get(key)
            log.closed = False
            log.config = config
            return log
        log = MemoryPartitionLog(config, f"{topic}-{partition}")
        self._logs[key] = (topic_id, log)
        return log

    def delete_log(self, topic, topic_id, partition) -> None:
        entry = self._logs.pop((topic, partition), None)
        if entry is not None:
            entry[1].close()

    def close(self) -> None:
        for _id, log in self._logs.values():
            log.close()
