"""The transaction coordinator on a ManualClock with an in-memory KeyedState: every state transition and
error, the epoch rules (fencing, KIP-360 retries, epoch exhaustion), the timeout abort, and load() finishing
what a crash interrupted.

The expected answers are Kafka's (TransactionCoordinator.handleInitProducerId / handleAddPartitionsToTransaction
/ handleEndTransaction / abortTimedOutTransactions and TransactionMetadata.prepareIncrementProducerEpoch /
prepareFenceProducerEpoch / prepareProducerIdRotation). Markers are recorded by the harness instead of being
written to partitions; a marker on a group's partition of __consumer_offsets (which AddOffsetsToTxn adds to the
transaction, as Kafka) is recorded as the completion of that group's offsets.
"""

from __future__ import annotations

import pytest

from kbroker.clock import ManualClock
from kbroker.coordinator.runtime import OFFSETS_TOPIC, partition_for
from kbroker.coordinator.transaction import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    EMPTY,
    MAX_EPOCH,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    TransactionCoordinator,
)
from kbroker.errors import ErrorCode as E
from kbroker.state_log import KeyedState, keyed_state

MAGIC = b"KBTXNST\x00"
TIMEOUT = 60_000
CHECK_MS = 1_000
T0, T1, U0 = ("t", 0), ("t", 1), ("u", 0)
GROUPS = ("g", "g1", "g2")  # on distinct partitions of __consumer_offsets
OFFSETS_PARTITIONS = 50


def offsets_partition(group: str) -> tuple[str, int]:
    return OFFSETS_TOPIC, partition_for(group, OFFSETS_PARTITIONS)


class Ids:
    """Producer ids from a counter, as ProducerIdManager hands them out."""

    def __init__(self, start: int = 1000):
        self.next = start

    def next_id(self) -> int:
        self.next += 1
        return self.next - 1


class Harness:
    def __init__(self, journal: KeyedState | None = None, clock: ManualClock | None = None, ids: Ids | None = None,
                 partitions=(T0, T1, U0), max_timeout_ms: int = 900_000):
        self.clock = clock or ManualClock()
        self.journal = journal or keyed_state(None, MAGIC)
        self.ids = ids or Ids()
        self.partitions = set(partitions)
        self.markers: list[tuple] = []  # (topic, partition, producer id, epoch, commit)
        self.offsets: list[tuple] = []  # (producer id, group, commit)
        self.states: list[tuple] = []  # (transactional id, state) as written to the journal, in order
        put = self.journal.put

        def recording_put(key, value):
            self.states.append((key, value["state"]))
            put(key, value)

        self.journal.put = recording_put
        self.fail_marker_after: int | None = None  # raise (a simulated crash) after this many markers
        self.coord = TransactionCoordinator(self.clock, self.journal, self.ids, self._write_marker,
                                            offsets_partition, lambda t, p: (t, p) in self.partitions,
                                            max_timeout_ms=max_timeout_ms, abort_check_interval_ms=CHECK_MS)
        self.coord.load()

    def _write_marker(self, topic, partition, pid, epoch, commit):
        if topic == OFFSETS_TOPIC:  # the group coordinator completes the group's offsets on this marker
            self.offsets += [(pid, g, commit) for g in GROUPS if offsets_partition(g) == (topic, partition)]
            return
        if (topic, partition) not in self.partitions:
            raise LookupError(f"{topic}-{partition}")
        if self.fail_marker_after is not None and len(self.markers) >= self.fail_marker_after:
            raise Crash()
        self.markers.append((topic, partition, pid, epoch, commit))

    # -- shortcuts -----------------------------------------------------------

    def init(self, tid="tx", timeout=TIMEOUT, pid=-1, epoch=-1):
        return self.coord.init_producer_id(tid, timeout, pid, epoch)

    def ready(self, tid="tx", timeout=TIMEOUT) -> tuple[int, int]:
        r = self.init(tid, timeout)
        assert r.error_code == 0, r
        return r.producer_id, r.producer_epoch

    def add(self, pid, epoch, tid="tx", parts=(T0, T1)):
        return self.coord.add_partitions(tid, pid, epoch, list(parts))

    def txn(self, tid="tx"):
        return self.coord.describe(tid)


class Crash(Exception):
    """Stands for the broker dying in the middle of writing markers."""


@pytest.fixture
def h():
    return Harness()


# -- InitProducerId -------------------------------------------------------------------------------------------


def test_init_gives_a_new_transactional_id_a_producer_id_at_epoch_zero(h):
    r = h.init()
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, 1000, 0)
    t = h.txn()
    assert (t.state, t.producer_id, t.producer_epoch, t.last_producer_epoch, t.timeout_ms) == \
        (EMPTY, 1000, 0, -1, TIMEOUT)
    assert h.journal.state["tx"]["state"] == EMPTY  # persisted
    assert h.init("other").producer_id == 1001  # every transactional id has its own producer id


def test_init_again_keeps_the_producer_id_and_bumps_the_epoch(h):
    pid, epoch = h.ready()
    r = h.init(timeout=30_000)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 1)
    assert h.txn().timeout_ms == 30_000  # the new producer's timeout


def test_init_needs_a_transactional_id(h):
    assert h.init("").error_code == E.INVALID_REQUEST


def test_init_with_a_producer_id_but_no_epoch_or_the_reverse_is_invalid(h):
    """Kafka's KafkaApis.handleInitProducerIdRequest: both, or neither."""
    pid, epoch = h.ready()
    assert h.init(pid=pid, epoch=-1).error_code == E.INVALID_REQUEST
    assert h.init(pid=-1, epoch=epoch).error_code == E.INVALID_REQUEST
    assert h.txn().producer_epoch == epoch


@pytest.mark.parametrize("timeout", [0, -1, 900_001])
def test_init_refuses_a_timeout_outside_the_maximum(h, timeout):
    r = h.init(timeout=timeout)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (E.INVALID_TRANSACTION_TIMEOUT, -1, -1)
    assert h.txn() is None  # nothing created


def test_init_accepts_exactly_the_maximum_timeout():
    h = Harness(max_timeout_ms=5_000)
    assert h.init(timeout=5_000).error_code == 0
    assert h.init(timeout=5_001).error_code == E.INVALID_TRANSACTION_TIMEOUT


def test_init_with_an_ongoing_transaction_fences_and_aborts_it_then_asks_to_retry(h):
    pid, epoch = h.ready()
    assert h.add(pid, epoch) == {T0: 0, T1: 0}
    assert h.coord.add_offsets("tx", pid, epoch, "g") == 0

    r = h.init()
    assert r.error_code == E.CONCURRENT_TRANSACTIONS
    # Aborted with the bumped epoch, so that the old producer's epoch is fenced in the partitions too.
    assert h.markers == [("t", 0, pid, epoch + 1, False), ("t", 1, pid, epoch + 1, False)]
    assert h.offsets == [(pid, "g", False)]
    assert h.txn().state == COMPLETE_ABORT
    assert [s for _, s in h.states][-2:] == [PREPARE_ABORT, COMPLETE_ABORT]

    # The retry bumps once more: the new producer's epoch is two above the fenced one (as in Kafka).
    r = h.init()
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 2)
    assert h.txn().state == EMPTY
    # The old producer is fenced everywhere.
    assert h.add(pid, epoch) == {T0: E.PRODUCER_FENCED, T1: E.PRODUCER_FENCED}
    assert h.coord.add_offsets("tx", pid, epoch, "g") == E.PRODUCER_FENCED
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.PRODUCER_FENCED
    assert h.coord.is_ongoing("tx", pid, epoch) == E.PRODUCER_FENCED


def test_init_during_prepare_is_concurrent_transactions(h):
    pid, epoch = h.ready()
    h.add(pid, epoch)
    for state in (PREPARE_COMMIT, PREPARE_ABORT):
        h.txn().state = state  # markers still being written (Kafka writes them asynchronously)
        assert h.init().error_code == E.CONCURRENT_TRANSACTIONS
        assert h.txn().producer_epoch == epoch  # nothing bumped


# -- KIP-360: a producer bumps its own epoch; retries --------------------------------------------------------


def test_kip360_bump_with_the_current_epoch(h):
    pid, epoch = h.ready()
    r = h.init(pid=pid, epoch=epoch)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 1)
    assert h.txn().last_producer_epoch == epoch


def test_kip360_retry_of_a_bump_returns_the_same_epoch(h):
    pid, epoch = h.ready()
    first = h.init(pid=pid, epoch=epoch)
    retry = h.init(pid=pid, epoch=epoch)  # the answer to the first was lost
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (0, pid, first.producer_epoch)
    assert h.txn().producer_epoch == epoch + 1


def test_kip360_bump_with_a_stale_epoch_is_fenced(h):
    pid, epoch = h.ready()
    h.init(pid=pid, epoch=epoch)  # epoch + 1
    h.init(pid=pid, epoch=epoch + 1)  # epoch + 2; the last epoch is epoch + 1
    assert h.init(pid=pid, epoch=epoch).error_code == E.PRODUCER_FENCED
    assert h.txn().producer_epoch == epoch + 2


def test_kip360_bump_with_another_producer_id_is_fenced(h):
    pid, epoch = h.ready()
    assert h.init(pid=pid + 7, epoch=epoch).error_code == E.PRODUCER_FENCED
    assert h.txn().producer_epoch == epoch


def test_kip360_bump_of_a_zombie_after_a_new_producer_initialised_is_fenced(h):
    """Producer A has epoch 0; producer B (same transactional id) initialises without an epoch and gets 1.
    A, after an abortable error, asks to bump its epoch 0. Kafka's prepareIncrementProducerEpoch sets
    lastProducerEpoch to -1 when no epoch is given ("a new producer calling InitProducerId would have caused
    the last epoch to be set to -1"), so A's request matches neither epoch and is PRODUCER_FENCED. Treating it
    as a retry would hand A the epoch B holds: two live producers with one epoch."""
    pid, a_epoch = h.ready()
    b = h.init()
    assert b.producer_epoch == a_epoch + 1
    zombie = h.init(pid=pid, epoch=a_epoch)
    assert zombie.error_code == E.PRODUCER_FENCED, zombie
    assert h.txn().producer_epoch == b.producer_epoch


def test_kip360_bump_of_a_zombie_after_its_transaction_was_fenced_is_fenced(h):
    pid, a_epoch = h.ready()
    h.add(pid, a_epoch)
    assert h.init().error_code == E.CONCURRENT_TRANSACTIONS  # fences A, aborts its transaction
    b = h.init()
    assert h.init(pid=pid, epoch=a_epoch).error_code == E.PRODUCER_FENCED
    assert h.init(pid=pid, epoch=a_epoch + 1).error_code == E.PRODUCER_FENCED  # the fencing epoch was never A's
    assert h.txn().producer_epoch == b.producer_epoch


def test_init_with_a_producer_id_for_a_new_transactional_id_is_accepted(h):
    """An idempotent producer becoming transactional (Kafka: "the metadata was just created")."""
    r = h.init(pid=5, epoch=3)
    assert (r.error_code, r.producer_epoch) == (0, 0)
    assert r.producer_id == 1000


# -- epoch exhaustion ------------------------------------------------------------------------------------------


def _preloaded(epoch: int, state: str = EMPTY, partitions=(), start_ms: int = -1, pid: int = 7,
               clock: ManualClock | None = None) -> Harness:
    journal = keyed_state(None, MAGIC)
    journal.put("tx", {"pid": pid, "epoch": epoch, "last_epoch": -1, "timeout_ms": TIMEOUT, "state": state,
                       "partitions": [list(p) for p in partitions], "groups": [], "start_ms": start_ms,
                       "last_update_ms": start_ms})
    return Harness(journal=journal, clock=clock)


def test_an_exhausted_epoch_rotates_the_producer_id():
    h = _preloaded(MAX_EPOCH - 1)  # 32766: Kafka's isEpochExhausted
    r = h.init()
    assert r.error_code == 0 and r.producer_id != 7 and r.producer_epoch == 0


def test_the_epoch_below_exhaustion_is_still_bumped():
    h = _preloaded(MAX_EPOCH - 2)
    r = h.init()
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, 7, MAX_EPOCH - 1)


def test_kip360_retry_after_a_producer_id_rotation_returns_the_new_id():
    """Kafka keeps the previous producer id: a retried bump carrying (old id, exhausted epoch) is answered
    with the id it rotated to (TransactionCoordinator.isValidProducerId, case 3)."""
    h = _preloaded(MAX_EPOCH - 1)
    first = h.init(pid=7, epoch=MAX_EPOCH - 1)
    assert first.error_code == 0 and first.producer_id != 7 and first.producer_epoch == 0
    retry = h.init(pid=7, epoch=MAX_EPOCH - 1)
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (0, first.producer_id, 0)


def test_fencing_an_ongoing_transaction_at_an_exhausted_epoch_aborts_it_under_its_own_producer_id():
    """The abort markers must carry the producer id that wrote the transaction's records, or the partitions
    never see it end (their last stable offset stays behind forever). Kafka's prepareFenceProducerEpoch bumps
    the epoch (to at most Short.MAX_VALUE) without rotating; the id rotates at the next InitProducerId."""
    h = _preloaded(MAX_EPOCH - 1, ONGOING, partitions=[T0], start_ms=ManualClock().now_ms())
    assert h.init().error_code == E.CONCURRENT_TRANSACTIONS
    assert h.markers == [("t", 0, 7, MAX_EPOCH, False)]
    r = h.init()
    assert r.error_code == 0 and r.producer_id != 7 and r.producer_epoch == 0


def test_timeout_abort_at_an_exhausted_epoch_aborts_under_its_own_producer_id():
    clock = ManualClock()
    h = _preloaded(MAX_EPOCH - 1, ONGOING, partitions=[T0, T1], start_ms=clock.now_ms(), clock=clock)
    clock.advance(TIMEOUT + CHECK_MS)
    assert h.markers == [("t", 0, 7, MAX_EPOCH, False), ("t", 1, 7, MAX_EPOCH, False)]
    assert h.txn().state == COMPLETE_ABORT


# -- AddPartitionsToTxn / AddOffsetsToTxn ------------------------------------------------------------------


def test_add_partitions_starts_the_transaction(h):
    pid, epoch = h.ready()
    h.clock.advance(5)
    assert h.add(pid, epoch, parts=[T0]) == {T0: 0}
    t = h.txn()
    assert (t.state, t.partitions, t.start_ms) == (ONGOING, {T0}, h.clock.now_ms())
    h.clock.advance(5)
    assert h.add(pid, epoch, parts=[T1, U0]) == {T1: 0, U0: 0}
    assert (h.txn().partitions, h.txn().start_ms) == ({T0, T1, U0}, h.clock.now_ms() - 5)  # start unchanged
    n = len(h.states)
    assert h.add(pid, epoch, parts=[T0, U0]) == {T0: 0, U0: 0}  # already in: answered at once
    assert len(h.states) == n


def test_add_offsets_starts_the_transaction_and_remembers_the_group(h):
    pid, epoch = h.ready()
    assert h.coord.add_offsets("tx", pid, epoch, "g1") == 0
    assert h.coord.add_offsets("tx", pid, epoch, "g2") == 0
    assert (h.txn().state, h.txn().groups) == (ONGOING, {"g1", "g2"})
    assert h.coord.is_ongoing("tx", pid, epoch) == 0


def test_add_partitions_errors(h):
    pid, epoch = h.ready()
    assert h.coord.add_partitions("", pid, epoch, [T0]) == {T0: E.INVALID_REQUEST}
    assert h.add(pid, epoch, tid="unknown", parts=[T0]) == {T0: E.INVALID_PRODUCER_ID_MAPPING}
    assert h.add(pid + 1, epoch, parts=[T0]) == {T0: E.INVALID_PRODUCER_ID_MAPPING}
    assert h.add(pid, epoch + 1, parts=[T0]) == {T0: E.PRODUCER_FENCED}
    assert h.add(pid, epoch - 1, parts=[T0]) == {T0: E.PRODUCER_FENCED}
    # An unknown partition fails the request; the others are not attempted and nothing changes.
    assert h.add(pid, epoch, parts=[T0, ("gone", 3)]) == {T0: E.OPERATION_NOT_ATTEMPTED,
                                                         ("gone", 3): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert h.txn().state == EMPTY and not h.txn().partitions
    h.add(pid, epoch, parts=[T0])
    for state in (PREPARE_COMMIT, PREPARE_ABORT):
        h.txn().state = state
        assert h.add(pid, epoch, parts=[T1]) == {T1: E.CONCURRENT_TRANSACTIONS}
        assert h.coord.add_offsets("tx", pid, epoch, "g") == E.CONCURRENT_TRANSACTIONS


def test_add_offsets_errors(h):
    pid, epoch = h.ready()
    assert h.coord.add_offsets("", pid, epoch, "g") == E.INVALID_REQUEST
    assert h.coord.add_offsets("unknown", pid, epoch, "g") == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.add_offsets("tx", pid + 1, epoch, "g") == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.add_offsets("tx", pid, epoch + 1, "g") == E.PRODUCER_FENCED
    assert h.coord.is_ongoing("unknown", pid, epoch) == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.is_ongoing("tx", pid + 1, epoch) == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.is_ongoing("tx", pid, epoch + 1) == E.PRODUCER_FENCED


# -- EndTxn ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [True, False])
def test_end_writes_markers_then_completes_offsets(h, commit):
    pid, epoch = h.ready()
    h.add(pid, epoch, parts=[U0, T1, T0])
    h.coord.add_offsets("tx", pid, epoch, "g")
    del h.states[:]
    assert h.coord.end_txn("tx", pid, epoch, commit).error_code == 0
    assert h.markers == [("t", 0, pid, epoch, commit), ("t", 1, pid, epoch, commit), ("u", 0, pid, epoch, commit)]
    assert h.offsets == [(pid, "g", commit)]
    done = COMPLETE_COMMIT if commit else COMPLETE_ABORT
    # Prepare is journaled before the first marker, Complete after the last.
    assert h.states == [("tx", PREPARE_COMMIT if commit else PREPARE_ABORT), ("tx", done)]
    t = h.txn()
    assert (t.state, t.partitions, t.groups, t.producer_epoch) == (done, set(), set(), epoch)

    # The next transaction starts afresh with the same epoch.
    assert h.add(pid, epoch, parts=[T1]) == {T1: 0}
    assert (h.txn().state, h.txn().partitions) == (ONGOING, {T1})


def test_end_retries_and_the_wrong_outcome(h):
    pid, epoch = h.ready()
    h.add(pid, epoch)
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == 0
    markers = list(h.markers)
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == 0  # a retried commit: done already, nothing written
    assert h.markers == markers
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == E.INVALID_TXN_STATE
    h.add(pid, epoch)
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == 0
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == 0
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.INVALID_TXN_STATE


def test_end_of_nothing_is_invalid_txn_state(h):
    pid, epoch = h.ready()
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.INVALID_TXN_STATE
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == E.INVALID_TXN_STATE
    assert h.markers == []


def test_end_during_prepare(h):
    pid, epoch = h.ready()
    h.add(pid, epoch)
    h.txn().state = PREPARE_COMMIT
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.CONCURRENT_TRANSACTIONS
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == E.INVALID_TXN_STATE
    h.txn().state = PREPARE_ABORT
    assert h.coord.end_txn("tx", pid, epoch, False).error_code == E.CONCURRENT_TRANSACTIONS
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.INVALID_TXN_STATE


def test_end_errors(h):
    pid, epoch = h.ready()
    h.add(pid, epoch)
    assert h.coord.end_txn("", pid, epoch, True).error_code == E.INVALID_REQUEST
    assert h.coord.end_txn("unknown", pid, epoch, True).error_code == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.end_txn("tx", pid + 1, epoch, True).error_code == E.INVALID_PRODUCER_ID_MAPPING
    assert h.coord.end_txn("tx", pid, epoch - 1, True).error_code == E.PRODUCER_FENCED
    assert h.coord.end_txn("tx", pid, epoch + 1, True).error_code == E.PRODUCER_FENCED  # strict equality from clients
    assert h.txn().state == ONGOING and h.markers == []


def test_a_partition_deleted_during_the_transaction_does_not_stop_the_commit(h):
    pid, epoch = h.ready()
    h.add(pid, epoch, parts=[T0, U0])
    h.partitions.discard(U0)  # topic u deleted
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == 0
    assert h.markers == [("t", 0, pid, epoch, True)]
    assert h.txn().state == COMPLETE_COMMIT


# -- timeouts ----------------------------------------------------------------------------------------------------


def test_a_transaction_open_longer_than_its_timeout_is_aborted_and_its_producer_fenced(h):
    pid, epoch = h.ready(timeout=10_000)
    h.add(pid, epoch)
    h.coord.add_offsets("tx", pid, epoch, "g")
    h.clock.advance(10_000)  # checks at every CHECK_MS; open exactly as long as its timeout: not yet
    assert h.txn().state == ONGOING and h.markers == []
    h.clock.advance(CHECK_MS)
    assert h.txn().state == COMPLETE_ABORT
    assert h.markers == [("t", 0, pid, epoch + 1, False), ("t", 1, pid, epoch + 1, False)]
    assert h.offsets == [(pid, "g", False)]
    # The producer finds out when it tries to go on.
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == E.PRODUCER_FENCED
    assert h.add(pid, epoch) == {T0: E.PRODUCER_FENCED, T1: E.PRODUCER_FENCED}
    assert h.init(pid=pid, epoch=epoch).error_code == E.PRODUCER_FENCED
    # A new producer starts over.
    r = h.init()
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 2)


def test_timeout_counts_from_the_start_of_the_transaction(h):
    pid, epoch = h.ready(timeout=10_000)
    h.add(pid, epoch, parts=[T0])
    h.clock.advance(6_000)
    h.add(pid, epoch, parts=[T1])  # adding more does not restart the clock
    h.clock.advance(5_000)
    assert h.txn().state == COMPLETE_ABORT


def test_only_ongoing_transactions_time_out(h):
    pid, epoch = h.ready(timeout=1_000)
    h.ready("other", timeout=1_000)
    h.add(pid, epoch)
    h.coord.end_txn("tx", pid, epoch, True)
    h.clock.advance(10 * CHECK_MS)
    assert h.txn().state == COMPLETE_COMMIT and h.txn("other").state == EMPTY
    assert h.coord.abort_timed_out() == 0


def test_abort_timed_out_directly_and_the_timer(h):
    pid, epoch = h.ready(timeout=1_000)
    h.add(pid, epoch)
    assert h.clock.pending() == 1  # the periodic check
    h.clock._now_ms += 1_001  # time passes without the timer running
    assert h.coord.abort_timed_out() == 1
    assert h.coord.abort_timed_out() == 0
    h.clock.advance(5 * CHECK_MS)
    assert h.clock.pending() == 1  # it keeps rescheduling itself
    h.coord.close()
    assert h.clock.pending() == 0


# -- the state log ---------------------------------------------------------------------------------------------


def test_a_change_the_state_log_cannot_make_durable_is_not_made(h):
    pid, epoch = h.ready()
    h.add(pid, epoch)
    append = h.journal.log.append

    def disk_full(record):
        raise OSError(28, "No space left on device")

    h.journal.log.append = disk_full
    with pytest.raises(OSError):
        h.coord.end_txn("tx", pid, epoch, True)
    assert h.markers == []  # PrepareCommit was never durable, so no marker went out
    assert h.txn().state == ONGOING and h.journal.state["tx"]["state"] == ONGOING
    with pytest.raises(OSError):
        h.init("other")
    assert h.txn("other") is None
    h.journal.log.append = append
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == 0
    assert h.txn().state == COMPLETE_COMMIT


# -- load(): restarts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [True, False])
def test_load_completes_a_prepare_left_by_a_crash(tmp_path, commit):
    path = tmp_path / "transactions.journal"
    h = Harness(journal=keyed_state(path, MAGIC))
    pid, epoch = h.ready()
    h.add(pid, epoch, parts=[T0, T1, U0])
    h.coord.add_offsets("tx", pid, epoch, "g")
    h.fail_marker_after = 1  # the broker dies after the first marker
    with pytest.raises(Crash):
        h.coord.end_txn("tx", pid, epoch, commit)
    assert h.markers == [("t", 0, pid, epoch, commit)]
    h.journal.close()

    again = Harness(journal=keyed_state(path, MAGIC), ids=Ids(2000))
    t = again.txn()
    # Every marker is (re)written, offsets completed, and the completion journaled.
    assert again.markers == [("t", 0, pid, epoch, commit), ("t", 1, pid, epoch, commit),
                             ("u", 0, pid, epoch, commit)]
    assert again.offsets == [(pid, "g", commit)]
    assert (t.state, t.producer_id, t.producer_epoch) == (COMPLETE_COMMIT if commit else COMPLETE_ABORT, pid, epoch)
    assert again.journal.state["tx"]["state"] == t.state
    # The producer goes on where it was: a retried EndTxn succeeds.
    assert again.coord.end_txn("tx", pid, epoch, commit).error_code == 0


def test_load_keeps_ongoing_and_complete_transactions_as_they_were(tmp_path):
    path = tmp_path / "transactions.journal"
    clock = ManualClock()
    h = Harness(journal=keyed_state(path, MAGIC), clock=clock)
    pid, epoch = h.ready(timeout=10_000)
    h.add(pid, epoch)
    done_pid, done_epoch = h.ready("done")
    h.add(done_pid, done_epoch, tid="done", parts=[U0])
    h.coord.end_txn("done", done_pid, done_epoch, True)
    h.coord.close()
    h.journal.close()

    again = Harness(journal=keyed_state(path, MAGIC), clock=clock, ids=Ids(2000))
    assert again.markers == []
    t = again.txn()
    assert (t.state, t.partitions, t.producer_id, t.producer_epoch) == (ONGOING, {T0, T1}, pid, epoch)
    assert again.txn("done").state == COMPLETE_COMMIT
    # The open transaction goes on after the restart: it can commit, or it times out from its original start.
    assert again.add(pid, epoch, parts=[U0]) == {U0: 0}
    clock.advance(10_000 + CHECK_MS)
    assert again.txn().state == COMPLETE_ABORT
    assert {m[:2] for m in again.markers} == {T0, T1, U0}


# -- describing --------------------------------------------------------------------------------------------------


def test_list_filters_by_state_producer_and_duration(h):
    pid, epoch = h.ready()
    h.ready("idle")
    h.add(pid, epoch)
    h.clock.advance(500)
    names = lambda txns: sorted(t.transactional_id for t in txns)  # noqa: E731
    assert names(h.coord.list(None, None)) == ["idle", "tx"]
    assert names(h.coord.list([ONGOING], None)) == ["tx"]
    assert names(h.coord.list(None, [pid])) == ["tx"]
    assert names(h.coord.list(None, None, duration_filter_ms=400)) == ["tx"]
    assert names(h.coord.list(None, None, duration_filter_ms=600)) == []


# -- transaction protocol v2 (KIP-890 part 2) ----------------------------------------------------------------
# Partitions come from a partition leader (AddPartitionsToTxn v4+: transaction version 2), the end from EndTxn v5.

TV2 = 2


def add_v2(h, pid, epoch, parts=(T0,), tid="tx"):
    return h.coord.add_partitions(tid, pid, epoch, list(parts), TV2)


def test_v2_every_end_bumps_the_epoch_and_the_markers_carry_the_bumped_one(h):
    pid, epoch = h.ready()
    assert add_v2(h, pid, epoch) == {T0: 0}
    assert h.txn().client_transaction_version == TV2
    r = h.coord.end_txn("tx", pid, epoch, True, TV2)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 1)
    assert h.markers == [("t", 0, pid, epoch + 1, True)]
    t = h.txn()
    assert (t.state, t.producer_id, t.producer_epoch) == (COMPLETE_COMMIT, pid, epoch + 1)
    # The next transaction runs at the bumped epoch; the old one is fenced from it.
    assert add_v2(h, pid, epoch) == {T0: E.PRODUCER_FENCED}
    assert add_v2(h, pid, epoch + 1, (T1,)) == {T1: 0}
    r = h.coord.end_txn("tx", pid, epoch + 1, False, TV2)
    assert (r.error_code, r.producer_epoch) == (0, epoch + 2)
    assert h.markers[-1] == ("t", 1, pid, epoch + 2, False)


def test_v2_a_retried_end_is_recognised_by_the_epoch_before_the_current_one(h):
    pid, epoch = h.ready()
    add_v2(h, pid, epoch)
    h.coord.end_txn("tx", pid, epoch, True, TV2)
    written = len(h.markers)
    # The retry of that commit (the producer never saw the answer) succeeds with the ids to use next.
    r = h.coord.end_txn("tx", pid, epoch, True, TV2)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 1)
    assert len(h.markers) == written  # nothing written again
    assert h.coord.end_txn("tx", pid, epoch, False, TV2).error_code == E.INVALID_TXN_STATE
    # In a complete state only a retry is valid: the current epoch is refused as Kafka does (a v2 client
    # sends no EndTxn for a transaction it added nothing to).
    assert h.coord.end_txn("tx", pid, epoch + 1, True, TV2).error_code == E.PRODUCER_FENCED
    # Older than the one before: fenced.
    assert h.coord.end_txn("tx", pid, epoch - 1, True, TV2).error_code == E.PRODUCER_FENCED


def test_v2_an_end_whose_markers_are_on_their_way_is_retried_with_concurrent_transactions(h):
    pid, epoch = h.ready()
    add_v2(h, pid, epoch)
    t = h.txn()
    t.state, t.producer_epoch = PREPARE_COMMIT, epoch + 1  # as _end leaves it while markers are pending
    assert h.coord.end_txn("tx", pid, epoch, True, TV2).error_code == E.CONCURRENT_TRANSACTIONS
    assert h.coord.end_txn("tx", pid, epoch, False, TV2).error_code == E.INVALID_TXN_STATE
    assert h.coord.end_txn("tx", pid, epoch + 1, True, TV2).error_code == E.PRODUCER_FENCED
    # The next transaction's first partition waits for the markers.
    assert add_v2(h, pid, epoch + 1) == {T0: E.CONCURRENT_TRANSACTIONS}


def test_v2_an_exhausted_epoch_moves_to_a_new_producer_id_once_the_markers_are_written(h):
    pid, _ = h.ready()
    h.txn().producer_epoch = MAX_EPOCH - 1
    add_v2(h, pid, MAX_EPOCH - 1)
    r = h.coord.end_txn("tx", pid, MAX_EPOCH - 1, True, TV2)
    new_pid = h.ids.next - 1
    assert new_pid != pid
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, new_pid, 0)
    assert h.markers == [("t", 0, pid, MAX_EPOCH, True)]  # the old id wrote the transaction
    t = h.txn()
    assert (t.producer_id, t.producer_epoch, t.prev_producer_id, t.next_producer_id) == (new_pid, 0, pid, -1)
    # A retry with the old id at the exhausted epoch is that end; the new id goes on.
    r = h.coord.end_txn("tx", pid, MAX_EPOCH - 1, True, TV2)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, new_pid, 0)
    assert add_v2(h, new_pid, 0) == {T0: 0}


def test_v1_ends_keep_the_epoch_and_the_strict_epoch_rule(h):
    pid, epoch = h.ready()
    assert h.add(pid, epoch) == {T0: 0, T1: 0}
    r = h.coord.end_txn("tx", pid, epoch, True)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch)
    assert {m[3] for m in h.markers} == {epoch}
    assert h.coord.end_txn("tx", pid, epoch, True).error_code == 0  # the retry, at the same epoch


def test_v2_fencing_by_a_new_producer_bumps_the_epoch_once(h):
    pid, epoch = h.ready()
    add_v2(h, pid, epoch)
    assert h.init().error_code == E.CONCURRENT_TRANSACTIONS  # the ongoing transaction is aborted first
    assert h.markers == [("t", 0, pid, epoch + 1, False)]
    r = h.init()
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 2)
    assert add_v2(h, pid, epoch) == {T0: E.PRODUCER_FENCED}
    assert h.coord.end_txn("tx", pid, epoch, True, TV2).error_code == E.PRODUCER_FENCED


def test_v2_state_survives_a_restart(tmp_path):
    path = tmp_path / "txn.journal"
    h = Harness(journal=keyed_state(path, MAGIC))
    pid, _ = h.ready()
    h.txn().producer_epoch = MAX_EPOCH - 1
    add_v2(h, pid, MAX_EPOCH - 1)
    h.fail_marker_after = 0
    with pytest.raises(Crash):
        h.coord.end_txn("tx", pid, MAX_EPOCH - 1, False, TV2)
    again = Harness(journal=keyed_state(path, MAGIC), ids=Ids(2000))  # loads the PrepareAbort and completes it
    t = again.txn()
    assert again.markers == [("t", 0, pid, MAX_EPOCH, False)]
    assert (t.state, t.producer_id, t.producer_epoch, t.client_transaction_version) == (COMPLETE_ABORT, 1001, 0, TV2)
