"""The default log store: Kafka's on-disk layout of segment files.

Layout::

    <data_dir>/<topic>-<partition>/
        00000000000000000000.log        batches, back to back, as produced
        00000000000000000000.index      sparse offset index (see index.py)
        00000000000000000000.timeindex  sparse time index
        00000000000000004096.log        the next segment, from offset 4096 ...
        log-start-offset                checkpoint: first offset still readable
        cleaner-offset-checkpoint       checkpoint: compaction has cleaned below this offset
        partition.metadata              the topic id, in Kafka's format

Theory of operation.  A partition log is a list of segments ordered by base
offset; only the last (the active segment) is appended to.  An append that
would take the active segment past ``segment.bytes`` -- or its index past
``segment.index.bytes``, or a relative offset past int32, or the segment past
``segment.ms`` of age -- first *rolls*: the active segment is sealed (last
batch indexed, everything fsynced) and a new empty one starts at the append's
base offset.  A read finds the segment by bisecting base offsets, the batch by
the segment's sparse index plus a short walk over batch headers, and returns
bytes read with ``os.pread``; nothing is cached beyond a few numbers and the
index entries of each segment.

Removing segments (DeleteRecords, retention, compaction's swap) renames their
files ``.deleted`` and removes them ``file.delete.delay.ms`` later
(``purge_deleted``, driven by the log manager; at the latest on close).  The
log start offset is checkpointed before any segment goes.

Compaction's swap (``replace_segments``), crash-safe in Kafka's order: the
cleaner writes ``<base>.log.cleaned`` and fsyncs it; on the loop it is renamed
``<base>.log.swap`` (from here on the new segment is committed), the old
segments are renamed ``.deleted``, and the swap file becomes ``<base>.log``;
its indexes are built by a scan.  Start-up removes ``.cleaned`` files (an
unfinished clean: the old segments are intact) and completes a ``.swap``: the
segments whose base offsets fall inside it go, the swap file takes its name.

Start-up is recovery: every segment's indexes are checked and its tail
scanned with CRC32C (see log_segment.py); a torn or corrupt tail is truncated.
Whatever recovery had to do in a partition is said in one line to
``kbroker.storage``; an intact partition says nothing.

Durability: see ``base``.  ``flush.messages``/``flush.ms`` and the store's
``FlushPolicy`` decide when the active segment is fdatasynced; a failed append
or a failed fsync takes the append back (``LogSegment.undo_last_append``).

Concurrency: none; see ``base``.  Snapshots and cleaned writers, used from the
cleaner's thread, open their own file descriptors.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from bisect import bisect_right
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

from kbroker.records.batch import BatchHeader
from kbroker.storage.base import (
    CleanedWriter, FlushPolicy, LogConfig, LogStore, OffsetOutOfRangeError, PartitionLog,
    SegmentInfo, SegmentSnapshot, StorageError,
)
from kbroker.storage.checkpoint import (
    PARTITION_METADATA_FILE, REPLICATION_OFFSET_CHECKPOINT_FILE, TMP_SUFFIX, fsync_dir, read_cleaner_checkpoint,
    read_log_start_offset, read_offset_checkpoint, read_topic_id, write_cleaner_checkpoint, write_log_start_offset,
    topic_id_file_text, write_offset_checkpoint, write_topic_id,
)
from kbroker.storage.file_handles import FileHandles
from kbroker.storage.index import IndexPair
from kbroker.storage.log_segment import (
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
    LogSegment, iter_file_batches, segment_file_name, wall_ms,
)

__all__ = ["SegmentLogStore", "SegmentPartitionLog"]

log = logging.getLogger("kbroker.storage")

_I32_MAX = 2**31 - 1
# Suffix of a partition directory being removed (Kafka: "<topic>-<partition>.<id>-delete"), and of one
# removed because the cluster's metadata no longer gives it to this broker (Kafka: "...-stray").
DELETE_DIR_SUFFIX = "-delete"
STRAY_DIR_SUFFIX = "-stray"
_SEGMENT_NAME_LEN = 20
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")  # Kafka's legal topic names (topics.py checks them too)


def remove_files(paths: list[str]) -> None:
    """Remove ``.deleted`` files (already renamed: nothing reads them any more)."""
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _remove_trees(directories: list[str]) -> None:
    """Remove renamed (``-delete``) partition directories; one that cannot be is left for the next start."""
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


def _segment_base(name: str, suffix: str) -> int | None:
    """The base offset of ``<20 digits><suffix>``, else None."""
    if name.endswith(suffix) and len(name) == _SEGMENT_NAME_LEN + len(suffix) and name[:_SEGMENT_NAME_LEN].isdigit():
        return int(name[:_SEGMENT_NAME_LEN])
    return None


class SegmentPartitionLog(PartitionLog):
    def __init__(self, directory: str, config: LogConfig, flush_policy: FlushPolicy | None = None,
                 handles: FileHandles | None = None):
        super().__init__(os.path.basename(directory), config, flush_policy)
        self.directory = directory
        self.handles = handles        # the store's budget of open segment files (file_handles.py)
        self._topic_id = None         # for partition.metadata, while the directory is still to be made
        self._unmade = False          # created lazily: no directory yet (create_new)
        self._dir_unsynced = False    # made lazily, its directory entries not yet fsynced
        self.segments: list[LogSegment] = []
        self._bases: list[int] = []   # segment base offsets, for bisect
        self._pending_deletes: list[tuple[int, list[str]]] = []  # (due wall ms, .deleted paths)

    @classmethod
    def open(cls, directory: str, config: LogConfig, flush_policy: FlushPolicy | None = None,
             handles: FileHandles | None = None) -> SegmentPartitionLog:
        """Open (creating if needed) and recover the log in ``directory``."""
        os.makedirs(directory, exist_ok=True)
        plog = cls(directory, config, flush_policy, handles)
        try:
            plog._load()
        except BaseException:
            for seg in plog.segments:
                seg.close()
            raise
        return plog

    @classmethod
    def create_new(cls, directory: str, topic_id, config: LogConfig,
                   flush_policy: FlushPolicy | None = None, handles: FileHandles | None = None) -> SegmentPartitionLog:
        """A log in a directory that does not exist yet, made lazily: nothing is on disk until the log is
        first written to (an append, a truncation, a checkpoint), when ``_make_directory`` makes the
        directory and ``partition.metadata`` and the segment makes its files (``LogSegment.lazy``).
        Creating 5,000 topics made 5,000 directories and 20,000 files, most of the time CreateTopics took;
        Kafka makes them too, after its answer. A crash before the first write leaves nothing on disk; the
        topic is in the metadata store, so the next start opens the partition lazily again. The new
        directory's entries are fsynced at the log's first flush (Kafka's ``LocalLog`` flushes the
        parent directory of a new log at its first flush too); a crash before that may lose the directory
        or some of its files, which hold nothing flushed, and recovery makes the missing ones."""
        plog = cls(directory, config, flush_policy, handles)
        plog._topic_id = topic_id
        plog._unmade = True
        plog._add(LogSegment.lazy(directory, 0, plog._make_directory))
        return plog

    def _make_directory(self) -> None:
        if not self._unmade:
            return
        os.makedirs(self.directory, exist_ok=True)
        if self._topic_id is not None:
            with open(os.path.join(self.directory, PARTITION_METADATA_FILE), "w", encoding="ascii") as f:
                f.write(topic_id_file_text(self._topic_id))
        self._unmade = False
        self._dir_unsynced = True

    def _sync_new_directory(self) -> None:
        """At the first flush of a lazily made log: its files' names, and its directory's, made durable."""
        if self._dir_unsynced:
            fsync_dir(self.directory)
            fsync_dir(os.path.dirname(self.directory) or ".")
            self._dir_unsynced = False

    def _load(self) -> None:
        actions: list[str] = []
        names = os.listdir(self.directory)
        for name in names:
            if name.endswith((DELETED_SUFFIX, TMP_SUFFIX, CLEANED_SUFFIX)):
                # Left by a crash mid-delete, mid-checkpoint or mid-clean.
                os.remove(os.path.join(self.directory, name))
                if name.endswith(CLEANED_SUFFIX):
                    actions.append(f"discarded an unfinished compaction ({name})")
        swaps = sorted(b for b in (_segment_base(n, LOG_SUFFIX + SWAP_SUFFIX) for n in names) if b is not None)
        for base in swaps:
            actions.append(self._complete_swap(base))
        names = os.listdir(self.directory)
        bases = sorted(b for b in (_segment_base(n, LOG_SUFFIX) for n in names) if b is not None)
        known = set(bases)
        for name in names:
            stem, dot, suffix = name.partition(".")
            if ("." + suffix) in (INDEX_SUFFIX, TIME_INDEX_SUFFIX) and stem.isdigit() and int(stem) not in known:
                os.remove(os.path.join(self.directory, name))

        checkpoint = read_log_start_offset(self.directory)
        interval = self.config.index_interval_bytes
        for base in bases:
            seg, seg_actions = LogSegment.open(self.directory, base, interval)
            if seg_actions:
                actions.append(f"segment {segment_file_name(base, LOG_SUFFIX)}: {'; '.join(seg_actions)}")
            self._add(seg)
        if not self.segments:
            self._add(LogSegment.create(self.directory, checkpoint or 0))
            fsync_dir(self.directory)

        self.log_start_offset = max(checkpoint or 0, self.segments[0].base_offset)
        self.log_end_offset = self.segments[-1].next_offset
        if self.log_start_offset > self.log_end_offset:
            actions.append(f"log start offset {self.log_start_offset} is beyond the recovered log end offset "
                           f"{self.log_end_offset}: emptied the log to start at {self.log_start_offset}")
            self._reset_at(self.log_start_offset)
        self.cleaner_checkpoint = read_cleaner_checkpoint(self.directory) or 0
        for seg in self._segments_below(self.log_start_offset):
            seg.delete()
        if actions:
            log.warning("%s: recovered: %s", self.name, "; ".join(actions))

    def _complete_swap(self, base: int) -> str:
        """Finish compaction's swap of ``<base>.log.swap`` (see the module docstring)."""
        swap_path = os.path.join(self.directory, segment_file_name(base, LOG_SUFFIX + SWAP_SUFFIX))
        fd = os.open(swap_path, os.O_RDONLY)
        try:
            last = base
            for fields, _batch in iter_file_batches(fd, os.fstat(fd).st_size):
                last = fields[0] + fields[6]  # baseOffset + lastOffsetDelta
        finally:
            os.close(fd)
        replaced = []
        for name in os.listdir(self.directory):
            b = _segment_base(name, LOG_SUFFIX)
            if b is not None and base <= b <= last:
                replaced.append(name)
                LogSegment(self.directory, b).delete()
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):  # rebuilt from the new log by recovery
            try:
                os.remove(os.path.join(self.directory, segment_file_name(base, suffix)))
            except FileNotFoundError:
                pass
        os.replace(swap_path, os.path.join(self.directory, segment_file_name(base, LOG_SUFFIX)))
        fsync_dir(self.directory)
        return (f"completed an interrupted compaction swap: {segment_file_name(base, LOG_SUFFIX + SWAP_SUFFIX)} "
                f"replaced {', '.join(sorted(replaced)) or 'nothing'}")

    def _add(self, seg: LogSegment) -> None:
        if self.handles is not None:
            seg.attach(self.handles)
        self.segments.append(seg)
        self._bases.append(seg.base_offset)

    # -- writes ----------------------------------------------------------------

    def append(self, batch, base_offset, last_offset, record_count, layout=None) -> int:
        batches = self._check_append(batch, base_offset, last_offset, layout)
        if self._unmade:
            self._make_directory()
        seg = self._segment_for_append(len(batch), base_offset, last_offset)
        position = seg.append(batch, batches, self.config.index_interval_bytes)
        previous_end = self.log_end_offset
        self.log_end_offset = last_offset + 1
        self._unflushed_records += record_count
        if self._flush_due():
            try:
                seg.sync_data()
            except BaseException:
                # Not durable, so not acknowledged, so not kept: a retry must not find it twice.
                self.log_end_offset = previous_end
                self._unflushed_records -= record_count
                try:
                    seg.undo_last_append()
                except OSError:
                    pass
                raise
            self._sync_new_directory()
            self._flushed()
        return position

    def _sync_active(self) -> None:
        self.segments[-1].sync_data()
        self._sync_new_directory()

    def _active_segment(self) -> LogSegment:
        return self.segments[-1]

    def _segment_for_append(self, size: int, base_offset: int, last_offset: int) -> LogSegment:
        seg = self.segments[-1]
        offset_fits = last_offset - seg.base_offset <= _I32_MAX
        if seg.size == 0:
            if not offset_fits:
                # An empty segment too far below the append: start it again where the append is.
                self.segments.pop()
                self._bases.pop()
                seg.delete()
                seg = LogSegment.create(self.directory, base_offset, self.config.segment_jitter_ms)
                self._add(seg)
                fsync_dir(self.directory)
            return seg
        index_full = len(seg.index) >= self.config.segment_index_bytes // IndexPair.TIME_ENTRY_BYTES
        if index_full or not offset_fits or self._roll_before_append(seg, size, wall_ms()):
            seg = self._roll(base_offset)
        return seg

    def _roll(self, base_offset: int) -> LogSegment:
        self.segments[-1].seal()
        self._flushed()  # seal fsynced everything
        seg = LogSegment.create(self.directory, base_offset, self.config.segment_jitter_ms)
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
        self._make_directory()
        self.log_start_offset = offset
        write_log_start_offset(self.directory, offset)
        if offset == self.log_end_offset and self.segments[-1].size:
            self._roll(offset)  # so the last segment with data can go too
        self._retire(self._segments_below(offset))

    def _segments_below(self, offset: int) -> list[LogSegment]:
        """Take the segments wholly below ``offset`` (never the last) out of the list."""
        segments = self.segments
        n = 0
        while n < len(segments) - 1 and segments[n + 1].base_offset <= offset:
            n += 1
        gone = segments[:n]
        del segments[:n], self._bases[:n]
        return gone

    def delete_oldest_segments(self, count: int) -> int:
        self._check_open()
        count = min(count, len(self.segments) - 1)
        if count <= 0:
            return 0
        new_start = self.segments[count].base_offset
        if new_start > self.log_start_offset:
            self.log_start_offset = new_start
            write_log_start_offset(self.directory, new_start)
        gone = self.segments[:count]
        del self.segments[:count], self._bases[:count]
        freed = sum(seg.size for seg in gone)
        self._retire(gone)
        return freed

    def _retire(self, segments: list[LogSegment]) -> None:
        """Rename the segments' files ``.deleted``; remove them after file.delete.delay.ms."""
        if not segments:
            return
        paths = []
        for seg in segments:
            paths.extend(seg.rename_deleted())
        delay = self.config.file_delete_delay_ms
        now = wall_ms()
        self._pending_deletes.append((now + delay, paths))
        if delay <= 0:
            self.purge_deleted(now)

    def purge_deleted(self, now_ms: int, remove=None) -> int | None:
        keep = []
        due_paths = []
        for due, paths in self._pending_deletes:
            (due_paths.extend(paths) if due <= now_ms else keep.append((due, paths)))
        self._pending_deletes = keep
        if due_paths:
            (remove or remove_files)(due_paths)
        return min((due for due, _ in keep), default=None)

    def truncate_to(self, offset: int) -> None:
        self._check_open()
        if offset >= self.log_end_offset:
            return
        self._make_directory()
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

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self._check_open()
        self._reset_at(offset)

    def _reset_at(self, offset: int) -> None:
        """Remove every segment and start empty at ``offset``."""
        self._make_directory()
        for seg in self.segments:
            seg.delete()
        self.segments.clear()
        self._bases.clear()
        self._add(LogSegment.create(self.directory, offset, self.config.segment_jitter_ms))
        fsync_dir(self.directory)
        self.log_start_offset = self.log_end_offset = offset
        write_log_start_offset(self.directory, offset)

    # -- compaction ------------------------------------------------------------------

    def segment_infos(self) -> list[SegmentInfo]:
        self._check_open()
        last = len(self.segments) - 1
        return [SegmentInfo(seg.uid, seg.base_offset, seg.next_offset, seg.size, seg.max_timestamp,
                            seg.rolling_base_ms, seg.modified_ms, i == last)
                for i, seg in enumerate(self.segments)]

    def snapshot_segment(self, segment: SegmentInfo) -> SegmentSnapshot:
        self._check_open()
        i = bisect_right(self._bases, segment.base_offset) - 1
        if i < 0 or i >= len(self.segments) - 1 or self.segments[i].uid != segment.uid:
            raise StorageError(f"{self.name}: segment {segment.base_offset} is not a closed segment of the log")
        seg = self.segments[i]
        return _FileSnapshot(seg.log_path, seg.size)

    def cleaned_writer(self, base_offset: int) -> CleanedWriter:
        self._check_open()
        self._make_directory()
        return _FileCleanedWriter(os.path.join(self.directory, segment_file_name(base_offset, LOG_SUFFIX)),
                                  base_offset)

    def replace_segments(self, replacements) -> list[bool]:
        ok = []
        accepted = []
        closed = {seg.uid: i for i, seg in enumerate(self.segments[:-1])}
        for uids, writer in replacements:
            first = -1 if self.closed or not uids else closed.get(uids[0], -1)
            fits = (first >= 0 and [s.uid for s in self.segments[first:first + len(uids)]] == list(uids)
                    and first + len(uids) < len(self.segments)
                    and self.segments[first].base_offset == writer.base_offset)
            ok.append(fits)
            if fits:
                accepted.append((self.segments[first:first + len(uids)], writer))
            else:
                writer.abort()
        if not accepted:
            return ok
        try:
            for _old, writer in accepted:
                os.replace(writer.cleaned_path, writer.log_path + SWAP_SUFFIX)
            fsync_dir(self.directory)
        except BaseException:
            for _old, writer in accepted:
                writer.abort()
                try:
                    os.remove(writer.log_path + SWAP_SUFFIX)
                except FileNotFoundError:
                    pass
            raise
        # Committed: from here a crash (or an error) completes the swaps at start-up.
        interval = self.config.index_interval_bytes
        try:
            paths = []
            for old, writer in accepted:
                for seg in old:
                    paths.extend(seg.rename_deleted())
                os.replace(writer.log_path + SWAP_SUFFIX, writer.log_path)
            fsync_dir(self.directory)
            # Newest first, so that the indexes of the older replacements stay valid.
            position = {seg.uid: i for i, seg in enumerate(self.segments)}
            for old, writer in reversed(accepted):
                first = position[old[0].uid]
                cleaned = LogSegment.open_cleaned(self.directory, writer.base_offset, interval)
                if self.handles is not None:
                    cleaned.attach(self.handles)
                self.segments[first:first + len(old)] = [cleaned]
                self._bases[first:first + len(old)] = [writer.base_offset]
        except BaseException:
            log.error("%s: compaction swap failed; reloading the log as after a crash", self.name)
            self._reload()
            raise
        self._pending_deletes.append((wall_ms() + self.config.file_delete_delay_ms, paths))
        if self.config.file_delete_delay_ms <= 0:
            self.purge_deleted(wall_ms())
        return ok

    def _reload(self) -> None:
        for seg in self.segments:
            seg.close()
        self.segments.clear()
        self._bases.clear()
        self._load()

    def set_cleaner_checkpoint(self, offset: int) -> None:
        self._check_open()
        if offset != self.cleaner_checkpoint:
            self._make_directory()
            write_cleaner_checkpoint(self.directory, offset)
            self.cleaner_checkpoint = offset

    # -- reads -------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> list:
        return self._read(offset, max_bytes, min_one_batch,
                          lambda seg, remaining, first: seg.read(offset, remaining, first))

    def read_regions(self, offset: int, max_bytes: int, *, min_one_batch: bool = True,
                     max_offset: int | None = None) -> list | None:
        if self.handles is not None and self.handles.pressed:
            return None  # every file the budget allows is named by a region: read into memory (file_handles.py)
        return self._read(offset, max_bytes, min_one_batch,
                          lambda seg, remaining, first: seg.read_region(offset, remaining, first, max_offset))

    def _read(self, offset: int, max_bytes: int, min_one_batch: bool, read_segment) -> list:
        """Walk the segments from the one holding ``offset`` while ``max_bytes`` lasts and no segment
        says a batch did not fit; ``read_segment(segment, remaining, min_one_batch)``."""
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
            data, full = read_segment(segments[i], remaining, min_one_batch and not out)
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
        self._sync_new_directory()
        self._flushed()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.segments[-1].seal()
        finally:
            for seg in self.segments:
                seg.close()
            self.purge_deleted(2**63 - 1)

    def discard(self) -> None:
        """Close without flushing or sealing: the directory is about to be removed."""
        if self.closed:
            return
        self.closed = True
        for seg in self.segments:
            seg.close()


class _FileSnapshot(SegmentSnapshot):
    """A closed segment's batches, read through a file descriptor of its own
    that is open only while ``batches`` runs (a clean of a log with thousands
    of segments holds one at a time).  Closed segments never change; if the
    loop removed or replaced this one meanwhile, the read fails or the swap
    is refused (``replace_segments`` checks segment identities), so no stale
    bytes can end up in the log."""

    def __init__(self, path: str, size: int):
        self.path = path
        self.size = size

    def batches(self):
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for fields, data in iter_file_batches(fd, self.size):
                yield BatchHeader._make(fields), data
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


class _FileCleanedWriter(CleanedWriter):
    """``<base>.log.cleaned``, written by the cleaner's thread."""

    def __init__(self, log_path: str, base_offset: int):
        self.log_path = log_path
        self.cleaned_path = log_path + CLEANED_SUFFIX
        self.base_offset = base_offset
        self.fd = -1
        self.size = 0

    def _open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.cleaned_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def append(self, batch) -> None:
        self._open()
        with memoryview(batch) as view:
            written = 0
            while written < len(view):
                written += os.pwrite(self.fd, view[written:], self.size + written)
        self.size += written

    def finish(self) -> None:
        self._open()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.remove(self.cleaned_path)
        except FileNotFoundError:
            pass


class SegmentLogStore(LogStore):
    """Partition logs as directories of segment files under ``data_dir``."""

    def __init__(self, data_dir, flush_policy: FlushPolicy | None = None, open_files_budget: int | None = None):
        """``open_files_budget``: how many segment files may be open at once (file_handles.py; default half
        the process's limit of open files)."""
        self.data_dir = os.fspath(data_dir)
        self.flush_policy = flush_policy or FlushPolicy()
        self.handles = FileHandles(open_files_budget)
        os.makedirs(self.data_dir, exist_ok=True)
        for name in os.listdir(self.data_dir):
            if name.endswith((DELETE_DIR_SUFFIX, STRAY_DIR_SUFFIX)):
                shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)
        self._logs: dict[tuple[str, int], SegmentPartitionLog] = {}
        self._remover: ThreadPoolExecutor | None = None  # removes the files of deleted logs (delete_logs)
        self._removals: set[futures.Future] = set()
        self._ids: dict[tuple[str, int], uuid.UUID] = {}  # the topic id each log in ``_logs`` was opened for
        self._hw_checkpoint_path = os.path.join(self.data_dir, REPLICATION_OFFSET_CHECKPOINT_FILE)
        try:
            self._high_watermarks = read_offset_checkpoint(self._hw_checkpoint_path)
        except ValueError as e:  # the logs start at their log start offsets, as without a checkpoint
            log.error("%s: ignored: %s", self._hw_checkpoint_path, e)
            self._high_watermarks = {}

    def checkpoint_high_watermarks(self, offsets: dict[tuple[str, int], int]) -> None:
        write_offset_checkpoint(self._hw_checkpoint_path, offsets)

    def _dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.data_dir, f"{topic}-{partition}")

    def open_log(self, topic, topic_id, partition, config) -> SegmentPartitionLog:
        key = (topic, partition)
        plog = self._logs.get(key)
        if plog is not None and not plog.closed:
            plog.config = config
            return plog
        directory = self._dir(topic, partition)
        hw = self._high_watermarks.pop(key, None)
        if not os.path.isdir(directory):
            plog = SegmentPartitionLog.create_new(directory, topic_id, config, self.flush_policy, self.handles)
            self._logs[key] = plog
            self._ids[key] = topic_id
            return plog
        try:
            known = read_topic_id(directory)
        except ValueError:  # torn by a crash while the partition was new (see create_new)
            known = None
        if known is not None and known != topic_id:
            log.warning("%s-%d: removed the data of an earlier topic with this name (id %s)",
                        topic, partition, known)
            self._remove_dir(directory)
            hw = None
        if known != topic_id:
            os.makedirs(directory, exist_ok=True)
            write_topic_id(directory, topic_id)
            fsync_dir(self.data_dir)
        plog = SegmentPartitionLog.open(directory, config, self.flush_policy, self.handles)
        plog.checkpointed_high_watermark = hw
        self._logs[key] = plog
        self._ids[key] = topic_id
        return plog

    def delete_log(self, topic, topic_id, partition) -> None:
        self.delete_logs(topic, topic_id, [partition])

    def delete_logs(self, topic, topic_id, partitions) -> None:
        """As Kafka deletes a topic's logs: each log is closed without a flush and its directory renamed to
        ``<topic>-<partition>.<uuid>-delete`` at once, the data directory is fsynced once for all of them
        (so the old names are gone for good before this returns, and a topic of the same name starts afresh),
        and the files are removed later on a worker thread. A crash before they are gone leaves only
        ``-delete`` directories, which the next start removes; nothing else is read from them. A partition
        whose log was opened for another topic id (a topic of the same name, made meanwhile) is left alone."""
        directories: list[str] = []
        try:
            for partition in partitions:
                key = (topic, partition)
                if self._ids.get(key, topic_id) != topic_id:
                    continue  # a newer topic's of the same name: the old directory went when it was opened
                self._ids.pop(key, None)
                plog = self._logs.pop(key, None)
                directories.append(self._dir(topic, partition))
                if plog is not None:
                    plog.discard()
        finally:
            self._rename_and_remove(directories, DELETE_DIR_SUFFIX)

    def unopened_logs(self) -> list[tuple[str, int, uuid.UUID | None]]:
        """Directories named ``<topic>-<partition>`` (a legal topic name) that hold a partition's files
        (``partition.metadata`` or segments) and that no log was opened from; their topic id from
        ``partition.metadata`` (None: missing or torn). Any other directory is not the store's and is left
        alone."""
        out = []
        for name in sorted(os.listdir(self.data_dir)):
            topic, sep, index = name.rpartition("-")
            if not sep or not index.isdigit() or not _TOPIC_NAME.match(topic) or topic in (".", ".."):
                continue
            partition = int(index)
            if (topic, partition) in self._logs or name != f"{topic}-{partition}":
                continue
            directory = os.path.join(self.data_dir, name)
            try:
                files = os.listdir(directory)
            except (NotADirectoryError, FileNotFoundError):
                continue
            if PARTITION_METADATA_FILE not in files and not any(f.endswith(LOG_SUFFIX) for f in files):
                continue
            try:
                topic_id = read_topic_id(directory)
            except ValueError:
                topic_id = None
            out.append((topic, partition, topic_id))
        return out

    def delete_stray_logs(self, logs: list[tuple[str, int]]) -> None:
        """As Kafka removes stray logs: each directory renamed ``<topic>-<partition>.<uuid>-stray`` at once,
        one fsync of the data directory for all, the files removed later on the worker thread (or at the
        next start, which removes every ``-stray`` directory left). An open log is never touched."""
        self._rename_and_remove([self._dir(topic, partition) for topic, partition in logs
                                 if (topic, partition) not in self._logs], STRAY_DIR_SUFFIX)

    def _rename_and_remove(self, directories: list[str], suffix: str) -> None:
        """Rename each directory ``<name>.<uuid><suffix>`` at once (one already gone is skipped), fsync the data
        directory once for all, and remove them later on the worker thread."""
        doomed = []
        try:
            for directory in directories:
                target = f"{directory}.{uuid.uuid4().hex}{suffix}"
                try:
                    os.replace(directory, target)
                except FileNotFoundError:
                    continue
                doomed.append(target)
        finally:
            if doomed:
                fsync_dir(self.data_dir)
                self._remove_later(doomed)

    def _remove_later(self, directories: list[str]) -> None:
        if self._remover is None:
            self._remover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbroker-log-delete")
        fut = self._remover.submit(_remove_trees, directories)
        self._removals.add(fut)
        fut.add_done_callback(lambda f: self._removals.discard(f))

    def wait_for_removals(self) -> None:
        """Wait until the files of every deleted log are gone (tests; ``close``)."""
        while self._removals:
            pending, self._removals = self._removals, set()
            futures.wait(pending)

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
        self._ids = {}
        for plog in logs.values():
            plog.close()
        self.wait_for_removals()
        if self._remover is not None:
            self._remover.shutdown()
            self._remover = None
