"""The transaction coordinator (KIP-98, with the epoch rules of KIP-360 and KIP-588): the classic
transaction protocol (transaction versions 0 and 1) and transaction protocol v2 (KIP-890 part 2).

Theory of operation
-------------------
Every transactional id has a producer id and epoch, a timeout, a state and the partitions and groups of its
current transaction:

    Empty/CompleteCommit/CompleteAbort --AddPartitionsToTxn, AddOffsetsToTxn--> Ongoing
    Ongoing --EndTxn(commit)--> PrepareCommit --markers written, offsets published--> CompleteCommit
    Ongoing --EndTxn(abort), timeout, a new InitProducerId--> PrepareAbort --markers written--> CompleteAbort

InitProducerId hands out the producer id (new for a new transactional id) and bumps the epoch, which fences
the producer that had the previous epoch (PRODUCER_FENCED for its next request; INVALID_PRODUCER_EPOCH for
request versions that predate that error). When the transaction of the fenced producer is still open, it is
aborted first with the bumped epoch and the new producer is told CONCURRENT_TRANSACTIONS, to retry, as Kafka
does. A transaction open longer than its timeout is aborted the same way.

Transaction protocol v2 (a producer that sends EndTxn v5+, AddPartitionsToTxn v4+ through its partitions'
leaders, as Kafka's TransactionVersion.transactionVersionFor*): each transaction end bumps the producer epoch,
and the markers carry the bumped epoch, so that nothing the producer sent with the old one can join a later
transaction. The EndTxn answer names the producer id and epoch of the next transaction. When the epoch is
exhausted (Short.MAX_VALUE - 1) the end allocates the next producer id (``next_producer_id``): the markers
carry the old id at Short.MAX_VALUE and the transactional id moves to the new id, epoch 0, once they are
written. The client's transaction version is kept with the transaction (TransactionLogValue's tag 2), since
the rules for a retried EndTxn depend on it: with v2 an EndTxn at the epoch before the current one is a retry
of the end that bumped it (Kafka's endTxnEpochBumped), and one at the current epoch is the next end.
Partitions and groups reach a v2 transaction implicitly: a transactional Produce v12+ or TxnOffsetCommit v5+
has the partition's leader add them (coordinator/txn_partitions.py).

Ending a transaction writes a control batch (COMMIT or ABORT marker) into every partition of the
transaction, through ``write_marker`` (the partition's leader writes it). A group's transactional offsets are
completed by the marker on the group's partition of __consumer_offsets, which AddOffsetsToTxn put among the
transaction's partitions, as Kafka does. The Prepare state is written before any marker, so a crash or a new
leader in between finishes it at load ("a half-written commit completes"); Complete is written after the last
marker.

The coordinator is one shard: the transactional ids of one partition of __transaction_state, whose records
hold its state (``journal``: coordinator/transaction_log.py; a state log's KeyedState in unit tests), one
record per transactional id; a change counts only once written there. coordinator/service.py routes each
transactional id to its shard.

Concurrency: called from the event loop only; nothing awaits between reading and writing a transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ..errors import ErrorCode, KafkaError

log = logging.getLogger("kbroker.coordinator.transaction")

EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
STATES = (EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT, "Dead",
          "PrepareEpochFence")

NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767  # Short.MAX_VALUE: an epoch that reaches MAX_EPOCH - 1 is exhausted and the id rotates
COORDINATOR_EPOCH = 0  # one broker, never re-elected


@dataclass
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: str = EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1
    prev_producer_id: int = -1  # the id before the last rotation, for a KIP-360 retry that spans it
    next_producer_id: int = -1  # v2: the id this transaction's end rotates to once its markers are written
    client_transaction_version: int = 0  # of the producer's last request that changed the transaction

    def to_json(self) -> dict:
        return {"pid": self.producer_id, "epoch": self.producer_epoch, "last_epoch": self.last_producer_epoch,
                "timeout_ms": self.timeout_ms, "state": self.state, "partitions": sorted(self.partitions),
                "groups": sorted(self.groups), "start_ms": self.start_ms, "last_update_ms": self.last_update_ms,
                "prev_pid": self.prev_producer_id, "next_pid": self.next_producer_id,
                "tv": self.client_transaction_version}

    @classmethod
    def from_json(cls, tid: str, d: dict) -> "TransactionMetadata":
        return cls(tid, d["pid"], d["epoch"], d["last_epoch"], d["timeout_ms"], d["state"],
                   {(t, p) for t, p in d["partitions"]}, set(d["groups"]), d["start_ms"], d["last_update_ms"],
                   d.get("prev_pid", -1), d.get("next_pid", -1), d.get("tv", 0))


@dataclass
class InitResult:
    error_code: int
    producer_id: int = -1
    producer_epoch: int = -1


EndResult = InitResult  # EndTxn v5+ answers with the producer id and epoch to use next, as InitProducerId
TV2 = 2  # transaction.version 2: an epoch bump per transaction (TransactionVersion.supportsEpochBump)


class TransactionCoordinator:
    def __init__(self, clock, journal, producer_ids, write_marker, offsets_partition, partition_exists,
                 max_timeout_ms: int = 900000, abort_check_interval_ms: int = 10000):
        """``journal``: a KeyedState-like ``state`` and ``put`` (coordinator/transaction_log.py over a partition
        of __transaction_state); ``write_marker(topic, partition, producer_id, epoch, commit)`` has the
        partition's leader append a control batch; ``offsets_partition(group_id)`` is the group's partition of
        __consumer_offsets, which AddOffsetsToTxn adds to the transaction so that its marker publishes or drops
        the group's transactional offsets (Kafka's way); ``partition_exists(topic, partition)`` says whether a
        partition can join a transaction."""
        self.clock = clock
        self.journal = journal
        self.producer_ids = producer_ids
        self.write_marker = write_marker
        self.offsets_partition = offsets_partition
        self.partition_exists = partition_exists
        self.max_timeout_ms = max_timeout_ms
        self.abort_check_interval_ms = abort_check_interval_ms
        self.txns: dict[str, TransactionMetadata] = {}
        self._completions: set = set()  # tasks finishing transactions whose markers are on their way
        self._timer = None

    # -- life cycle ----------------------------------------------------------

    def load(self) -> None:
        """Read the journal and finish what a crash interrupted: a Prepare state completes."""
        for tid, d in self.journal.state.items():
            txn = self.txns[tid] = TransactionMetadata.from_json(tid, d)
            # A journal of an earlier release kept groups apart; their offsets partitions carry the markers now.
            txn.partitions.update(self.offsets_partition(g) for g in txn.groups)
        for txn in self.txns.values():
            if txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
                log.info("completing the %s of transactional id %s interrupted by a restart",
                         "commit" if txn.state == PREPARE_COMMIT else "abort", txn.transactional_id)
                self._complete(txn)
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._completions):  # a new leader completes them from the Prepare state it loads
            task.cancel()

    def _schedule(self) -> None:
        self._timer = self.clock.call_later(self.abort_check_interval_ms, self._on_timer)

    def _on_timer(self) -> None:
        self.abort_timed_out()
        self._schedule()

    def _persist(self, txn: TransactionMetadata) -> None:
        """Makes the change to ``txn`` durable. When the state log cannot (OSError, raised on), the change is not
        made: the transactional id goes back to its last durable state, so that what the coordinator answers
        next is what a restart would load."""
        txn.last_update_ms = self.clock.now_ms()
        try:
            self.journal.put(txn.transactional_id, txn.to_json())
        except (OSError, KafkaError):
            durable = self.journal.state.get(txn.transactional_id)
            if durable is None:
                self.txns.pop(txn.transactional_id, None)
            else:
                self.txns[txn.transactional_id] = TransactionMetadata.from_json(txn.transactional_id, durable)
            raise

    # -- InitProducerId ------------------------------------------------------

    def init_producer_id(self, tid: str, timeout_ms: int, expected_pid: int = -1,
                         expected_epoch: int = -1) -> InitResult:
        if tid == "" or (expected_pid < 0) != (expected_epoch < 0):
            return InitResult(ErrorCode.INVALID_REQUEST)  # Kafka: both producer id and epoch, or neither
        if not 0 < timeout_ms <= self.max_timeout_ms:
            return InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        txn = self.txns.get(tid)
        if txn is None:
            txn = TransactionMetadata(tid, self.producer_ids.next_id(), NO_PRODUCER_EPOCH, NO_PRODUCER_EPOCH,
                                      timeout_ms)
            self.txns[tid] = txn
        expected = expected_pid >= 0
        if (expected and txn.producer_epoch != NO_PRODUCER_EPOCH and expected_pid != txn.producer_id
                and not (expected_pid == txn.prev_producer_id and expected_epoch >= MAX_EPOCH - 1)):
            # Another producer id, unless it is the one we rotated away from at its exhausted epoch: a retry of
            # the InitProducerId that rotated it (Kafka's isValidProducerId).
            return InitResult(ErrorCode.PRODUCER_FENCED)
        if txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if txn.state == ONGOING:
            # Fence the current producer and abort its transaction; the new one retries (Kafka's
            # PrepareEpochFence path answers CONCURRENT_TRANSACTIONS).
            self._fence_epoch(txn)
            self._end(txn, commit=False)
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if expected and txn.producer_epoch != NO_PRODUCER_EPOCH:
            if expected_epoch == txn.last_producer_epoch and expected_epoch != txn.producer_epoch:
                # A retry of the InitProducerId that already bumped the epoch (KIP-360).
                return InitResult(0, txn.producer_id, txn.producer_epoch)
            if expected_epoch != txn.producer_epoch:
                return InitResult(ErrorCode.PRODUCER_FENCED)
        txn.timeout_ms = timeout_ms
        self._bump_epoch(txn, expected)
        txn.state = EMPTY
        txn.partitions.clear()
        txn.groups.clear()
        txn.start_ms = -1
        self._persist(txn)
        return InitResult(0, txn.producer_id, txn.producer_epoch)

    def _bump_epoch(self, txn: TransactionMetadata, expected: bool) -> None:
        """InitProducerId's bump (Kafka's prepareIncrementProducerEpoch / prepareProducerIdRotation). The last
        epoch is remembered only for a producer that named its own epoch (KIP-360), so that only it can retry;
        a new producer (no epoch given) leaves none, so a fenced one cannot pass for a retry."""
        if txn.producer_epoch >= MAX_EPOCH - 1:
            txn.prev_producer_id = txn.producer_id
            txn.producer_id = self.producer_ids.next_id()
            txn.last_producer_epoch = txn.producer_epoch if expected else NO_PRODUCER_EPOCH
            txn.producer_epoch = 0
        else:
            txn.last_producer_epoch = txn.producer_epoch if expected else NO_PRODUCER_EPOCH
            txn.producer_epoch += 1

    def _fence_epoch(self, txn: TransactionMetadata) -> None:
        """Fencing before an abort that the producer did not ask for (a new producer, a timeout): one epoch up,
        at most Short.MAX_VALUE, and never a new producer id, since the abort markers must carry the id that
        wrote the transaction (Kafka's prepareFenceProducerEpoch; the id rotates at the next InitProducerId).
        No last epoch: the fenced producer cannot pass for a retry."""
        txn.producer_epoch = min(txn.producer_epoch + 1, MAX_EPOCH)
        txn.last_producer_epoch = NO_PRODUCER_EPOCH

    # -- adding partitions and groups ----------------------------------------

    def _check(self, tid: str, pid: int, epoch: int) -> tuple[int, TransactionMetadata | None]:
        if not tid:
            return ErrorCode.INVALID_REQUEST, None
        txn = self.txns.get(tid)
        if txn is None or txn.producer_id != pid:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING, None
        if txn.producer_epoch != epoch:
            return ErrorCode.PRODUCER_FENCED, None
        if txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return ErrorCode.CONCURRENT_TRANSACTIONS, None
        return 0, txn

    def add_partitions(self, tid: str, pid: int, epoch: int, partitions: list[tuple[str, int]],
                       transaction_version: int = 0) -> dict[tuple[str, int], int]:
        """Per partition: NONE, or the error; unknown partitions fail and the rest are not attempted.
        ``transaction_version``: 2 when a partition leader adds them for a v2 producer (AddPartitionsToTxn v4+)."""
        err, txn = self._check(tid, pid, epoch)
        if err:
            return {tp: err for tp in partitions}
        unknown = [tp for tp in partitions if not self.partition_exists(*tp)]
        if unknown:
            return {tp: (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED)
                    for tp in partitions}
        if txn.state == ONGOING and set(partitions) <= txn.partitions:
            return {tp: 0 for tp in partitions}
        self._begin(txn)
        txn.partitions.update(partitions)
        txn.client_transaction_version = transaction_version
        self._persist(txn)
        return {tp: 0 for tp in partitions}

    def add_offsets(self, tid: str, pid: int, epoch: int, group_id: str) -> int:
        err, txn = self._check(tid, pid, epoch)
        if err:
            return err
        self._begin(txn)
        txn.client_transaction_version = 0  # AddOffsetsToTxn is the classic protocol's (Kafka: TV_0)
        txn.groups.add(group_id)
        txn.partitions.add(self.offsets_partition(group_id))
        self._persist(txn)
        return 0

    def _begin(self, txn: TransactionMetadata) -> None:
        if txn.state != ONGOING:
            txn.state = ONGOING
            txn.partitions.clear()
            txn.groups.clear()
            txn.start_ms = self.clock.now_ms()

    def is_ongoing(self, tid: str, pid: int, epoch: int) -> int:
        """For TxnOffsetCommit: NONE when the producer is current (Kafka's group coordinator leaves the rest
        to the transaction coordinator)."""
        txn = self.txns.get(tid)
        if txn is None or txn.producer_id != pid:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if txn.producer_epoch != epoch:
            return ErrorCode.PRODUCER_FENCED
        return 0

    # -- ending --------------------------------------------------------------

    def end_txn(self, tid: str, pid: int, epoch: int, commit: bool, transaction_version: int = 0) -> EndResult:
        """EndTxn: the error, and on success the producer id and epoch for the producer's next transaction
        (with v2 the bumped ones; ``transaction_version`` 2 for EndTxn v5+)."""
        if not tid:
            return EndResult(ErrorCode.INVALID_REQUEST)
        txn = self.txns.get(tid)
        if txn is None:
            return EndResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        v2 = txn.client_transaction_version >= TV2
        # A v2 retry of the end that bumped the epoch, or of the one that also rotated the producer id.
        retry_on_bump = v2 and txn.producer_id == pid and txn.producer_epoch == epoch + 1
        retry_on_overflow = (v2 and txn.prev_producer_id == pid and epoch == MAX_EPOCH - 1
                             and txn.producer_epoch == 0)
        if v2 and txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            valid_epoch = retry_on_bump
        elif v2 and txn.state in (COMPLETE_COMMIT, COMPLETE_ABORT):
            valid_epoch = retry_on_bump or retry_on_overflow
        else:
            valid_epoch = txn.producer_epoch == epoch
        if txn.producer_id != pid and not retry_on_overflow:
            return EndResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if not valid_epoch:
            return EndResult(ErrorCode.PRODUCER_FENCED)
        if txn.state == ONGOING:
            self._end(txn, commit, bump=transaction_version >= TV2)
            return self._next_ids(txn)
        if txn.state == COMPLETE_COMMIT:
            return self._next_ids(txn) if commit else EndResult(ErrorCode.INVALID_TXN_STATE)
        if txn.state == COMPLETE_ABORT:
            return self._next_ids(txn) if not commit else EndResult(ErrorCode.INVALID_TXN_STATE)
        if txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return EndResult(ErrorCode.CONCURRENT_TRANSACTIONS if (txn.state == PREPARE_COMMIT) == commit
                             else ErrorCode.INVALID_TXN_STATE)
        return EndResult(ErrorCode.INVALID_TXN_STATE)  # Empty: nothing to end

    @staticmethod
    def _next_ids(txn: TransactionMetadata) -> EndResult:
        """What the producer uses next: the ids the transaction has once complete (Kafka answers with its
        prepareComplete metadata), also while its markers are still on their way."""
        if txn.next_producer_id >= 0:
            return EndResult(0, txn.next_producer_id, 0)
        return EndResult(0, txn.producer_id, txn.producer_epoch)

    def _end(self, txn: TransactionMetadata, commit: bool, bump: bool = False) -> None:
        """Prepare, then the markers. ``bump`` (v2, Kafka's prepareAbortOrCommit): one epoch up first, with a
        new producer id to move to when the epoch is exhausted; a fencing abort has bumped it already."""
        if bump:
            if txn.producer_epoch >= MAX_EPOCH - 1:
                txn.next_producer_id = self.producer_ids.next_id()
            txn.last_producer_epoch = txn.producer_epoch
            txn.producer_epoch += 1
            txn.client_transaction_version = TV2
        txn.state = PREPARE_COMMIT if commit else PREPARE_ABORT
        self._persist(txn)
        self._complete(txn)

    def _complete(self, txn: TransactionMetadata) -> None:
        """Writes the markers; the transaction completes once every one is written: at once when
        ``write_marker`` wrote them all (it returns None), else when the awaitables it returned are done (the
        markers sent to other brokers), meanwhile staying in its Prepare state (CONCURRENT_TRANSACTIONS to the
        producer's next request, as Kafka)."""
        commit = txn.state == PREPARE_COMMIT
        pending = []
        for topic, partition in sorted(txn.partitions):
            try:
                sent = self.write_marker(topic, partition, txn.producer_id, txn.producer_epoch, commit)
            except LookupError:
                log.warning("partition %s-%d of transactional id %s is gone; no marker written", topic, partition,
                            txn.transactional_id)
                continue
            if sent is not None:
                pending.append(sent)
        if not pending:
            self._finish(txn, commit)
            return
        task = asyncio.ensure_future(self._finish_when_written(txn, commit, pending))
        self._completions.add(task)
        task.add_done_callback(self._completions.discard)

    async def _finish_when_written(self, txn: TransactionMetadata, commit: bool, pending: list) -> None:
        await asyncio.gather(*pending)
        if self.txns.get(txn.transactional_id) is txn and txn.state == (PREPARE_COMMIT if commit else PREPARE_ABORT):
            try:
                self._finish(txn, commit)
            except (OSError, KafkaError) as e:  # the next leader of the partition completes it on loading
                log.error("transactional id %s: could not record its completion: %s", txn.transactional_id, e)

    def _finish(self, txn: TransactionMetadata, commit: bool) -> None:
        txn.state = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        if txn.next_producer_id >= 0:  # v2 at an exhausted epoch: the markers are written, the id moves on
            txn.prev_producer_id, txn.producer_id = txn.producer_id, txn.next_producer_id
            txn.next_producer_id, txn.producer_epoch = -1, 0
            txn.last_producer_epoch = NO_PRODUCER_EPOCH
        txn.partitions.clear()
        txn.groups.clear()
        self._persist(txn)

    def abort_timed_out(self) -> int:
        """Abort every transaction open longer than its timeout, fencing its producer (Kafka bumps the epoch
        so that a zombie cannot go on)."""
        now = self.clock.now_ms()
        n = 0
        for txn in list(self.txns.values()):
            if txn.state == ONGOING and txn.start_ms >= 0 and now - txn.start_ms > txn.timeout_ms:
                log.info("aborting transaction of %s: open for %d ms, timeout %d ms", txn.transactional_id,
                         now - txn.start_ms, txn.timeout_ms)
                self._fence_epoch(txn)
                self._end(txn, commit=False)
                n += 1
        return n

    # -- describing ----------------------------------------------------------

    def describe(self, tid: str) -> TransactionMetadata | None:
        return self.txns.get(tid)

    def list(self, states: list[str] | None, producer_ids: list[int] | None,
             duration_filter_ms: int = -1) -> list[TransactionMetadata]:
        now = self.clock.now_ms()
        out = []
        for txn in self.txns.values():
            if states and txn.state not in states:
                continue
            if producer_ids and txn.producer_id not in producer_ids:
                continue
            if duration_filter_ms >= 0 and not (txn.state == ONGOING and now - txn.start_ms > duration_filter_ms):
                continue
            out.append(txn)
        return out
