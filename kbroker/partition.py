"""A partition: one log, the offsets clients see, and the fetchers waiting for it to grow.

Theory of operation. Produce hands a partition the records field of a request exactly as the producer
encoded it. ``append`` checks every batch header and CRC32C, copies the bytes once into a bytearray,
writes the assigned offsets (and the leader epoch, and for LogAppendTime topics the broker's time) into the
headers in place, and hands the buffer to the log in one write. Records themselves are never decoded.

On one broker the high watermark is the log end offset: every append is fully replicated the moment it is
written. The last stable offset is the first offset of the oldest transaction still open in the partition
(or the high watermark when none is): read_committed consumers read up to it. Transaction markers
(control batches written by the transaction coordinator through ``write_marker``) close transactions;
aborted ones are remembered as (producer id, first offset, marker offset) so that Fetch can tell
read_committed consumers which records to drop. Both are rebuilt from the batch headers at start-up.

Concurrency: everything here runs on the event loop, and ``append`` does not await, so no two appends to a
partition interleave. Fetchers waiting for data register a future with ``wait_for_append``; an append wakes
all of them at once (no timers that poll).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left, insort

from .cleaner import require_keys
from .errors import ErrorCode, KafkaError
from .records.batch import (
    LOG_OVERHEAD,
    iter_batches,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batches,
)
from .producer_state import ProducerStateManager
from .records.compression import ZSTD
from .records.errors import CorruptRecordError, InvalidRecordError
from .records.builder import build_control_batch
from .records.record import ABORT, COMMIT, decode_records, parse_control_record, record_for_timestamp


class Partition:
    __slots__ = ("topic", "index", "log", "leader_epoch", "_waiters", "producers", "changes", "ongoing_txns",
                 "aborted_txns")

    def __init__(self, topic, index: int, log, leader_epoch: int = 0, changes=None):
        self.changes = changes
        self.topic = topic  # the Topic this partition belongs to
        self.index = index
        self.log = log
        self.leader_epoch = leader_epoch
        self._waiters: list[asyncio.Future] = []
        self.producers = ProducerStateManager()
        self.ongoing_txns: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self.aborted_txns: list[tuple[int, int, int]] = []  # (marker offset, producer id, first offset)
        self._rebuild_producer_state()

    def _rebuild_producer_state(self) -> None:
        """Replay the batch headers of the log into the producer state (idempotence survives restarts)."""
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            chunks = self.log.read(offset, 1 << 20)
            if not chunks:
                break
            for chunk in chunks:
                for pos, h in iter_batches(chunk):
                    if h.producer_id >= 0:
                        if h.is_control:
                            self.producers.bump_epoch(h.producer_id, h.producer_epoch, h.max_timestamp)
                            records = decode_records(chunk, pos, h)
                            if records:
                                kind, _epoch = parse_control_record(records[0])
                                self._close_txn(h.producer_id, h.base_offset, commit=kind == COMMIT)
                        else:
                            self.producers.update(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence,
                                                  h.base_offset, h.last_offset, h.max_timestamp)
                            if h.is_transactional:
                                self.ongoing_txns.setdefault(h.producer_id, h.base_offset)
                    offset = h.last_offset + 1

    # -- offsets -------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        if self.ongoing_txns:
            return min(self.ongoing_txns.values())
        return self.high_watermark

    # -- produce -------------------------------------------------------------

    def append(self, records, max_message_bytes: int, log_append_time: bool,
               produce_version: int | None = None) -> tuple[int, int]:
        """Append a producer's record batches; returns (base offset, log append time or -1).

        Raises KafkaError with CORRUPT_MESSAGE, INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE or
        MESSAGE_TOO_LARGE; nothing is written then. ``produce_version`` applies the Produce request's own
        rules (Kafka's ProduceRequest.validateRecords): exactly one batch per partition, zstd from v7.
        """
        if records is None or len(records) == 0:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce requests must have at least one record batch")
        try:
            batches = validate_batches(records)
        except CorruptRecordError as e:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
        except InvalidRecordError as e:
            raise KafkaError(ErrorCode.INVALID_RECORD, str(e)) from None
        if produce_version is not None:
            if len(batches) != 1:
                raise KafkaError(ErrorCode.INVALID_RECORD, f"Produce requests with version {produce_version} are "
                                 "only allowed to contain exactly one record batch per partition")
            if produce_version < 7 and batches[0][1].compression == ZSTD:
                raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"Produce requests with version "
                                 f"{produce_version} are not allowed to use ZStandard compression")
        for _pos, h in batches:
            if h.batch_length + LOG_OVERHEAD > max_message_bytes:
                raise KafkaError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"The batch of {h.batch_length + LOG_OVERHEAD} bytes is larger than max.message.bytes "
                    f"{max_message_bytes}",
                )
        topic = self.topic
        if topic is not None and "compact" in topic.config("cleanup.policy"):
            require_keys(records, batches, f"{topic.name}-{self.index}")  # compaction needs every key
        producers = self.producers
        for _pos, h in batches:
            if h.producer_id >= 0:
                dup = producers.check(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence)
                if dup is not None:
                    # A retry of a batch we already have: answer with where the original went (Kafka does).
                    return dup.first_offset, -1
        # The request's own buffer when it is writable (frames are bytearrays we own): offsets are written
        # into the producer's bytes in place and the same bytes go to the log. Otherwise one copy.
        buf = records if isinstance(records, memoryview) and not records.readonly else bytearray(records)
        base = offset = self.log.log_end_offset
        append_time = -1
        count = 0
        idempotent = []
        layout = []  # what the store would otherwise read back from the headers (storage/base.split_batches)
        if log_append_time:
            append_time = int(time.time() * 1000)
        for pos, h in batches:
            set_base_offset(buf, pos, offset)
            set_partition_leader_epoch(buf, pos, self.leader_epoch)
            if log_append_time:
                set_log_append_time(buf, pos, append_time)
                ts = append_time
            else:
                ts = h.max_timestamp
            if h.producer_id >= 0:
                idempotent.append((h, offset, ts))
            layout.append((pos, h.batch_length + LOG_OVERHEAD, offset, offset + h.last_offset_delta, ts))
            offset += h.last_offset_delta + 1
            count += h.record_count
        self.log.append(buf, base, offset - 1, count, layout)
        for h, first, ts in idempotent:
            producers.update(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence, first,
                             first + h.last_offset_delta, ts)
            if h.is_transactional:
                self.ongoing_txns.setdefault(h.producer_id, first)
        self.wake_waiters()
        return base, append_time

    # -- transactions --------------------------------------------------------

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int = 0) -> int:
        """Append a COMMIT or ABORT control batch for a producer's transaction; returns its offset."""
        offset = self.log.log_end_offset
        now = int(time.time() * 1000)
        batch = build_control_batch(COMMIT if commit else ABORT, producer_id=producer_id,
                                    producer_epoch=producer_epoch, coordinator_epoch=coordinator_epoch,
                                    timestamp_ms=now, base_offset=offset, partition_leader_epoch=self.leader_epoch)
        self.log.append(batch, offset, offset, 1)
        self.producers.bump_epoch(producer_id, producer_epoch, now)
        self._close_txn(producer_id, offset, commit)
        self.wake_waiters()
        return offset

    def _close_txn(self, producer_id: int, marker_offset: int, commit: bool) -> None:
        first = self.ongoing_txns.pop(producer_id, None)
        if not commit and first is not None:
            insort(self.aborted_txns, (marker_offset, producer_id, first))

    def forget_aborted_txns(self, below_offset: int, keep) -> int:
        """Forget the aborted transactions whose marker is below ``below_offset``, except those in ``keep``
        (entries of ``aborted_txns``): compaction found none of their records left, so read_committed
        consumers have nothing of theirs to drop (Kafka's cleaner rewrites the transaction index so).
        Returns how many went. At start-up the list is rebuilt from the log, which has no records of them."""
        keep = set(keep)
        before = len(self.aborted_txns)
        self.aborted_txns[:] = [t for t in self.aborted_txns if t[0] >= below_offset or t in keep]
        return before - len(self.aborted_txns)

    def aborted_transactions(self, fetch_offset: int, upper_offset: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions that overlap [fetch_offset, upper_offset):
        what a read_committed consumer needs to drop aborted records (Kafka's collectAbortedTxns)."""
        out = []
        start = bisect_left(self.aborted_txns, (fetch_offset, -1, -1))
        for marker, pid, first in self.aborted_txns[start:]:
            if first < upper_offset:
                out.append((pid, first))
        return out

    # -- fetch ---------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, min_one_batch: bool = True, max_offset: int | None = None,
             regions: bool = False) -> list:
        """Whole batches from the one containing ``offset``; with ``min_one_batch``, at least one even if
        it is larger than ``max_bytes`` (KIP-74: the first partition of a Fetch response that has data).
        ``max_offset`` (the last stable offset, for read_committed) excludes batches that start at or after it.
        ``regions``: as ``FileRegion``s of the segment files where the store keeps files (for sendfile)."""
        if max_offset is not None and max_offset >= self.log.log_end_offset:
            max_offset = None
        if regions:
            found = self.log.read_regions(offset, max_bytes, min_one_batch=min_one_batch, max_offset=max_offset)
            if found is not None:
                return found
        chunks = self.log.read(offset, max_bytes, min_one_batch=min_one_batch)
        if max_offset is None:
            return chunks
        out = []
        for chunk in chunks:
            for pos, h in iter_batches(chunk):
                if h.base_offset >= max_offset:
                    if pos:
                        out.append(chunk[:pos])
                    return out
            out.append(chunk)
        return out

    def wait_for_append(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def wake_waiters(self) -> None:
        """Answer whoever waits on this partition: the long-polling fetches (``wait_for_append``) and the
        broker's change notifier. Called on an append, and by whoever deletes the partition or stops the broker."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        if self.changes is not None:
            self.changes.notify()

    def discard_waiter(self, fut: asyncio.Future) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    # -- timestamps ----------------------------------------------------------

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int]:
        """(timestamp, offset) of the first record at or after ``timestamp_ms``; (-1, -1) if there is none."""
        found = self.log.find_offset_by_timestamp(timestamp_ms)
        if found is None:
            return -1, -1
        for pos, _h in iter_batches(found):
            rec = record_for_timestamp(found, timestamp_ms, self.log_start_offset, pos)
            if rec is not None:
                return rec.timestamp, rec.offset
        return -1, -1

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the record with the largest timestamp (KIP-734); (-1, -1) when empty."""
        ts, batch_offset = self.log.max_timestamp()
        if ts < 0 or batch_offset < self.log_start_offset:
            return -1, -1
        for chunk in self.log.read(batch_offset, 1):
            for pos, _h in iter_batches(chunk):
                for rec in decode_records(chunk, pos):
                    if rec.timestamp == ts:
                        return ts, rec.offset
        return ts, batch_offset
