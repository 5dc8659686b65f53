"""The log store: where partitions keep their record batches.

Theory of operation
-------------------
A :class:`LogStore` hands out one :class:`PartitionLog` per (topic, partition).
A partition log is an append-only sequence of RecordBatch v2 byte strings whose
offsets were assigned by the caller (``UnifiedLog.append_as_leader``) before they arrive.
Storage never decodes or re-encodes records: it reads batch headers to find
offsets, timestamps and sizes, and moves bytes.

Offsets.  ``log_start_offset`` is the first offset a reader may ask for;
``log_end_offset`` is the offset the next appended batch gets.  Both are
plain attributes, read-only to callers.  Batches cover ranges of offsets
(baseOffset..baseOffset+lastOffsetDelta); offsets inside a batch are found by
returning the whole batch, and the client skips what it did not ask for.  The
batch that contains ``log_start_offset`` may start below it.

Reads.  ``read(offset, max_bytes)`` returns whole batches starting with the one
that contains ``offset`` (or the first after it, across gaps), stopping before
``max_bytes`` would be exceeded -- but with ``min_one_batch`` (the default) at
least one batch however large (KIP-74).  The result is a list of chunks, each a
run of whole batches back to back; concatenating them gives a Fetch payload.

Timestamps.  ``find_offset_by_timestamp(ts)`` returns the bytes of the first
batch (at or after ``log_start_offset``) whose maxTimestamp >= ts; the caller
decodes its records (``records.record_for_timestamp``) to pick the offset.
``max_timestamp()`` is ``(max timestamp, last offset of the batch holding it)``
so ``read(offset, 1)`` yields that batch.

Durability.  ``append`` does one write; ``flush`` makes everything appended so
far durable.  When appends are fsynced is the flush policy: the topic's
``flush.messages`` and ``flush.ms`` (``LogConfig``) and the broker-wide
``--fsync`` mode (``FlushPolicy``, shared by every log of a store): ``always``
fsyncs each append before it returns (so before Produce answers), ``interval``
when the last fsync is a second old (an append or the log manager's tick,
so within about 1.5 s), ``never`` leaves it to the OS, to roll and to close.
An append that fails (disk full, I/O error) leaves nothing behind: the bytes
written are cut off again and offsets, sizes and indexes are as before.

Segments.  Logs are sequences of segments (the memory backend keeps virtual
ones), the unit of retention and compaction.  ``segment_infos()`` describes them,
oldest first; the last is the *active* segment, the only one appended to;
the others are *closed* and never change again except by the three
operations the log manager (``kbroker.log.log_manager``) uses: ``roll`` (close
the active segment), ``delete_oldest_segments`` (retention: the log start
offset moves to the next segment) and ``replace_segments`` (compaction:
closed segments swapped for one cleaned segment, offsets unchanged).  Removed
segment files are renamed ``.deleted`` and removed ``file.delete.delay.ms``
later (``purge_deleted``).  ``cleaner_checkpoint`` is the offset below which
the log was last compacted, kept across restarts.

Concurrency: none.  Every call comes from the broker's event loop thread and
completes before the next; no locks.  Returned chunks are immutable copies or
views of immutable bytes, so later appends, truncation or deletion never change
bytes a caller already holds.  The one exception is compaction's heavy part:
a ``SegmentSnapshot`` (reading a closed segment) and a ``CleanedWriter``
(writing its replacement) are used from the cleaner's thread; they touch only
their own file descriptors and immutable bytes, and the swap itself,
``replace_segments``, runs on the loop and checks that nothing changed.

Backends: ``memory.MemoryLogStore`` (tests, ``--storage memory``) and
``segment.SegmentLogStore`` (the default, Kafka's on-disk layout).  Both pass
the same conformance suite, ``tests/unit/storage/test_storage.py``.
"""

from __future__ import annotations

import abc
import time
import uuid
from dataclasses import dataclass

from kbroker.records.batch import HEADER, HEADER_SIZE, LOG_OVERHEAD

__all__ = [
    "LogConfig", "FlushPolicy", "SegmentInfo", "SegmentSnapshot", "CleanedWriter", "LogStore",
    "PartitionLog", "OffsetOutOfRangeError", "StorageError", "split_batches", "FSYNC_MODES",
    "INTERVAL_FLUSH_MS",
]

LONG_MAX = 2**63 - 1
FSYNC_MODES = ("always", "interval", "never")
# ``--fsync interval``: the longest an acknowledged append stays only in the page cache.
INTERVAL_FLUSH_MS = 1000


@dataclass
class LogConfig:
    """Per-topic settings the store and the log manager use, with Kafka's names and defaults.

    ``Topic.log_config()`` builds one from the topic's effective configs; a
    log's ``config`` is replaced when they change, and every setting is read
    at the moment it is needed, so changes apply without a restart.
    """

    segment_bytes: int = 1073741824          # segment.bytes: roll when a segment would exceed this
    segment_index_bytes: int = 10485760      # segment.index.bytes: roll when an index would exceed this
    index_interval_bytes: int = 4096         # index.interval.bytes: bytes between offset index entries
    segment_ms: int = 604800000              # segment.ms: roll the active segment when this old
    segment_jitter_ms: int = 0               # segment.jitter.ms: random amount taken off segment.ms
    flush_messages: int | None = None        # flush.messages: fsync after this many records (None = never)
    flush_ms: int | None = None              # flush.ms: fsync when the oldest unflushed append is this old
    cleanup_policy: str = "delete"           # cleanup.policy: "delete", "compact" or both
    retention_ms: int = 604800000            # retention.ms: delete closed segments older than this; -1 never
    retention_bytes: int = -1                # retention.bytes: delete the oldest closed segments above this
    file_delete_delay_ms: int = 60000        # file.delete.delay.ms: .deleted files removed after this
    delete_retention_ms: int = 86400000      # delete.retention.ms: tombstones kept this long once compacted
    min_compaction_lag_ms: int = 0           # min.compaction.lag.ms: records younger are not compacted
    max_compaction_lag_ms: int = LONG_MAX    # max.compaction.lag.ms: records older are compacted whatever the ratio
    min_cleanable_dirty_ratio: float = 0.5   # min.cleanable.dirty.ratio: compact when this share is dirty

    @classmethod
    def from_topic_config(cls, config) -> LogConfig:
        """Build from a topic's effective configs: ``config(name)`` gives the value of a topic
        config as a string (``Topic.config``)."""
        flush_messages = int(config("flush.messages"))
        flush_ms = int(config("flush.ms"))
        return cls(
            segment_bytes=int(config("segment.bytes")),
            segment_index_bytes=int(config("segment.index.bytes")),
            index_interval_bytes=int(config("index.interval.bytes")),
            segment_ms=int(config("segment.ms")),
            segment_jitter_ms=int(config("segment.jitter.ms")),
            flush_messages=None if flush_messages >= LONG_MAX else flush_messages,
            flush_ms=None if flush_ms >= LONG_MAX else flush_ms,
            cleanup_policy=config("cleanup.policy"),
            retention_ms=int(config("retention.ms")),
            retention_bytes=int(config("retention.bytes")),
            file_delete_delay_ms=int(config("file.delete.delay.ms")),
            delete_retention_ms=int(config("delete.retention.ms")),
            min_compaction_lag_ms=int(config("min.compaction.lag.ms")),
            max_compaction_lag_ms=int(config("max.compaction.lag.ms")),
            min_cleanable_dirty_ratio=float(config("min.cleanable.dirty.ratio")),
        )

    @property
    def delete_enabled(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def compact_enabled(self) -> bool:
        return "compact" in self.cleanup_policy

    def roll_ms(self) -> int:
        """How old the active segment may get (Kafka: max.compaction.lag.ms also bounds it when compacting)."""
        if self.compact_enabled and self.max_compaction_lag_ms < self.segment_ms:
            return self.max_compaction_lag_ms
        return self.segment_ms


@dataclass
class FlushPolicy:
    """The broker-wide ``--fsync`` mode, shared by the logs of a store (see the module docstring)."""

    mode: str = "never"

    def flush_messages(self, config: LogConfig) -> int | None:
        if self.mode == "always":
            return 1
        return config.flush_messages

    def flush_ms(self, config: LogConfig) -> int | None:
        ms = config.flush_ms
        if self.mode == "interval" and (ms is None or ms > INTERVAL_FLUSH_MS):
            return INTERVAL_FLUSH_MS
        return ms


@dataclass(frozen=True)
class SegmentInfo:
    """What the log manager sees of a segment."""

    uid: int                 # unique per segment object: a replaced or recreated segment gets a new one
    base_offset: int
    next_offset: int         # last offset of its batches + 1; base_offset when it has none
    size_bytes: int
    max_timestamp: int       # largest batch maxTimestamp; -1 when it has none
    rolling_base_ms: int     # the first batch's maxTimestamp, else when the segment was created (segment.ms)
    modified_ms: int         # when it was last written (time retention of segments without timestamps)
    active: bool


class StorageError(Exception):
    """The store cannot do what was asked (bad arguments, conflicting data on disk)."""


class OffsetOutOfRangeError(StorageError):
    """An offset below ``log_start_offset`` or beyond ``log_end_offset``."""


class PartitionLog(abc.ABC):
    """One partition's batches.  See the module docstring for the rules.

    What both stores do alike lives here: the checks every append passes, when the active segment rolls
    (``segment.bytes``, ``segment.ms`` less its jitter, ``max.compaction.lag.ms``), ``roll`` and
    ``maybe_roll``, and the flush policy's bookkeeping (appends not yet fsynced, when the last fsync
    was).  A store supplies its active segment (``_active_segment``: an object with ``size``,
    ``rolling_base_ms`` and ``roll_jitter_ms``), how to start a new one (``_roll``) and how to fsync it
    (``_sync_active``).  The memory store never counts unflushed appends: it has nothing to fsync.
    """

    log_start_offset: int
    log_end_offset: int
    config: LogConfig   # may be replaced; takes effect from the next append

    def __init__(self, name: str, config: LogConfig, flush_policy: FlushPolicy | None = None):
        self.name = name  # "<topic>-<partition>", for messages
        self.config = config
        self.flush_policy = flush_policy or FlushPolicy()
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.cleaner_checkpoint = 0  # offset below which the log was compacted
        self.closed = False
        self._unflushed_records = 0
        self._last_flush = time.monotonic()

    # -- what both stores share: append checks, rolls, the flush policy -----------------------

    def _check_append(self, batch, base_offset: int, last_offset: int, layout: list | None) -> list:
        """Refuse an append the log cannot take; returns its layout (see ``split_batches``)."""
        self._check_open()
        if base_offset < self.log_end_offset or last_offset < base_offset:
            raise StorageError(f"{self.name}: append of offsets {base_offset}..{last_offset} "
                               f"at log end offset {self.log_end_offset}")
        parts = layout if layout is not None else split_batches(batch)
        if parts[0][2] != base_offset or parts[-1][3] != last_offset:
            raise StorageError(f"{self.name}: batch headers say offsets {parts[0][2]}..{parts[-1][3]}, "
                               f"the append says {base_offset}..{last_offset}")
        return parts

    def _roll_due(self, seg, now_ms: int) -> bool:
        """The active segment is older than segment.ms (or max.compaction.lag.ms) less its jitter."""
        cfg = self.config
        return now_ms - seg.rolling_base_ms > cfg.roll_ms() - min(seg.roll_jitter_ms, cfg.segment_jitter_ms)

    def _roll_before_append(self, seg, size: int, now_ms: int) -> bool:
        """An append of ``size`` bytes must go to a new segment: the active one has data and would pass
        segment.bytes, or is due by age."""
        return bool(seg.size) and (seg.size > self.config.segment_bytes - size or self._roll_due(seg, now_ms))

    def roll(self) -> bool:
        """Close the active segment and start an empty one at ``log_end_offset``;
        False (nothing done) when the active segment is empty."""
        self._check_open()
        if not self._active_segment().size:
            return False
        self._roll(self.log_end_offset)
        return True

    def maybe_roll(self, now_ms: int) -> bool:
        """``roll`` if the active segment is older than segment.ms (less its jitter)."""
        self._check_open()
        seg = self._active_segment()
        if seg.size and self._roll_due(seg, now_ms):
            self._roll(self.log_end_offset)
            return True
        return False

    def _flush_due(self) -> bool:
        policy, cfg = self.flush_policy, self.config
        flush_messages = policy.flush_messages(cfg)
        if flush_messages is not None and self._unflushed_records >= flush_messages:
            return True
        flush_ms = policy.flush_ms(cfg)
        return flush_ms is not None and (time.monotonic() - self._last_flush) * 1000 >= flush_ms

    def _flushed(self) -> None:
        self._unflushed_records = 0
        self._last_flush = time.monotonic()

    def maybe_flush(self) -> bool:
        """fsync if the flush policy says unflushed appends are due (the log
        manager's periodic check); False when nothing was done."""
        if self.closed or not self._unflushed_records or not self._flush_due():
            return False
        self._sync_active()
        self._flushed()
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise StorageError(f"{self.name}: log is closed")

    @abc.abstractmethod
    def _active_segment(self):
        """The segment appends go to (``size``, ``rolling_base_ms``, ``roll_jitter_ms``)."""

    @abc.abstractmethod
    def _roll(self, base_offset: int):
        """Close the active segment and start an empty one at ``base_offset``."""

    def _sync_active(self) -> None:
        """fsync the active segment (nothing to do where nothing is on disk)."""

    @abc.abstractmethod
    def append(self, batch, base_offset: int, last_offset: int, record_count: int,
               layout: list | None = None) -> int:
        """Store ``batch`` (one or more whole batches, offsets already in their
        headers, ``base_offset`` the first's and ``last_offset`` the last's) in
        one write.  ``base_offset`` must be >= ``log_end_offset``.  ``layout`` is
        what ``split_batches(batch)`` would return, from a caller that has just
        walked the headers itself (UnifiedLog); without it the store reads them.
        Returns the position of the batch in its segment file (0 for memory)."""

    @abc.abstractmethod
    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> list:
        """Chunks of whole batches from the one containing ``offset``; ``[]`` at
        or beyond ``log_end_offset``.  Raises OffsetOutOfRangeError below
        ``log_start_offset``."""

    def read_regions(self, offset: int, max_bytes: int, *, min_one_batch: bool = True,
                     max_offset: int | None = None) -> list | None:
        """As ``read``, but as ``FileRegion``s of the segment files (file_region.py), for a Fetch answer sent
        with sendfile; batches starting at or after ``max_offset`` are left out.  None from a store that
        does not keep files (the caller then uses ``read``)."""
        return None

    @abc.abstractmethod
    def find_offset_by_timestamp(self, timestamp_ms: int):
        """Bytes of the first batch with maxTimestamp >= ``timestamp_ms``, or None."""

    @abc.abstractmethod
    def max_timestamp(self) -> tuple[int, int]:
        """``(timestamp, last offset of its batch)``; ``(-1, -1)`` when empty."""

    @abc.abstractmethod
    def delete_records_before(self, offset: int) -> None:
        """Advance ``log_start_offset`` to ``offset`` (DeleteRecords, retention);
        storage whose every batch lies below it is freed.  Raises
        OffsetOutOfRangeError beyond ``log_end_offset``."""

    @abc.abstractmethod
    def truncate_to(self, offset: int) -> None:
        """Drop every batch whose last offset is >= ``offset``.  A batch that
        straddles ``offset`` is dropped whole, so ``log_end_offset`` becomes
        min(``offset``, that batch's base offset).  Below ``log_start_offset``
        the log is emptied and restarts at ``offset``."""

    @abc.abstractmethod
    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every batch and restart the empty log at ``offset``, which may lie past ``log_end_offset``
        (Kafka's truncateFullyAndStartAt: a follower whose log ends before its leader's log start)."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Make all appended data (and indexes) durable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release resources; the log must not be used afterwards."""

    def discard(self) -> None:
        """Release resources without flushing: the log's data is about to be removed (a deleted topic)."""
        self.close()

    # The high watermark the log directory's replication-offset-checkpoint held for this log when the store
    # opened it (None: none); the unified log starts from it, capped at the log end.
    checkpointed_high_watermark: int | None = None

    @abc.abstractmethod
    def size_bytes(self) -> int:
        """Bytes of batches stored."""

    # -- segments: what retention and compaction use ---------------------------------

    @abc.abstractmethod
    def segment_infos(self) -> list[SegmentInfo]:
        """Every segment, oldest first; the last is the active one."""

    @abc.abstractmethod
    def delete_oldest_segments(self, count: int) -> int:
        """Remove the ``count`` oldest segments (never the active one: ``count``
        is capped below the number of segments); ``log_start_offset`` moves to
        the base offset of the first segment left.  Returns bytes freed."""

    @abc.abstractmethod
    def snapshot_segment(self, segment: SegmentInfo):
        """A ``SegmentSnapshot`` of a closed segment (as ``segment_infos`` described
        it): its batches, readable from another thread while the log goes on (the
        cleaner's input).  StorageError if it is gone or is the active one."""

    @abc.abstractmethod
    def cleaned_writer(self, base_offset: int):
        """A ``CleanedWriter`` for the cleaned replacement of segments starting
        at ``base_offset``; it may be filled from another thread."""

    @abc.abstractmethod
    def replace_segments(self, replacements: list[tuple[list[int], CleanedWriter]]) -> list[bool]:
        """For each ``(uids, writer)``: swap those consecutive closed segments for
        what the finished ``writer`` holds, atomically per replacement (a crash
        leaves either the old segments or the new one).  Several at once share
        their directory fsyncs.  An entry is False, and its writer discarded,
        when the log changed under the cleaner (a segment is gone or no longer
        closed)."""

    @abc.abstractmethod
    def purge_deleted(self, now_ms: int, remove=None) -> int | None:
        """Remove ``.deleted`` files that are due -- by calling ``remove(paths)``
        if given (the log manager hands them to its worker thread), else here;
        returns when the next is due, or None."""

    @abc.abstractmethod
    def set_cleaner_checkpoint(self, offset: int) -> None:
        """Record (durably where there are files) how far compaction has cleaned."""


class SegmentSnapshot(abc.ABC):
    """Batches of a closed segment, for the cleaner's thread."""

    @abc.abstractmethod
    def batches(self):
        """Yield ``(header, batch bytes)`` in order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the snapshot holds."""


class CleanedWriter(abc.ABC):
    """Where the cleaner writes a cleaned segment, batch by batch."""

    @abc.abstractmethod
    def append(self, batch) -> None:
        """Add one whole batch (offsets increasing)."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Make what was written durable; called before ``replace_segments``."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Throw away what was written."""


class LogStore(abc.ABC):
    """Opens, deletes and closes partition logs."""

    flush_policy: FlushPolicy   # shared by every log of the store; set its ``mode`` to change it

    @abc.abstractmethod
    def open_log(self, topic: str, topic_id: uuid.UUID, partition: int,
                 config: LogConfig) -> PartitionLog:
        """The log of a partition, created empty if new.  Opening an open log
        returns the same object."""

    @abc.abstractmethod
    def checkpoint_high_watermarks(self, offsets: dict[tuple[str, int], int]) -> None:
        """Keep ``{(topic, partition): high watermark}`` of the open logs for the next start (Kafka's
        replication-offset-checkpoint); logs opened afterwards get theirs as ``checkpointed_high_watermark``."""

    @abc.abstractmethod
    def delete_log(self, topic: str, topic_id: uuid.UUID, partition: int) -> None:
        """Close the log if open and remove its data."""

    def delete_logs(self, topic: str, topic_id: uuid.UUID, partitions: list[int]) -> None:
        """Delete the logs of ``partitions`` of one topic, as ``delete_log`` each, but cheaply on the event
        loop: a store on disk may finish removing the files later (see ``SegmentLogStore``)."""
        for partition in partitions:
            self.delete_log(topic, topic_id, partition)

    def unopened_logs(self) -> list[tuple[str, int, uuid.UUID | None]]:
        """The partitions the store keeps data of that no log was opened for: (topic, partition, the topic id
        stored with the data, None if it has none). At start-up, once the broker has opened the logs of the
        partitions the cluster's metadata gives it, what is left is stray (``log_manager.stray_logs``). A
        store that keeps nothing across restarts has none."""
        return []

    def delete_stray_logs(self, logs: list[tuple[str, int]]) -> None:
        """Remove the data of these unopened (topic, partition) logs (Kafka: ``<topic>-<partition>.<id>-stray``
        directories)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every open log."""


_unpack_header = HEADER.unpack_from


def split_batches(buf) -> list[tuple[int, int, int, int, int]]:
    """``(position, size, base_offset, last_offset, max_timestamp)`` of each
    batch in an append.  Header fields are trusted: UnifiedLog validated them."""
    out = []
    pos = 0
    end = len(buf)
    while pos < end:
        if pos + HEADER_SIZE > end:
            raise StorageError(f"append of {end} bytes ends with a partial batch header")
        base, length, _e, _m, _c, _a, last_delta, _bt, max_ts, *_ = _unpack_header(buf, pos)
        size = length + LOG_OVERHEAD
        if length < HEADER_SIZE - LOG_OVERHEAD or pos + size > end:
            raise StorageError(f"batch at position {pos} of the append runs past its end")
        out.append((pos, size, base, base + last_delta, max_ts))
        pos += size
    return out
