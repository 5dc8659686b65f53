"""In-memory log store: the semantics of the segment store without files.

Each partition keeps its batches as immutable ``bytes`` in a list, with
parallel lists of last offsets and running maximum timestamps so that offset
and timestamp lookups are a bisect.  Used by ``--storage memory`` and tests;
everything is lost when the process exits.

Concurrency: none; see ``base``.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left

from kbroker.storage.base import (
    LogConfig, LogStore, OffsetOutOfRangeError, PartitionLog, StorageError, split_batches,
)

__all__ = ["MemoryLogStore", "MemoryPartitionLog"]

class MemoryPartitionLog(PartitionLog):
    def __init__(self, config: LogConfig):
        self.config = config
        self.log_start_offset = 0
        self.log_end_offset = 0
        self._batches: list[bytes] = []
        self._last_offsets: list[int] = []
        self._max_timestamps: list[int] = []
        self._running_max_ts: list[int] = []  # non-decreasing: bisect for timestamps
        self._size = 0
        self._closed = False

    # -- writes --------------------------------------------------------------

    def append(self, batch, base_offset, last_offset, max_timestamp, record_count) -> int:
        self._check_open()
        if base_offset < self.log_end_offset or last_offset < base_offset:
            raise StorageError(
                f"append of offsets {base_offset}..{last_offset} at log end offset {self.log_end_offset}")
        data = bytes(batch)
        parts = split_batches(data)
        if parts[0][2] != base_offset or parts[-1][3] != last_offset:
            raise StorageError(f"batch headers say offsets {parts[0][2]}..{parts[-1][3]}, "
                               f"the append says {base_offset}..{last_offset}")
        if len(parts) == 1:
            pieces = [(data, parts[0][3], parts[0][4])]
        else:
            pieces = [(data[pos:pos + size], last, ts) for pos, size, _base, last, ts in parts]
        running = self._running_max_ts[-1] if self._running_max_ts else -1
        for piece, last, ts in pieces:
            self._batches.append(piece)
            self._last_offsets.append(last)
            self._max_timestamps.append(ts)
            running = max(running, ts)
            self._running_max_ts.append(running)
        self._size += len(data)
        self.log_end_offset = last_offset + 1
        return 0

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
            self._size -= sum(len(b) for b in self._batches[:n])
            del self._batches[:n], self._last_offsets[:n], self._max_timestamps[:n]
            self._rebuild_running_max()

    def truncate_to(self, offset: int) -> None:
        self._check_open()
        if offset >= self.log_end_offset:
            return
        if offset <= self.log_start_offset:
            self._batches.clear()
            self._last_offsets.clear()
            self._max_timestamps.clear()
            self._running_max_ts.clear()
            self._size = 0
            self.log_start_offset = self.log_end_offset = offset
            return
        n = bisect_left(self._last_offsets, offset)  # batches kept
        new_end = offset
        if n < len(self._batches):
            first_dropped = _base_offset(self._batches[n])
            new_end = min(offset, first_dropped)
        self._size -= sum(len(b) for b in self._batches[n:])
        del self._batches[n:], self._last_offsets[n:], self._max_timestamps[n:], self._running_max_ts[n:]
        self.log_end_offset = new_end

    def _rebuild_running_max(self) -> None:
        running = -1
        out = []
        for ts in self._max_timestamps:
            if ts > running:
                running = ts
            out.append(running)
        self._running_max_ts = out

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
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("log is closed")


def _base_offset(batch: bytes) -> int:
    return int.from_bytes(batch[:8], "big", signed=True)


class MemoryLogStore(LogStore):
    def __init__(self):
        self._logs: dict[tuple[str, int], tuple[uuid.UUID, MemoryPartitionLog]] = {}

    def open_log(self, topic, topic_id, partition, config) -> MemoryPartitionLog:
        key = (topic, partition)
        entry = self._logs.get(key)
        if entry is not None:
            known_id, log = entry
            if known_id != topic_id:
                raise StorageError(f"{topic}-{partition} belongs to topic id {known_id}, not {topic_id}")
            # A closed log reopens with its data, like a segment log after a restart.
            log._closed = False
            log.config = config
            return log
        log = MemoryPartitionLog(config)
        self._logs[key] = (topic_id, log)
        return log

    def delete_log(self, topic, topic_id, partition) -> None:
        entry = self._logs.pop((topic, partition), None)
        if entry is not None:
            entry[1].close()

    def close(self) -> None:
        for _id, log in self._logs.values():
            log.close()
