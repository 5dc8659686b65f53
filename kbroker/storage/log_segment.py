"""One log segment: ``<base offset, 20 digits>.log`` and its two indexes.

A segment holds whole batches back to back, every batch's offsets at or above
the segment's base offset and increasing.  In memory a segment keeps only a
few numbers (size, next offset, largest timestamp and where it is) and its
index entries; batch bytes are read with ``os.pread`` when asked for.

Opening a segment is also its recovery: the indexes are loaded and checked
(rebuilt from a scan of the whole segment when missing or inconsistent), then
the batches after the last index entry are scanned, checking lengths, offsets
and CRC32C.  The first batch that fails ends the segment: the file is
truncated there.  That tail is what a crash can leave torn, since appends go
through the page cache and indexes are written lazily; it is also bounded --
``seal`` (at roll and close) indexes the last batch, so a cleanly closed
segment's tail is a single batch.

Index entries are trusted only as far as they are checked.  On load, as
Kafka's sanityCheck does, whole entries in order within the log, and the last
one against the batch it names.  An entry in the body can still lie (point
into the middle of a batch, or at another batch), so every lookup checks the
header at the entry it uses -- the read that follows needs that header anyway
-- and a lie rebuilds the index from the segment (``_rebuild_index``).  Walks
over batch headers check each one (magic, a length that fits the file, offsets
that increase): reads return whole batches up to a damaged one and raise
``CorruptSegmentError`` when the batch asked for is the damaged one, so an
answer never carries bytes that are not whole batches.

Writes go through ``_write`` (``os.pwrite`` at the segment's recorded size,
never ``O_APPEND``), a seam tests replace to inject a full disk.  An append
either completes or is undone: on any error the file is cut back to where it
was and the segment's numbers and index entries are restored, so the next
append lands where it should even if a failed write left bytes behind.

A segment's age for ``segment.ms`` (``rolling_base_ms``) is when it was
created, or opened at start-up.  Kafka uses its first record's timestamp;
with producer-chosen timestamps (replayed data, tests) that rolls a segment
per batch, so kbroker uses the broker's clock.

Concurrency: none; see ``base``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import struct
import time

from crc32c import crc32c

from kbroker.histogram import LOG_FLUSH
from kbroker.records.batch import ATTRIBUTES_OFFSET, HEADER, HEADER_SIZE, LOG_OVERHEAD, MAGIC
from kbroker.storage.base import StorageError
from kbroker.storage.file_handles import is_out_of_descriptors
from kbroker.storage.file_region import FileRegion
from kbroker.storage.index import IndexPair

__all__ = ["LogSegment", "CorruptSegmentError", "segment_file_name", "LOG_SUFFIX", "INDEX_SUFFIX", "TIME_INDEX_SUFFIX",
           "DELETED_SUFFIX", "CLEANED_SUFFIX", "SWAP_SUFFIX", "iter_file_batches"]

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
# Compaction's replacement segment while it is written, then once it is complete (Kafka's names).
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"

log = logging.getLogger("kbroker.storage")


class CorruptSegmentError(StorageError):
    """A batch header in a segment's body is damaged: the batch cannot be served."""


# The write seam: ``_write(fd, data, position) -> bytes written``.  Tests replace it.
_write = os.pwrite
_fdatasync = getattr(os, "fdatasync", os.fsync)
_uids = itertools.count(1)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000

_I32_MAX = 2**31 - 1
# baseOffset, batchLength, magic, lastOffsetDelta: what offset lookups need (27 bytes).
_OFFSETS = struct.Struct(">qi4xb6xi")
# The smallest batchLength a v2 batch header can have (no records).
_MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
# index.interval.bytes for an index rebuilt at read time when the segment was not opened with one.
_DEFAULT_INDEX_INTERVAL = 4096
_unpack_offsets = _OFFSETS.unpack_from
_unpack_header = HEADER.unpack_from

# Bytes per pread when scanning a segment (recovery, index rebuild).
SCAN_CHUNK_BYTES = 1 << 20
# Bytes per pread when walking batch headers for a FileRegion (the batches themselves are not read).
HEADER_WALK_BYTES = 8 * 1024
# Bytes per pread when walking to the batch holding a timestamp.
TIMESTAMP_WALK_BYTES = 64 * 1024
# Index entries held in memory before they are appended to the index files.
# Bounds what recovery re-derives after a crash: 1024 entries is ~4 MB of log
# at the default index.interval.bytes.
INDEX_PERSIST_ENTRIES = 1024


def segment_file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


class _Window:
    """A pread-backed window over a file, refilled as a walk moves forward."""

    __slots__ = ("fd", "end", "chunk", "start", "data")

    def __init__(self, fd: int, end: int, chunk: int):
        self.fd = fd
        self.end = end
        self.chunk = chunk
        self.start = 0
        self.data = b""

    def ensure(self, pos: int, n: int) -> int:
        """Index in ``self.data`` of file position ``pos`` with ``n`` bytes
        available after it; -1 if the file (up to ``end``) is shorter."""
        rel = pos - self.start
        if rel >= 0 and rel + n <= len(self.data):
            return rel
        if pos + n > self.end:
            return -1
        self.data = os.pread(self.fd, min(max(n, self.chunk), self.end - pos), pos)
        self.start = pos
        return 0 if len(self.data) >= n else -1


class LogSegment:
    __slots__ = ("directory", "base_offset", "log_path", "index", "_fd", "size", "next_offset",
                 "max_timestamp", "offset_of_max_timestamp", "bytes_since_index",
                 "last_batch_position", "last_batch_base", "uid", "rolling_base_ms", "modified_ms",
                 "roll_jitter_ms", "_undo", "index_interval_bytes", "handles", "_make")

    def __init__(self, directory: str, base_offset: int):
        self.uid = next(_uids)
        self.directory = directory
        self.base_offset = base_offset
        self.rolling_base_ms = self.modified_ms = wall_ms()
        self.roll_jitter_ms = 0                  # drawn from segment.jitter.ms when it is created
        self._undo = None                        # how to take back the last append
        self.index_interval_bytes = _DEFAULT_INDEX_INTERVAL  # for an index rebuilt at read time
        self.log_path = self._path(LOG_SUFFIX)
        self.index = IndexPair(self._path(INDEX_SUFFIX), self._path(TIME_INDEX_SUFFIX))
        self._fd = -1                             # the .log file's descriptor, -1 while closed (see ``fd``)
        self.handles = None                       # the store's FileHandles (file_handles.py), if any
        self._make = None                         # lazy: makes the directory before the files (see ``lazy``)
        self.size = 0
        self.next_offset = base_offset           # last offset + 1; base offset when empty
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1         # last offset of the batch holding it
        self.bytes_since_index = 0
        self.last_batch_position = -1
        self.last_batch_base = -1

    def _path(self, suffix: str) -> str:
        return os.path.join(self.directory, segment_file_name(self.base_offset, suffix))

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path!r}, size={self.size}, next_offset={self.next_offset})"

    # -- the file descriptor ----------------------------------------------------------

    @property
    def fd(self) -> int:
        """The ``.log`` file's descriptor, opened again if the store's budget closed it (file_handles.py),
        and the files made first for a ``lazy`` segment."""
        fd = self._fd
        if fd < 0:
            return self._reopen()
        if self.handles is not None:
            self.handles.touch(self)
        return fd

    def _reopen(self) -> int:
        handles = self.handles
        try:
            fd = self._open_file()
        except OSError as e:
            if handles is None or not is_out_of_descriptors(e) or not handles.shed():
                raise
            fd = self._open_file()
        self._fd = fd
        if handles is not None:
            handles.opened(self)
        return fd

    def _open_file(self) -> int:
        if self._make is None:
            return os.open(self.log_path, os.O_RDWR)
        self._make()
        fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.index.reset()  # creates both files empty
        except BaseException:
            os.close(fd)
            raise
        self._make = None
        return fd

    def _release(self) -> None:
        """Close the file to make room (the store's budget); ``fd`` opens it again."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def attach(self, handles) -> None:
        """Keep this segment's file open within ``handles``' budget."""
        self.handles = handles
        if self._fd >= 0:
            handles.opened(self)

    @property
    def made(self) -> bool:
        """False for a ``lazy`` segment whose files do not exist yet."""
        return self._make is None

    # -- life cycle -------------------------------------------------------------

    @classmethod
    def lazy(cls, directory: str, base_offset: int, make) -> LogSegment:
        """A new empty segment whose files are made when first needed (an append, a flush of data):
        ``make()`` first (it makes the partition's directory), then the files. Creating thousands of
        partitions (one CreateTopics request) then costs no file operations until they are written to."""
        seg = cls(directory, base_offset)
        seg._make = make
        return seg

    @classmethod
    def create(cls, directory: str, base_offset: int, jitter_ms: int = 0) -> LogSegment:
        """A new empty segment; files left over at that name are replaced."""
        seg = cls(directory, base_offset)
        seg._fd = os.open(seg.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            seg.index.reset()  # creates both files empty
        except BaseException:
            seg.close()
            raise
        if jitter_ms > 0:
            seg.roll_jitter_ms = random.randrange(jitter_ms)
        return seg

    @classmethod
    def open(cls, directory: str, base_offset: int, index_interval_bytes: int) -> tuple[LogSegment, list[str]]:
        """Open and recover an existing segment; returns it and what recovery
        had to do (empty when the segment was intact)."""
        seg = cls(directory, base_offset)
        seg.index_interval_bytes = index_interval_bytes
        seg._fd = os.open(seg.log_path, os.O_RDWR)
        try:
            seg.modified_ms = os.fstat(seg.fd).st_mtime_ns // 1_000_000
            actions = seg._recover(index_interval_bytes)
        except BaseException:
            seg.close()
            raise
        return seg, actions

    @classmethod
    def open_cleaned(cls, directory: str, base_offset: int, index_interval_bytes: int) -> LogSegment:
        """Open a segment compaction just wrote (and fsynced): its indexes are
        built by a scan (no CRC check: the cleaner wrote every batch itself) and
        written without an fsync -- recovery rebuilds what a crash loses."""
        seg = cls(directory, base_offset)
        seg.index_interval_bytes = index_interval_bytes
        seg._fd = os.open(seg.log_path, os.O_RDWR)
        try:
            seg.index.reset()
            seg.size = os.fstat(seg.fd).st_size
            seg._scan(0, index_interval_bytes, check_crc=False)
            last = seg.last_batch_position
            if last > 0 and (not len(seg.index) or seg.index.positions[-1] < last):
                seg.index.append(seg.last_batch_base - base_offset, last, seg.max_timestamp,
                                 seg.offset_of_max_timestamp - base_offset)
            seg.index.persist()
        except BaseException:
            seg.close()
            raise
        return seg

    def _recover(self, interval: int) -> list[str]:
        actions = []
        file_size = os.fstat(self.fd).st_size
        problem, dropped = self.index.load(file_size)
        if dropped:
            actions.append(f"dropped {dropped} index entries past the end of the log")
        if problem is None and len(self.index):
            problem = self._check_last_entry(file_size)
        if problem is not None:
            actions.append(f"rebuilt its indexes ({problem})")
            self.index.reset()
        self.size = file_size
        while True:
            start = self.index.positions[-1] if len(self.index) else 0
            truncated = self._scan(start, interval, check_crc=True)
            if truncated is not None:
                actions.append(truncated)
            if start and self.size <= start:
                # The indexed batch itself was bad: drop its entry, scan from the one before.
                self.index.truncate(len(self.index) - 1)
                continue
            break
        self.index.persist()
        return actions

    def _check_last_entry(self, file_size: int) -> str | None:
        position = self.index.positions[-1]
        expected = self.base_offset + self.index.rel_offsets[-1]
        data = os.pread(self.fd, HEADER_SIZE, position)
        if len(data) < HEADER_SIZE:
            return f"last index entry points past the log ({position})"
        base, _length, _epoch, magic, *_ = _unpack_header(data)
        if magic != MAGIC or base != expected:
            return f"last index entry ({expected} at {position}) does not match the batch there"
        return None

    def _scan(self, start: int, interval: int, check_crc: bool) -> str | None:
        """Walk batches from ``start`` (0 or an indexed position) to the end of
        the file, re-deriving index entries, next offset and max timestamp.
        Truncates the file at the first bad batch; returns what it did."""
        index = self.index
        base_offset = self.base_offset
        if start:
            max_ts = index.timestamps[-1]
            offset_of_max = base_offset + index.ts_rel_offsets[-1]
            min_base = base_offset + index.rel_offsets[-1]
        else:
            max_ts = offset_of_max = -1
            min_base = base_offset
        next_offset = min_base
        bytes_since = 0
        last_pos = last_base = -1
        end = self.size
        window = _Window(self.fd, end, SCAN_CHUNK_BYTES)
        pos = start
        reason = None
        while pos < end:
            at = window.ensure(pos, HEADER_SIZE)
            if at < 0:
                reason = f"{end - pos} bytes are too few for a batch header"
                break
            (base, length, _epoch, magic, crc, _attrs, last_delta, _bts, batch_max_ts,
             _pid, _pepoch, _bseq, count) = _unpack_header(window.data, at)
            size = length + LOG_OVERHEAD
            if magic != MAGIC:
                reason = f"magic {magic}"
                break
            if length < HEADER_SIZE - LOG_OVERHEAD or pos + size > end:
                reason = f"batch length {length} does not fit"
                break
            last = base + last_delta
            if base < next_offset or last_delta < 0 or count < 0 or last - base_offset > _I32_MAX:
                reason = f"offsets {base}..{last} out of order after {next_offset - 1}"
                break
            if check_crc:
                at = window.ensure(pos, size)
                with memoryview(window.data) as view:
                    if crc32c(view[at + ATTRIBUTES_OFFSET:at + size]) != crc:
                        reason = f"CRC32C mismatch in the batch at offset {base}"
                        break
            if batch_max_ts > max_ts:
                max_ts = batch_max_ts
                offset_of_max = last
            if bytes_since > interval:
                index.append(base - base_offset, pos, max_ts, offset_of_max - base_offset)
                bytes_since = 0
            bytes_since += size
            last_pos, last_base = pos, base
            next_offset = last + 1
            pos += size
        if last_pos >= 0 or not start:
            self.next_offset = next_offset
            self.max_timestamp = max_ts
            self.offset_of_max_timestamp = offset_of_max
            self.bytes_since_index = bytes_since
            self.last_batch_position = last_pos
            self.last_batch_base = last_base
        if pos >= end:
            return None
        os.ftruncate(self.fd, pos)
        self.size = pos
        return f"truncated {end - pos} bytes at position {pos} ({reason})"

    def seal(self) -> None:
        """Index the last batch, write and fsync everything (at roll and close),
        so that reopening scans one batch."""
        last = self.last_batch_position
        if last > 0 and (not len(self.index) or self.index.positions[-1] < last):
            self.index.append(self.last_batch_base - self.base_offset, last, self.max_timestamp,
                              self.offset_of_max_timestamp - self.base_offset)
            self.bytes_since_index = self.size - last
        self.flush()

    def flush(self) -> None:
        if self._make is not None:
            return  # never written: nothing to make durable
        t0 = time.perf_counter()
        os.fsync(self.fd)
        LOG_FLUSH.observe_ms((time.perf_counter() - t0) * 1000)
        self.index.persist(fsync=True)

    def sync_data(self) -> None:
        """Make the batches durable (the flush policy's fsync): the indexes
        are left to recovery, which rebuilds what a crash loses of them."""
        if self._make is not None:
            return
        t0 = time.perf_counter()
        _fdatasync(self.fd)
        LOG_FLUSH.observe_ms((time.perf_counter() - t0) * 1000)

    def close(self) -> None:
        if self._fd >= 0:
            if self.handles is not None:
                self.handles.forget(self)
            os.close(self._fd)
            self._fd = -1

    def rename_deleted(self) -> list[str]:
        """Close and rename the files ``.deleted``; returns the new paths, for
        the caller to remove (now, or after file.delete.delay.ms).  Kafka's
        order: a crash in between leaves files that start-up removes, never
        half a segment under a live name."""
        self.close()
        renamed = []
        for path in (self.log_path, self.index.offset_path, self.index.time_path):
            try:
                os.replace(path, path + DELETED_SUFFIX)
                renamed.append(path + DELETED_SUFFIX)
            except FileNotFoundError:
                pass
        return renamed

    def delete(self) -> None:
        """Rename the files ``.deleted``, then remove them."""
        for path in self.rename_deleted():
            os.remove(path)

    # -- writes --------------------------------------------------------------------

    def append(self, data, batches, interval: int) -> int:
        """Write ``data`` (whole batches described by ``batches``, see
        ``base.split_batches``) at the end; returns its position.  On any
        error nothing is left of it (see the module docstring)."""
        position = self.size
        index = self.index
        self._undo = (position, len(index), self.next_offset, self.max_timestamp,
                      self.offset_of_max_timestamp, self.bytes_since_index, self.last_batch_position,
                      self.last_batch_base, self.modified_ms)
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):  # regular files write fully unless the disk is full
                    written += _write(self.fd, view[written:], position + written)
            for rel_pos, size, base, last, batch_max_ts in batches:
                pos = position + rel_pos
                if batch_max_ts > self.max_timestamp:
                    self.max_timestamp = batch_max_ts
                    self.offset_of_max_timestamp = last
                if self.bytes_since_index > interval:
                    index.append(base - self.base_offset, pos, self.max_timestamp,
                                 self.offset_of_max_timestamp - self.base_offset)
                    self.bytes_since_index = 0
                self.bytes_since_index += size
                self.last_batch_position = pos
                self.last_batch_base = base
                self.next_offset = last + 1
            self.size = position + written
            self.modified_ms = wall_ms()
            if index.pending >= INDEX_PERSIST_ENTRIES:
                index.persist()
        except BaseException:
            try:
                self.undo_last_append()
            except OSError:
                pass  # the failure being reported is the first one
            raise
        return position

    def undo_last_append(self) -> None:
        """Take back the last ``append`` (it failed, or its fsync did): the file,
        the numbers and the index entries return to what they were before it."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        (position, entries, self.next_offset, self.max_timestamp, self.offset_of_max_timestamp,
         self.bytes_since_index, self.last_batch_position, self.last_batch_base, self.modified_ms) = undo
        self.size = position
        self.index.truncate(entries)
        # If this fails too the bytes stay past ``size``: appends write at
        # ``size`` and recovery cuts whatever follows the last good batch.
        os.ftruncate(self.fd, position)

    def truncate_from(self, offset: int, interval: int) -> int | None:
        """Drop the batches whose last offset is >= ``offset``; returns the base
        offset of the first batch dropped, None if nothing was."""
        pos, base = self._find_batch(offset)
        if pos >= self.size:
            return None
        self._undo = None
        os.ftruncate(self.fd, pos)
        self.size = pos
        kept = 0
        positions = self.index.positions
        while kept < len(positions) and positions[kept] < pos:
            kept += 1
        self.index.truncate(kept)
        self._scan(self.index.positions[-1] if kept else 0, interval, check_crc=False)
        return base

    # -- reads ---------------------------------------------------------------------

    def _find_batch(self, offset: int, window: _Window | None = None) -> tuple[int, int]:
        """``(position, base offset)`` of the first batch whose last offset is
        >= ``offset``; position == size when there is none."""
        if window is None:
            window = _Window(self.fd, self.size, SCAN_CHUNK_BYTES)
        end = self.size
        if 0 <= self.last_batch_position < end and offset >= self.last_batch_base:
            # At or past the last batch appended: a consumer following the log end reads there. The walk
            # starts from it, not from the index entry before it (up to an index interval of batches back).
            pos, min_base = self.last_batch_position, self.last_batch_base
        else:
            entry = self.index.entry_for(offset - self.base_offset) if offset > self.base_offset else -1
            pos, min_base = self._checked_entry(entry, window)
        while pos < end:
            base, size, last = self._batch_at(pos, min_base, window)
            if last >= offset:
                return pos, base
            pos += size
            min_base = last + 1
        return end, -1

    def _checked_entry(self, entry: int, window: _Window) -> tuple[int, int]:
        """(position, base offset) of index entry ``entry`` (-1: the segment's
        first batch) once the batch header there says the same; an entry that
        lies has the index rebuilt, and the walk starts from the first batch."""
        if entry < 0:
            return 0, self.base_offset
        index = self.index
        pos = index.positions[entry]
        expected = self.base_offset + index.rel_offsets[entry]
        at = window.ensure(pos, _OFFSETS.size)
        if at >= 0:
            base, _length, magic, _delta = _unpack_offsets(window.data, at)
            if base == expected and magic == MAGIC:
                # The entry is true; whether the batch there is whole is for the walk to check.
                return pos, expected
        self._rebuild_index(f"index entry {entry} ({expected} at {pos}) does not match the batch there")
        return 0, self.base_offset

    def _batch_at(self, pos: int, min_base: int, window: _Window) -> tuple[int, int, int]:
        """(base offset, size, last offset) of the batch at ``pos``, checked to
        be a whole v2 batch within the file whose offsets start at or above
        ``min_base``; CorruptSegmentError if it is not."""
        at = window.ensure(pos, _OFFSETS.size)
        if at < 0:
            raise StorageError(f"{self.log_path} is shorter than its recorded size {self.size}")
        base, length, magic, last_delta = _unpack_offsets(window.data, at)
        if magic != MAGIC or length < _MIN_BATCH_LENGTH or pos + length + LOG_OVERHEAD > self.size or \
                base < min_base or last_delta < 0:
            raise CorruptSegmentError(f"{self.log_path}: the batch header at position {pos} is damaged "
                                      f"(base offset {base}, length {length}, magic {magic})")
        return base, length + LOG_OVERHEAD, base + last_delta

    def _rebuild_index(self, why: str) -> None:
        """Index the segment afresh from its batch headers (a lying entry was
        found at read time).  Unlike recovery nothing is truncated: the walk
        stops at a damaged header, which reads then report."""
        log.warning("%s: rebuilding its indexes (%s)", self.log_path, why)
        index = self.index
        index.reset()
        interval = self.index_interval_bytes
        window = _Window(self.fd, self.size, SCAN_CHUNK_BYTES)
        pos = 0
        min_base = self.base_offset
        since = 0
        max_ts = offset_of_max = -1
        while pos < self.size:
            try:
                base, size, last = self._batch_at(pos, min_base, window)
            except StorageError:
                break
            at = window.ensure(pos, HEADER_SIZE)
            if at < 0:
                break
            batch_max_ts = _unpack_header(window.data, at)[8]
            if batch_max_ts > max_ts:
                max_ts, offset_of_max = batch_max_ts, last
            if since > interval:
                index.append(base - self.base_offset, pos, max_ts, offset_of_max - self.base_offset)
                since = 0
            since += size
            pos += size
            min_base = last + 1
        if pos == self.size:
            self.bytes_since_index = since
        self._undo = None
        index.persist()

    def read(self, offset: int, max_bytes: int, min_one_batch: bool) -> tuple[memoryview | None, bool]:
        """Whole batches from the one holding ``offset`` within ``max_bytes``
        (at least one if ``min_one_batch``).  Returns ``(bytes or None, full)``,
        ``full`` meaning a batch did not fit, so the caller should stop."""
        region, full = self.read_region(offset, max_bytes, min_one_batch, pin=False)
        if region is None:
            return None, full
        return memoryview(region.read()), full

    def read_region(self, offset: int, max_bytes: int, min_one_batch: bool,
                    max_offset: int | None = None, pin: bool = True) -> tuple[FileRegion | None, bool]:
        """As ``read``, as a region of the file: only the batch headers are read (to find where the
        batches within ``max_bytes`` end). Batches starting at or after ``max_offset`` are left out.
        ``pin``: the region outlives this call, so its file stays open for now (file_handles.py)."""
        end = self.size
        window = _Window(self.fd, end, HEADER_WALK_BYTES)
        start, _base = self._find_batch(offset, window)
        pos = start
        total = 0
        last = -1
        full = False
        min_base = -1
        while pos < end:
            try:
                base, size, batch_last = self._batch_at(pos, min_base, window)
            except CorruptSegmentError:
                if not total:
                    raise
                full = True  # the whole batches before the damaged one; the next read reports it
                break
            if (max_offset is not None and base >= max_offset) or \
                    (total + size > max_bytes and (total or not min_one_batch)):
                full = True
                break
            total += size
            pos += size
            last = min_base = batch_last
            min_base += 1
        if not total:
            return None, full
        if pin and self.handles is not None:
            self.handles.pin(self)  # the region names the descriptor (file_handles.py)
        return FileRegion(self._fd, start, total, last), full

    def find_batch_by_timestamp(self, timestamp_ms: int, min_offset: int) -> bytes | None:
        """The first batch with maxTimestamp >= ``timestamp_ms`` and last offset
        >= ``min_offset``, or None."""
        end = self.size
        window = _Window(self.fd, end, TIMESTAMP_WALK_BYTES)
        entry = self.index.entry_for_timestamp(timestamp_ms)
        if min_offset > self.base_offset:
            entry = max(entry, self.index.entry_for(min_offset - self.base_offset))
        pos, min_base = self._checked_entry(entry, window)
        while pos < end:
            base, size, last = self._batch_at(pos, min_base, window)
            at = window.ensure(pos, HEADER_SIZE)
            if at < 0:
                raise StorageError(f"{self.log_path} is shorter than its recorded size {end}")
            batch_max_ts = _unpack_header(window.data, at)[8]
            if batch_max_ts >= timestamp_ms and last >= min_offset:
                at = window.ensure(pos, size)
                return window.data[at:at + size]
            pos += size
            min_base = last + 1
        return None


def iter_file_batches(fd: int, end: int):
    """Yield ``(header fields, batch bytes)`` for each batch of a segment file
    up to ``end``, reading with pread (the cleaner's thread, on its own fd)."""
    window = _Window(fd, end, SCAN_CHUNK_BYTES)
    pos = 0
    while pos < end:
        at = window.ensure(pos, HEADER_SIZE)
        if at < 0:
            raise StorageError(f"a segment file is shorter than its recorded size {end}")
        fields = _unpack_header(window.data, at)
        size = fields[1] + LOG_OVERHEAD
        at = window.ensure(pos, size)
        if at < 0:
            raise StorageError(f"a segment file is shorter than its recorded size {end}")
        yield fields, window.data[at:at + size]
        pos += size
