"""A segment's sparse indexes: offset -> file position, and time -> offset.

File formats are Kafka's (big-endian, fixed-size entries, no header):

* ``.index``      relative offset int32, file position int32
* ``.timeindex``  timestamp int64, relative offset int32

Relative offsets are ``offset - segment base offset``.  An offset index entry
names the *base* offset of the batch starting at that position (Kafka writes
the append's last offset; both make "find the floor entry, then scan forward
over batch headers" work for v2 batches, and the base offset lets recovery
check an entry against the header it points at).

kbroker appends entries in pairs, at the same moments: whenever more than
``index.interval.bytes`` were written since the last entry, the offset index
gets the new batch and the time index gets (largest timestamp so far, last
offset of the batch that holds it).  Pairing makes a time lookup an offset
lookup -- the first batch reaching a timestamp lies between two consecutive
index points -- and lets recovery keep exactly the common prefix of two files
that were being written when the process died.

The entries live in ``array`` objects; the files are written lazily, a run of
new entries at a time (``persist``), because they can always be rebuilt from
the log.  A crash loses at most the unpersisted entries, and recovery re-derives
them from the scan of the segment's tail that it does anyway.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_left, bisect_right

__all__ = ["IndexPair"]

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class IndexPair:
    """The ``.index`` and ``.timeindex`` of one segment, kept in step."""

    __slots__ = ("offset_path", "time_path", "rel_offsets", "positions",
                 "timestamps", "ts_rel_offsets", "_persisted")

    OFFSET_ENTRY_BYTES = _OFFSET_ENTRY.size
    TIME_ENTRY_BYTES = _TIME_ENTRY.size

    def __init__(self, offset_path: str, time_path: str):
        self.offset_path = offset_path
        self.time_path = time_path
        self.rel_offsets = array("i")      # offset index: batch base offset - segment base
        self.positions = array("i")        # offset index: file position of that batch
        self.timestamps = array("q")       # time index: max timestamp so far (non-decreasing)
        self.ts_rel_offsets = array("i")   # time index: last offset of the batch holding it
        self._persisted = 0                # entries already in both files

    def __len__(self) -> int:
        return len(self.positions)

    def append(self, rel_offset: int, position: int, max_timestamp: int, ts_rel_offset: int) -> None:
        self.rel_offsets.append(rel_offset)
        self.positions.append(position)
        self.timestamps.append(max_timestamp)
        self.ts_rel_offsets.append(ts_rel_offset)

    # -- lookups --------------------------------------------------------------

    def position_for(self, rel_offset: int) -> int:
        """Position of the last indexed batch starting at or below ``rel_offset``
        (0 when none is): scanning forward from it finds the batch holding it."""
        i = self.entry_for(rel_offset)
        return self.positions[i] if i >= 0 else 0

    def entry_for(self, rel_offset: int) -> int:
        """The number of the entry ``position_for`` uses; -1 for none."""
        return bisect_right(self.rel_offsets, rel_offset) - 1

    def position_for_timestamp(self, timestamp_ms: int) -> int:
        """A position at or before the first batch whose maxTimestamp >= ``timestamp_ms``."""
        i = self.entry_for_timestamp(timestamp_ms)
        return self.positions[i] if i >= 0 else 0

    def entry_for_timestamp(self, timestamp_ms: int) -> int:
        """The number of the entry ``position_for_timestamp`` uses; -1 for none.

        Entry i records the largest timestamp up to index point i; the first
        entry reaching the target marks the first index point at or after the
        batch we want, and the previous index point is before it.
        """
        return bisect_left(self.timestamps, timestamp_ms) - 1

    # -- persistence ------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self.positions) - self._persisted

    def persist(self, fsync: bool = False) -> None:
        """Append unwritten entries to both files (creating them if needed)."""
        start = self._persisted
        n = len(self.positions)
        if start == n and not fsync:
            return
        time_bytes = b"".join(_TIME_ENTRY.pack(self.timestamps[i], self.ts_rel_offsets[i])
                              for i in range(start, n))
        offset_bytes = b"".join(_OFFSET_ENTRY.pack(self.rel_offsets[i], self.positions[i])
                                for i in range(start, n))
        # The time index first: a crash between the two writes leaves the
        # offset index the shorter file, and recovery keeps the common prefix.
        try:
            _append_file(self.time_path, time_bytes, fsync)
            _append_file(self.offset_path, offset_bytes, fsync)
        except BaseException:
            # A full disk may have taken part of an entry: cut both files back
            # so that the next persist appends whole entries after whole ones.
            for path, entry in ((self.time_path, _TIME_ENTRY), (self.offset_path, _OFFSET_ENTRY)):
                try:
                    os.truncate(path, start * entry.size)
                except OSError:
                    pass
            raise
        self._persisted = n

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` entries, in memory and on disk."""
        if count >= len(self.positions):
            return
        del self.rel_offsets[count:], self.positions[count:]
        del self.timestamps[count:], self.ts_rel_offsets[count:]
        if self._persisted > count:
            self._persisted = count
            for path, entry in ((self.offset_path, _OFFSET_ENTRY), (self.time_path, _TIME_ENTRY)):
                if os.path.exists(path):
                    os.truncate(path, count * entry.size)

    def reset(self) -> None:
        """Forget every entry and empty both files (before a rebuild)."""
        self.truncate(0)
        self._persisted = 0
        for path in (self.offset_path, self.time_path):
            with open(path, "wb"):
                pass

    def load(self, log_size: int) -> tuple[str | None, int]:
        """Read both files; returns (None if they are usable, else why not;
        how many entries past the end of the log were dropped).

        Usable means: whole entries, offsets and positions strictly increasing,
        timestamps and their offsets non-decreasing.  Not errors, but trimmed:
        entries at or past the end of the log (their batches were cut), partial
        entries, and the unmatched tail of the longer file (it was being written
        when the process stopped) -- only the common prefix is kept.  The
        caller still checks the last entry against the batch header it points at.
        """
        try:
            with open(self.offset_path, "rb") as f:
                offset_data = f.read()
            with open(self.time_path, "rb") as f:
                time_data = f.read()
        except FileNotFoundError as exc:
            return f"{os.path.basename(exc.filename)} is missing", 0
        n = min(len(offset_data) // _OFFSET_ENTRY.size, len(time_data) // _TIME_ENTRY.size)
        # Position 0 is never indexed: the first batch of a segment is found without one.
        previous_offset, previous_position = -1, 0
        previous_ts = previous_ts_offset = -(2**63)
        dropped = 0
        for i in range(n):
            rel, position = _OFFSET_ENTRY.unpack_from(offset_data, i * _OFFSET_ENTRY.size)
            ts, ts_rel = _TIME_ENTRY.unpack_from(time_data, i * _TIME_ENTRY.size)
            if position >= log_size:
                # Entries for batches the log no longer has (a crash lost its tail).
                dropped = n - i
                n = i
                break
            if rel <= previous_offset or position <= previous_position:
                return f"offset index entry {i} ({rel}, {position}) is out of order", 0
            if ts < previous_ts or ts_rel < previous_ts_offset or ts_rel < 0:
                return f"time index entry {i} ({ts}, {ts_rel}) is out of order", 0
            previous_offset, previous_position = rel, position
            previous_ts, previous_ts_offset = ts, ts_rel
            self.append(rel, position, ts, ts_rel)
        self._persisted = n
        # Cut partial entries and the unmatched tail of the longer file.
        if len(offset_data) != n * _OFFSET_ENTRY.size:
            os.truncate(self.offset_path, n * _OFFSET_ENTRY.size)
        if len(time_data) != n * _TIME_ENTRY.size:
            os.truncate(self.time_path, n * _TIME_ENTRY.size)
        return None, dropped


def _append_file(path: str, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
