"""The log store: where partitions keep their record batches.

Theory of operation
-------------------
A :class:`LogStore` hands out one :class:`PartitionLog` per (topic, partition).
A partition log is an append-only sequence of RecordBatch v2 byte strings whose
offsets were assigned by the caller (``Partition.append``) before they arrive.
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
far durable.  ``LogConfig.flush_messages`` flushes after that many records, as
Kafka's ``flush.messages``; by default durability comes from ``flush`` and
``close`` only (Kafka relies on replication instead of fsync; a single broker
relies on the operating system).

Concurrency: none.  Every call comes from the broker's event loop thread and
completes before the next; no locks.  Returned chunks are immutable copies or
views of immutable bytes, so later appends, truncation or deletion never change
bytes a caller already holds.

Backends: ``memory.MemoryLogStore`` (tests, ``--storage memory``) and
``segment.SegmentLogStore`` (the default, Kafka's on-disk layout).  Both pass
the same conformance suite, ``tests/test_storage.py``.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass

from kbroker.records.batch import HEADER, HEADER_SIZE, LOG_OVERHEAD

__all__ = [
    "LogConfig", "LogStore", "PartitionLog", "OffsetOutOfRangeError", "StorageError",
    "split_batches",
]


@dataclass
class LogConfig:
    """Per-topic settings the store uses, with Kafka's names and defaults."""

    segment_bytes: int = 1073741824          # segment.bytes: roll when a segment would exceed this
    segment_index_bytes: int = 10485760      # segment.index.bytes: roll when an index would exceed this
    index_interval_bytes: int = 4096         # index.interval.bytes: bytes between offset index entries
    flush_messages: int | None = None        # flush.messages: fsync after this many records (None = never)


class StorageError(Exception):
    """The store cannot do what was asked (bad arguments, conflicting data on disk)."""


class OffsetOutOfRangeError(StorageError):
    """An offset below ``log_start_offset`` or beyond ``log_end_offset``."""


class PartitionLog(abc.ABC):
    """One partition's batches.  See the module docstring for the rules."""

    log_start_offset: int
    log_end_offset: int
    config: LogConfig   # may be replaced; takes effect from the next append

    @abc.abstractmethod
    def append(self, batch, base_offset: int, last_offset: int, max_timestamp: int,
               record_count: int) -> int:
        """Store ``batch`` (one or more whole batches, offsets already in their
        headers, ``base_offset`` the first's and ``last_offset`` the last's) in
        one write.  ``base_offset`` must be >= ``log_end_offset``.  Returns the
        position of the batch in its segment file (0 for memory)."""

    @abc.abstractmethod
    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> list:
        """Chunks of whole batches from the one containing ``offset``; ``[]`` at
        or beyond ``log_end_offset``.  Raises OffsetOutOfRangeError below
        ``log_start_offset``."""

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
    def flush(self) -> None:
        """Make all appended data (and indexes) durable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release resources; the log must not be used afterwards."""

    @abc.abstractmethod
    def size_bytes(self) -> int:
        """Bytes of batches stored."""


class LogStore(abc.ABC):
    """Opens, deletes and closes partition logs."""

    @abc.abstractmethod
    def open_log(self, topic: str, topic_id: uuid.UUID, partition: int,
                 config: LogConfig) -> PartitionLog:
        """The log of a partition, created empty if new.  Opening an open log
        returns the same object."""

    @abc.abstractmethod
    def delete_log(self, topic: str, topic_id: uuid.UUID, partition: int) -> None:
        """Close the log if open and remove its data."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every open log."""


_unpack_header = HEADER.unpack_from


def split_batches(buf) -> list[tuple[int, int, int, int, int]]:
    """``(position, size, base_offset, last_offset, max_timestamp)`` of each
    batch in an append.  Header fields are trusted: Partition validated them."""
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
