"""Idempotent producers: per partition, the last batches of each producer id, to refuse gaps and to answer
retries without writing them twice (KIP-98; epochs after KIP-360).

For every producer id seen in a partition we keep its epoch and the metadata (first and last sequence,
first and last offset) of its last five batches, the most a producer has in flight. A batch is:

- a duplicate when one of those five has the same epoch and sequence range: it is not written, and the
  answer carries the offset the original got, as Kafka answers a retry;
- refused with INVALID_PRODUCER_EPOCH when its epoch is older than the producer's;
- refused with OUT_OF_ORDER_SEQUENCE_NUMBER when, at the same epoch, its first sequence does not follow the
  last one (sequences wrap at 2^31-1), or when a new epoch does not start at sequence 0;
- accepted with any sequence from a producer id the partition has no state for (its records may have gone
  with retention or DeleteRecords; Kafka accepts them too).

Open transactions are kept here too, as Kafka's ProducerStateManager keeps them: producer id -> the first
offset of its transaction in this partition (``ongoing_txns``). The oldest of them is the first unstable
offset, which bounds the last stable offset; a marker closes one (``complete_txn``).

The state is rebuilt from the batch headers of the log when it is opened (``UnifiedLog``), so it survives
restarts exactly as far as the log does. Everything runs on the event loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..errors import ErrorCode, KafkaError

NUM_BATCHES_TO_RETAIN = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN; max.in.flight is at most 5
INT32_MAX = 2147483647


@dataclass(slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    current_txn_first_offset: int = -1  # the first offset of its open transaction in this partition
    last_timestamp: int = -1  # of its last batch or marker: producer.id.expiration.ms counts from it
    coordinator_epoch: int = -1  # of the transaction coordinator that wrote its last marker; -1: none yet

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


class ProducerStateManager:
    def __init__(self):
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing_txns: dict[int, int] = {}  # producer id -> first offset of its open transaction

    def begin_txn(self, producer_id: int, first_offset: int) -> None:
        """A transactional batch: opens the producer's transaction here unless it is open already."""
        self.ongoing_txns.setdefault(producer_id, first_offset)

    def complete_txn(self, producer_id: int) -> int | None:
        """A marker ends the producer's transaction; returns its first offset (None: none was open)."""
        return self.ongoing_txns.pop(producer_id, None)

    def in_transaction(self, producer_id: int, epoch: int) -> bool:
        """Whether the producer's transaction is open here at ``epoch``: a batch of it is written."""
        entry = self.producers.get(producer_id)
        return producer_id in self.ongoing_txns and entry is not None and entry.epoch == epoch

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction; None when none is open."""
        return min(self.ongoing_txns.values()) if self.ongoing_txns else None

    def check(self, producer_id: int, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        """Check one batch before it is written: the duplicate's metadata, None to write, or KafkaError."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH,
                             f"Epoch {epoch} of producer {producer_id} is older than its current epoch {entry.epoch}")
        if epoch == entry.epoch:
            for b in entry.batches:
                if b.first_seq == first_seq and b.last_seq == last_seq:
                    return b
            # An entry with no batches yet (made by a transaction marker) expects sequence 0, as Kafka's.
            if not _in_sequence(entry.last_seq, first_seq):
                raise KafkaError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"Out of order sequence number for producer {producer_id}: {first_seq} "
                                 f"(incoming seq. number), {entry.last_seq} (current end sequence number)")
        elif first_seq != 0:
            raise KafkaError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                             f"Invalid sequence number for new epoch {epoch} of producer {producer_id}: {first_seq}")
        return None

    def update(self, producer_id: int, epoch: int, first_seq: int, last_seq: int, first_offset: int,
               last_offset: int, timestamp: int) -> ProducerEntry:
        entry = self.producers.get(producer_id)
        if entry is None or epoch != entry.epoch:
            entry = ProducerEntry(epoch)
            self.producers[producer_id] = entry
        if first_seq >= 0:
            entry.batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp))
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        return entry

    def bump_epoch(self, producer_id: int, epoch: int, timestamp: int = -1,
                   coordinator_epoch: int = -1) -> ProducerEntry:
        """A transaction marker written with a newer epoch fences older ones; the entry keeps the marker's
        coordinator epoch (DescribeProducers shows it)."""
        entry = self.producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = ProducerEntry(epoch)
            self.producers[producer_id] = entry
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        return entry

    def expire(self, before_ms: int) -> int:
        """Forget producers whose last batch or marker is older than ``before_ms`` (Kafka's
        producer.id.expiration.ms), except those with an open transaction; returns how many."""
        keep = self.ongoing_txns
        gone = [pid for pid, e in self.producers.items() if pid not in keep and e.last_timestamp < before_ms]
        for pid in gone:
            del self.producers[pid]
        return len(gone)
