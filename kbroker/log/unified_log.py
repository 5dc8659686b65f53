"""The unified log of one partition: its stored batches and everything derived from them (Kafka's UnifiedLog).

Theory of operation. A ``UnifiedLog`` wraps one log store (``storage.base.PartitionLog``: segments, bytes,
indexes) and keeps what the broker derives from the batches written there:

- the offsets: ``log_start_offset`` and ``log_end_offset`` come from the store; the **high watermark** and
  the **last stable offset** are fields of their own. The high watermark starts where the log directory's
  checkpoint left it (``store.checkpointed_high_watermark``, written by the log manager), capped at the log
  end, or at the log start without one. The high watermark moves only when the owner of the
  log says so (``maybe_increment_high_watermark``: the partition, once the replicas that count have an
  offset; on one broker that is the leader alone, right after each append, see ``partition.py``). It is
  clamped to [log start, log end]. The last stable offset is the first unstable offset (the first offset
  of the oldest open transaction) when that is below the high watermark, else the high watermark; it is
  recomputed whenever either changes.
- the producer state (``producer_state.py``): idempotence and open transactions;
- the aborted transactions (``transaction_index.py``) for read_committed fetches;
- the leader-epoch cache (``leader_epoch_cache.py``).

All three are rebuilt from the batch headers when the log is opened.

``append_as_leader`` is where produced bytes are checked and given their offsets: it validates every
batch header and CRC32C (Kafka's LogValidator), applies the Produce request's own rules and the topic's
(max.message.bytes, keys on compacted topics), answers a producer's retry with where the original went,
writes the assigned offsets, the leader epoch and for LogAppendTime topics the broker's time into the
headers in place, and hands the buffer to the store in one write. The records of a compressed batch are
decompressed and walked by their lengths as Kafka's validator reads them (records/validation.py); records
are never decoded into objects (except on compacted topics, to see their keys). ``append_txn_marker``
writes the control batch that ends a transaction. Neither moves the high watermark.

Concurrency: everything runs on the event loop, and no method awaits, so no two appends interleave.
"""

from __future__ import annotations

import logging
import time

from ..errors import ErrorCode, KafkaError, LogAppendError, RecordValidationError
from ..records.batch import (
    COMPRESSION_MASK,
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    iter_batches,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batches,
)
from ..records.builder import build_control_batch
from ..records.compression import ZSTD
from ..records.errors import CorruptRecordError, InvalidRecordError
from ..records.validation import UnreadableRecordsError, check_compressed_records
from ..records.record import ABORT, COMMIT, decode_records, parse_control_record, record_for_timestamp
from .leader_epoch_cache import LeaderEpochCache
from .producer_state import ProducerStateManager
from ..storage.base import StorageError
from .transaction_index import TransactionIndex

__all__ = ["UnifiedLog", "require_keys"]

log = logging.getLogger("kbroker.log")


def require_keys(buf, batches, topic_partition: str, decompressed: dict | None = None) -> None:
    """Refuse a produced batch with keyless records on a compacted topic as Kafka's LogValidator does:
    INVALID_RECORD naming each keyless record by its index in the batch (KIP-467), the first batch that has
    any refused whole. ``decompressed``: position -> the records of a compressed batch, already decompressed."""
    message = f"Compacted topic cannot accept message without key in topic partition {topic_partition}"
    for pos, header in batches:
        try:
            records = decode_records(buf, pos, header, decompressed.get(pos) if decompressed else None)
        except CorruptRecordError as e:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
        keyless = [(i, message) for i, record in enumerate(records) if record.key is None]
        if keyless:
            raise RecordValidationError(ErrorCode.INVALID_RECORD, keyless)


LONG_MAX = (1 << 63) - 1  # a timestamp bound of Long.MAX_VALUE: no bound


def check_timestamps(buf, batches, before_max_ms: int, after_max_ms: int, now_ms: int) -> None:
    """Refuse CreateTime records stamped more than ``before_max_ms`` before or ``after_max_ms`` after the
    broker's clock (message.timestamp.before/after.max.ms) as Kafka's LogValidator.validateTimestamp does:
    INVALID_TIMESTAMP naming each such record by its index in its batch. A batch whose max timestamp is
    within the upper bound, under the default lower bound (none), is not decoded: no record can be out."""
    lower, upper = now_ms - before_max_ms, now_ms + after_max_ms
    for pos, header in batches:
        if header.max_timestamp <= upper and before_max_ms == LONG_MAX:
            continue
        try:
            records = decode_records(buf, pos, header)
        except CorruptRecordError as e:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
        bad = [(i, f"Timestamp {r.timestamp} of message with offset {r.offset} is out of range. The timestamp "
                   f"should be within [{lower}, {upper}]")
               for i, r in enumerate(records) if r.timestamp != NO_TIMESTAMP and not lower <= r.timestamp <= upper]
        if bad:
            raise RecordValidationError(ErrorCode.INVALID_TIMESTAMP, bad,
                                        "One or more records have been rejected due to invalid timestamp")


class UnifiedLog:
    __slots__ = ("name", "store", "producer_state", "txn_index", "leader_epoch_cache", "high_watermark",
                 "first_unstable_offset", "last_stable_offset", "__weakref__")

    def __init__(self, name: str, store):
        self.name = name  # "<topic>-<partition>"
        self.store = store  # the log store (storage.base.PartitionLog); only this package touches it
        self.producer_state = ProducerStateManager()
        self.txn_index = TransactionIndex()
        self.leader_epoch_cache = LeaderEpochCache()
        # Kafka starts a log's high watermark at the log directory's replication-offset-checkpoint (capped at
        # the log end), else at its start offset; its partition moves it on.
        hw = store.checkpointed_high_watermark
        start = store.log_start_offset
        self.high_watermark = start if hw is None else max(start, min(hw, store.log_end_offset))
        self.first_unstable_offset: int | None = None
        self.last_stable_offset = self.high_watermark
        self._load()

    def _load(self) -> None:
        """Replay the batch headers into the producer state, the transaction index and the epoch cache."""
        store = self.store
        offset = store.log_start_offset
        while offset < store.log_end_offset:
            try:
                chunks = store.read(offset, 1 << 20)
            except StorageError as e:
                # A damaged batch in the body of a segment (recovery checks only the tail): the state is
                # what the batches before it say, and fetches of it get KAFKA_STORAGE_ERROR.
                log.error("%s: producer state replay stopped at offset %d: %s", self.name, offset, e)
                break
            if not chunks:
                break
            for chunk in chunks:
                for pos, h in iter_batches(chunk):
                    self._replay_batch(chunk, pos, h)
                    offset = h.last_offset + 1
        self.leader_epoch_cache.truncate_from_start(store.log_start_offset)
        self._update_first_unstable_offset()

    def _replay_batch(self, chunk, pos: int, h) -> None:
        """What a stored batch tells the derived state: its leader epoch, its producer's sequence and epoch,
        the transaction it opens or (a marker) ends. At start-up, and for batches a follower takes."""
        if h.partition_leader_epoch >= 0:
            self.leader_epoch_cache.assign(h.partition_leader_epoch, h.base_offset)
        if h.producer_id >= 0:
            producers = self.producer_state
            if h.is_control:
                records = decode_records(chunk, pos, h)
                kind, coordinator_epoch = parse_control_record(records[0]) if records else (None, -1)
                producers.bump_epoch(h.producer_id, h.producer_epoch, h.max_timestamp, coordinator_epoch)
                if records:
                    self._complete_txn(h.producer_id, h.base_offset, commit=kind == COMMIT)
            else:
                producers.update(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence,
                                 h.base_offset, h.last_offset, h.max_timestamp)
                if h.is_transactional:
                    producers.begin_txn(h.producer_id, h.base_offset)

    # -- offsets -----------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.store.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.store.log_end_offset

    @property
    def config(self):
        return self.store.config

    @config.setter
    def config(self, config) -> None:
        self.store.config = config

    def maybe_increment_high_watermark(self, offset: int) -> bool:
        """Move the high watermark up to ``offset`` (never down, never past the log end); True if it moved."""
        end = self.store.log_end_offset
        if offset > end:
            offset = end
        if offset <= self.high_watermark:
            return False
        self.high_watermark = offset
        first_unstable = self.first_unstable_offset  # _update_last_stable_offset, inline: every append runs this
        self.last_stable_offset = first_unstable if first_unstable is not None and first_unstable < offset else offset
        return True

    def _clamp_high_watermark(self) -> None:
        """Keep the high watermark within [log start, log end] after either moved."""
        store = self.store
        hw = min(max(self.high_watermark, store.log_start_offset), store.log_end_offset)
        if hw != self.high_watermark:
            self.high_watermark = hw
            self._update_last_stable_offset()

    def _update_first_unstable_offset(self) -> None:
        self.first_unstable_offset = self.producer_state.first_unstable_offset()
        self._update_last_stable_offset()

    def _update_last_stable_offset(self) -> None:
        first_unstable = self.first_unstable_offset
        if first_unstable is not None and first_unstable < self.high_watermark:
            self.last_stable_offset = first_unstable
        else:
            self.last_stable_offset = self.high_watermark

    # -- appends -----------------------------------------------------------------------------

    def append_as_leader(self, records, leader_epoch: int, max_message_bytes: int, log_append_time: bool,
                         compacted: bool, produce_version: int | None = None,
                         timestamp_bounds: tuple[int, int] | None = None) -> tuple[int, int]:
        """Append a producer's record batches; returns (base offset, log append time or -1).

        Raises KafkaError with CORRUPT_MESSAGE, INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE,
        MESSAGE_TOO_LARGE or a producer-state error; nothing is written then. ``produce_version`` applies
        the Produce request's own rules (Kafka's ProduceRequest.validateRecords): exactly one batch per
        partition, zstd from v7. ``timestamp_bounds`` (before, after) refuses CreateTime records out of them
        (INVALID_TIMESTAMP).
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
        decompressed = {}  # position -> records, decompressed once for the check and for the keys
        for pos, h in batches:
            if h.attributes & COMPRESSION_MASK:  # compressed: Kafka reads its records on every append
                try:
                    data = check_compressed_records(records, pos, h)
                except UnreadableRecordsError as e:
                    raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, str(e)) from None
                except InvalidRecordError as e:
                    raise LogAppendError(ErrorCode.INVALID_RECORD, str(e)) from None
                if compacted:
                    decompressed[pos] = data
        if compacted:
            require_keys(records, batches, self.name, decompressed)  # compaction needs every key
        if timestamp_bounds is not None:
            check_timestamps(records, batches, *timestamp_bounds, int(time.time() * 1000))
        producers = self.producer_state
        for _pos, h in batches:
            if h.producer_id >= 0:
                dup = producers.check(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence)
                if dup is not None:
                    # A retry of a batch we already have: answer with where the original went and its
                    # timestamp as the append time, as Kafka does (whatever the topic's timestamp type).
                    return dup.first_offset, dup.timestamp
        # The request's own buffer when it is writable (frames are bytearrays we own): offsets are written
        # into the producer's bytes in place and the same bytes go to the store. Otherwise one copy.
        buf = records if isinstance(records, memoryview) and not records.readonly else bytearray(records)
        base = offset = self.store.log_end_offset
        append_time = -1
        count = 0
        idempotent = []
        layout = []  # what the store would otherwise read back from the headers (storage/base.split_batches)
        if log_append_time:
            append_time = int(time.time() * 1000)
        for pos, h in batches:
            set_base_offset(buf, pos, offset)
            set_partition_leader_epoch(buf, pos, leader_epoch)
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
        self.store.append(buf, base, offset - 1, count, layout)
        self.leader_epoch_cache.assign(leader_epoch, base)
        began_txn = False
        for h, first, ts in idempotent:
            producers.update(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence, first,
                             first + h.last_offset_delta, ts)
            if h.is_transactional:
                producers.begin_txn(h.producer_id, first)
                began_txn = True
        if began_txn:
            self._update_first_unstable_offset()
        return base, append_time

    def append_as_follower(self, records) -> int:
        """Append the leader's batches as they are: their offsets, leader epochs and timestamps were set by
        the leader (Kafka's appendAsFollower). Every batch header and CRC is checked; batches this log already
        has are skipped; then the producer state, transactions and the leader-epoch cache follow them.
        Returns the bytes appended. CORRUPT_MESSAGE (KafkaError) for bytes that are not whole batches."""
        try:
            batches = validate_batches(records, from_client=False)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"{self.name}: from the leader: {e}") from None
        end = self.store.log_end_offset
        first = 0
        while first < len(batches) and batches[first][1].last_offset < end:
            first += 1
        if first == len(batches):
            return 0
        pos0, h0 = batches[first]
        if h0.base_offset < end and end == self.store.log_start_offset:
            # An empty log whose start (the leader's log start, moved by DeleteRecords) falls inside the
            # leader's first batch: the log starts again at that batch's base offset, as Kafka's follower does
            # on an UnexpectedAppendOffsetException; the partition moves the log start offset up again.
            self.truncate_fully_and_start_at(h0.base_offset)
            end = h0.base_offset
        if h0.base_offset < end:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"{self.name}: the leader's batch at {h0.base_offset} "
                             f"straddles this log's end {end}")
        view = memoryview(records)[pos0:]
        self.store.append(view, h0.base_offset, batches[-1][1].last_offset,
                          sum(h.record_count for _pos, h in batches[first:]))
        for pos, h in batches[first:]:
            self._replay_batch(view, pos - pos0, h)
        self._update_first_unstable_offset()
        return len(view)

    def set_follower_high_watermark(self, leader_high_watermark: int) -> None:
        """A follower's high watermark: the leader's, capped at this log's end (it may go down, as Kafka's
        follower takes what the leader says)."""
        store = self.store
        hw = max(min(leader_high_watermark, store.log_end_offset), store.log_start_offset)
        if hw != self.high_watermark:
            self.high_watermark = hw
            self._update_last_stable_offset()

    def latest_epoch(self) -> int:
        """The leader epoch of the last batch (or leader change) this log knows; -1 when none."""
        e = self.leader_epoch_cache.latest_epoch
        return -1 if e is None else e

    def append_txn_marker(self, producer_id: int, producer_epoch: int, commit: bool, leader_epoch: int,
                          coordinator_epoch: int = 0) -> int:
        """Append a COMMIT or ABORT control batch for a producer's transaction; returns its offset.
        TRANSACTION_COORDINATOR_FENCED (nothing written) when a marker of a newer coordinator epoch was written
        for the producer already (Kafka's appendEndTxnMarker)."""
        entry = self.producer_state.producers.get(producer_id)
        if entry is not None and entry.coordinator_epoch > coordinator_epoch:
            raise KafkaError(ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                             f"marker for producer {producer_id} of coordinator epoch {coordinator_epoch}; "
                             f"{entry.coordinator_epoch} was written already")
        offset = self.store.log_end_offset
        now = int(time.time() * 1000)
        batch = build_control_batch(COMMIT if commit else ABORT, producer_id=producer_id,
                                    producer_epoch=producer_epoch, coordinator_epoch=coordinator_epoch,
                                    timestamp_ms=now, base_offset=offset, partition_leader_epoch=leader_epoch)
        self.store.append(batch, offset, offset, 1)
        self.leader_epoch_cache.assign(leader_epoch, offset)
        self.producer_state.bump_epoch(producer_id, producer_epoch, now, coordinator_epoch)
        self._complete_txn(producer_id, offset, commit)
        self._update_first_unstable_offset()
        return offset

    def _complete_txn(self, producer_id: int, marker_offset: int, commit: bool) -> None:
        first = self.producer_state.complete_txn(producer_id)
        if not commit and first is not None:
            self.txn_index.append(marker_offset, producer_id, first)

    def maybe_assign_epoch_start_offset(self, leader_epoch: int, start_offset: int) -> None:
        """A new leader epoch begins at ``start_offset`` (Kafka does this when a replica becomes leader)."""
        self.leader_epoch_cache.assign(leader_epoch, start_offset)

    # -- truncation and the log start offset --------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Drop everything from ``offset`` on (a follower that diverged from its leader); the producer state
        and the transaction index are rebuilt from what is left."""
        if offset >= self.store.log_end_offset:
            # Nothing to drop, but an epoch this replica started as leader without writing a batch may end
            # the cache: it must go, or the leader would find this replica diverging again and again (as
            # Kafka's truncateTo does).
            self.leader_epoch_cache.truncate_from_end(self.store.log_end_offset)
            return
        self.store.truncate_to(offset)
        self.producer_state = ProducerStateManager()
        self.txn_index = TransactionIndex()
        self.leader_epoch_cache = LeaderEpochCache()
        self._load()
        self._clamp_high_watermark()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop the whole log and restart it, empty, at ``offset`` (Kafka's truncateFullyAndStartAt): a
        follower whose log ends before the leader's log start offset. The producer state, the transaction
        index and the leader-epoch cache start empty; the high watermark is ``offset``."""
        self.store.truncate_fully_and_start_at(offset)
        self.producer_state = ProducerStateManager()
        self.txn_index = TransactionIndex()
        self.leader_epoch_cache = LeaderEpochCache()
        self.high_watermark = offset
        self._update_first_unstable_offset()

    def maybe_increment_log_start_offset(self, offset: int) -> None:
        """Move the log start offset up to ``offset`` (DeleteRecords); OFFSET_OUT_OF_RANGE past the high
        watermark, as Kafka's ``maybeIncrementLogStartOffset``."""
        if offset > self.high_watermark:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"Cannot increment the log start offset to {offset} "
                             f"of partition {self.name} since it is larger than the high watermark "
                             f"{self.high_watermark}")
        if offset > self.store.log_start_offset:
            self.store.delete_records_before(offset)
            self._log_start_moved()

    def _log_start_moved(self) -> None:
        self.leader_epoch_cache.truncate_from_start(self.store.log_start_offset)
        self._clamp_high_watermark()

    # -- reads -------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, min_one_batch: bool = True, max_offset: int | None = None,
             regions: bool = False) -> list:
        """Whole batches from the one containing ``offset``; with ``min_one_batch``, at least one even if
        it is larger than ``max_bytes`` (KIP-74: the first partition of a Fetch response that has data).
        ``max_offset`` (the last stable offset, for read_committed) excludes batches that start at or after it.
        ``regions``: as ``FileRegion``s of the segment files where the store keeps files (for sendfile)."""
        store = self.store
        if max_offset is not None and max_offset >= store.log_end_offset:
            max_offset = None
        if regions:
            found = store.read_regions(offset, max_bytes, min_one_batch=min_one_batch, max_offset=max_offset)
            if found is not None:
                return found
        chunks = store.read(offset, max_bytes, min_one_batch=min_one_batch)
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

    def collect_aborted_txns(self, fetch_offset: int, upper_offset: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions that overlap [fetch_offset, upper_offset):
        what a read_committed consumer needs to drop aborted records (Kafka's collectAbortedTxns)."""
        return self.txn_index.collect_aborted_txns(fetch_offset, upper_offset)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """``(epoch, end offset)`` for OffsetForLeaderEpoch; (-1, -1) when the epoch is unknown."""
        return self.leader_epoch_cache.end_offset_for(leader_epoch, self.store.log_end_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int]:
        """(timestamp, offset) of the first record at or after ``timestamp_ms``; (-1, -1) if there is none."""
        found = self.store.find_offset_by_timestamp(timestamp_ms)
        if found is None:
            return -1, -1
        for pos, _h in iter_batches(found):
            rec = record_for_timestamp(found, timestamp_ms, self.store.log_start_offset, pos)
            if rec is not None:
                return rec.timestamp, rec.offset
        return -1, -1

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the record with the largest timestamp (KIP-734); (-1, -1) when empty."""
        ts, batch_offset = self.store.max_timestamp()
        if ts < 0 or batch_offset < self.store.log_start_offset:
            return -1, -1
        for chunk in self.store.read(batch_offset, 1):
            for pos, _h in iter_batches(chunk):
                for rec in decode_records(chunk, pos):
                    if rec.timestamp == ts:
                        return ts, rec.offset
        return ts, batch_offset

    def active_producers(self) -> list[tuple[int, object, int]]:
        """``(producer id, its state entry, first offset of its open transaction or -1)`` by producer id
        (DescribeProducers)."""
        ongoing = self.producer_state.ongoing_txns
        return [(pid, entry, ongoing.get(pid, -1)) for pid, entry in sorted(self.producer_state.producers.items())]

    def size_bytes(self) -> int:
        return self.store.size_bytes()

    # -- what the log manager does: rolls, retention, producer expiry, flushes ----------------

    def segment_infos(self):
        return self.store.segment_infos()

    def roll(self) -> bool:
        return self.store.roll()

    def maybe_roll(self, now_ms: int) -> bool:
        return self.store.maybe_roll(now_ms)

    def delete_oldest_segments(self, count: int) -> int:
        """Retention: remove the ``count`` oldest segments; returns the bytes freed."""
        freed = self.store.delete_oldest_segments(count)
        self._log_start_moved()
        return freed

    def remove_expired_producers(self, before_ms: int) -> int:
        return self.producer_state.expire(before_ms)

    def forget_aborted_txns(self, below_offset: int, keep) -> int:
        """Forget the aborted transactions whose marker is below ``below_offset``, except those in ``keep``:
        compaction found none of their records left, so read_committed consumers have nothing of theirs to
        drop. Returns how many went. At start-up the index is rebuilt from the log, which has no records of
        them."""
        return self.txn_index.forget(below_offset, keep)

    def maybe_flush(self) -> bool:
        return self.store.maybe_flush()

    def flush(self) -> None:
        self.store.flush()

    def close(self) -> None:
        self.store.close()

    def discard(self) -> None:
        """Close without flushing: the log is about to be removed (a deleted topic)."""
        self.store.discard()
