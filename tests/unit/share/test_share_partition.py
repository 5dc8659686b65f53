"""The share-partition state machine on a manual clock: acquisition, locks, acknowledgements, the delivery
limit, the window's limit, the acquire modes and a restart from the written state (KIP-932, KIP-1206,
KIP-1222; Kafka's SharePartitionTest covers the same rules)."""

import uuid

from kbroker.clock import ManualClock
from kbroker.errors import ErrorCode
from kbroker.share.share_partition import (
    ACK_ACCEPT, ACK_GAP, ACK_REJECT, ACK_RELEASE, ACK_RENEW, ACKNOWLEDGED, ACQUIRED, ARCHIVED, AVAILABLE,
    RECORD_LIMIT, FetchedBatch, SharePartition,
)

TOPIC = uuid.uuid4()


def make(clock=None, **kw):
    changes = []
    sp = SharePartition(clock or ManualClock(), "g", TOPIC, 0, on_change=lambda p: changes.append(p.snapshot()),
                        **kw)
    return sp, changes


def batches(*ranges):
    return [FetchedBatch(a, b) for a, b in ranges]


def test_records_are_acquired_once_while_the_lock_holds():
    sp, _ = make()
    assert sp.acquire("m1", batches((0, 4)), 500) == [(0, 4, 1)]
    assert sp.acquire("m2", batches((0, 4)), 500) == []
    assert sp.state_of(3) == (ACQUIRED, 1)
    assert sp.fetch_offset() == 5


def test_an_expired_lock_makes_records_available_with_their_delivery_count():
    clock = ManualClock()
    sp, changes = make(clock, record_lock_duration_ms=1000)
    sp.acquire("m1", batches((0, 2)), 500)
    clock.advance(999)
    assert sp.state_of(0) == (ACQUIRED, 1)
    clock.advance(1)
    assert sp.state_of(0) == (AVAILABLE, 1)
    assert changes, "an expiry is written"
    assert sp.acquire("m2", batches((0, 2)), 500) == [(0, 2, 2)]


def test_accept_moves_the_start_offset_and_release_redelivers():
    sp, changes = make()
    sp.acquire("m1", batches((0, 9)), 500)
    assert sp.acknowledge("m1", [(0, 3, [ACK_ACCEPT]), (4, 4, [ACK_RELEASE])]) == (ErrorCode.NONE, None)
    assert sp.start_offset == 4
    assert sp.state_of(4) == (AVAILABLE, 1)
    assert changes[-1]["start_offset"] == 4
    assert sp.acquire("m2", batches((0, 9)), 500) == [(4, 4, 2)]


def test_reject_archives_and_is_never_delivered_again():
    clock = ManualClock()
    sp, _ = make(clock, record_lock_duration_ms=100)
    sp.acquire("m1", batches((0, 2)), 500)
    sp.acknowledge("m1", [(0, 2, [ACK_ACCEPT, ACK_REJECT, ACK_RELEASE])])
    assert sp.start_offset == 2 and sp.state_of(1) is None  # accepted and rejected: the window moved on
    clock.advance(1000)
    assert sp.acquire("m1", batches((0, 2)), 500) == [(2, 2, 2)]


def test_acknowledging_what_is_not_held_is_invalid_record_state_and_changes_nothing():
    sp, changes = make()
    sp.acquire("m1", batches((0, 4)), 500)
    code, _ = sp.acknowledge("m2", [(0, 0, [ACK_ACCEPT])])
    assert code == ErrorCode.INVALID_RECORD_STATE
    code, _ = sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT]), (4, 5, [ACK_ACCEPT])])  # 5 is not in flight
    assert code == ErrorCode.INVALID_RECORD_STATE
    code, _ = sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT]), (7, 7, [ACK_ACCEPT])])  # past what is acquired
    assert code == ErrorCode.INVALID_REQUEST
    assert sp.state_of(0) == (ACQUIRED, 1) and sp.start_offset == 0 and not changes
    sp.acknowledge("m1", [(2, 2, [ACK_ACCEPT])])
    code, message = sp.acknowledge("m1", [(1, 1, [ACK_ACCEPT]), (2, 2, [ACK_ACCEPT])])  # 2 is done already
    assert code == ErrorCode.INVALID_RECORD_STATE
    assert sp.state_of(1) == (ACQUIRED, 1)
    assert sp.acknowledge("m1", [(9, 9, [ACK_ACCEPT])]) == (
        ErrorCode.INVALID_REQUEST, "Batch record not found. The first offset in request is past acquired records.")
    empty, _ = make()
    assert empty.acknowledge("m1", [(0, 0, [ACK_ACCEPT])]) == (
        ErrorCode.INVALID_RECORD_STATE, "Batch record not found. The request batch offsets are not found in the cache.")


def test_offsets_before_the_start_are_finished_and_skipped_as_kafka_does():
    sp, changes = make()
    sp.acquire("m1", batches((0, 3)), 500)
    sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT])])
    assert sp.start_offset == 2
    # 0 and 1 again (and a range reaching into the window): what is before the start is skipped.
    assert sp.acknowledge("m1", [(0, 0, [ACK_REJECT]), (1, 2, [ACK_ACCEPT])]) == (ErrorCode.NONE, None)
    assert sp.start_offset == 3 and sp.state_of(3) == (ACQUIRED, 1)


def test_the_delivery_count_limit_archives_a_record_that_keeps_coming_back():
    clock = ManualClock()
    sp, _ = make(clock, record_lock_duration_ms=100, delivery_count_limit=3)
    for delivery in (1, 2):
        assert sp.acquire("m1", batches((0, 0)), 500) == [(0, 0, delivery)]
        sp.acknowledge("m1", [(0, 0, [ACK_RELEASE])])
    assert sp.acquire("m1", batches((0, 0)), 500) == [(0, 0, 3)]
    clock.advance(100)  # the third lock expires: the limit is reached
    assert sp.state_of(0) is None and sp.start_offset == 1
    assert sp.acquire("m1", batches((0, 0)), 500) == []


def test_renew_gives_the_lock_a_new_duration_without_a_new_delivery():
    clock = ManualClock()
    sp, _ = make(clock, record_lock_duration_ms=1000)
    sp.acquire("m1", batches((0, 1)), 500)
    clock.advance(800)
    assert sp.acknowledge("m1", [(0, 0, [ACK_RENEW])]) == (ErrorCode.NONE, None)
    clock.advance(400)  # 1200 ms after the acquisition: offset 1's lock ran out, offset 0's was renewed
    assert sp.state_of(0) == (ACQUIRED, 1)
    assert sp.state_of(1) == (AVAILABLE, 1)
    clock.advance(600)
    assert sp.state_of(0) == (AVAILABLE, 1)


def test_record_limit_acquires_exactly_max_records_and_batch_optimized_finishes_the_batch():
    sp, _ = make()
    assert sp.acquire("m1", batches((0, 9), (10, 19)), 3, mode=RECORD_LIMIT) == [(0, 2, 1)]
    assert sp.acquire("m1", batches((0, 9), (10, 19)), 3) == [(3, 9, 1)]
    assert sp.acquire("m2", batches((0, 9), (10, 19)), 3) == [(10, 19, 1)]


def test_batch_size_splits_the_acquired_runs():
    sp, _ = make()
    assert sp.acquire("m1", batches((0, 9)), 500, batch_size=4) == [(0, 3, 1), (4, 7, 1), (8, 9, 1)]


def test_max_record_locks_bounds_the_window():
    sp, _ = make(max_record_locks=5)
    assert sp.acquire("m1", batches((0, 9)), 500, mode=RECORD_LIMIT) == [(0, 4, 1)]
    assert not sp.can_acquire()
    assert sp.acquire("m2", batches((5, 9)), 500) == []
    sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT])])
    assert sp.acquire("m2", batches((5, 9)), 500, mode=RECORD_LIMIT) == [(5, 6, 1)]


def test_control_batches_aborted_records_and_gaps_are_archived_not_acquired():
    sp, _ = make()
    got = sp.acquire("m1", [FetchedBatch(0, 1), FetchedBatch(2, 2, skip=True), FetchedBatch(5, 6)], 500)
    assert got == [(0, 1, 1), (5, 6, 1)]
    assert sp.state_of(2) == (ARCHIVED, 0) and sp.state_of(3) == (ARCHIVED, 0)
    sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT])])
    assert sp.start_offset == 5


def test_gap_acknowledgements_archive():
    sp, _ = make()
    sp.acquire("m1", batches((0, 3)), 500)
    sp.acknowledge("m1", [(0, 3, [ACK_ACCEPT, ACK_GAP, ACK_ACCEPT, ACK_ACCEPT])])
    assert sp.start_offset == 4


def test_a_member_leaving_releases_what_it_holds():
    sp, _ = make()
    sp.acquire("m1", batches((0, 2)), 500)
    sp.acquire("m2", batches((3, 4)), 500)
    assert sp.release_member("m1") == 3
    assert sp.state_of(0) == (AVAILABLE, 1) and sp.state_of(3) == (ACQUIRED, 1)


def test_a_restart_from_the_snapshot_keeps_acknowledged_records_and_frees_the_acquired():
    clock = ManualClock()
    sp, changes = make(clock)
    sp.acquire("m1", batches((0, 9)), 500)
    sp.acknowledge("m1", [(0, 1, [ACK_ACCEPT]), (3, 3, [ACK_ACCEPT]), (5, 5, [ACK_REJECT])])
    snap = changes[-1]
    assert snap["start_offset"] == 2
    restarted, _ = make(ManualClock())
    restarted.restore(snap["start_offset"], snap["state_batches"])
    assert restarted.state_of(2) == (AVAILABLE, 1)
    assert restarted.state_of(3) == (ACKNOWLEDGED, 1)
    assert restarted.state_of(5) == (ARCHIVED, 1)
    got = restarted.acquire("m2", batches((0, 9), (10, 11)), 500)
    assert got == [(2, 2, 2), (4, 4, 2), (6, 9, 2), (10, 11, 1)]


def test_moving_the_start_forgets_what_was_before():
    sp, _ = make()
    sp.acquire("m1", batches((0, 9)), 500)
    sp.move_start(6)
    assert sp.start_offset == 6 and sp.state_of(5) is None and sp.state_of(6) == (ACQUIRED, 1)
    sp.move_start(20)
    assert sp.start_offset == 20 and sp.next_offset == 20
    assert sp.acquire("m1", batches((18, 22)), 500) == [(20, 22, 1)]


def test_share_state_records_round_trip_in_kafkas_format():
    from kbroker.share import state_records as SR

    key = SR.share_key(SR.SHARE_SNAPSHOT, "g", TOPIC, 7)
    assert SR.decode_share_key(key) == (SR.SHARE_SNAPSHOT, "g", TOPIC, 7)
    state = SR.ShareState(10, 1, 2, 3, [(10, 12, 0, 1), (13, 13, 2, 1)], 100, 200)
    assert SR.decode_share_value(SR.SHARE_SNAPSHOT, SR.snapshot_value(state)) == state
    update = SR.ShareState(11, -1, 2, 3, [(12, 14, 4, 2)])
    merged = SR.merge_update(state, update)
    assert merged.start_offset == 11 and merged.state_batches == [(11, 11, 0, 1), (12, 14, 4, 2)]


def test_staged_acknowledgements_apply_only_once_written_and_roll_back_otherwise():
    clock = ManualClock()
    sp, changes = make(clock, record_lock_duration_ms=1000)
    sp.acquire("m1", batches((0, 2)), 500)
    code, _, t = sp.stage("m1", [(0, 2, [ACK_ACCEPT, ACK_RELEASE, ACK_REJECT])])
    assert code == ErrorCode.NONE and t.changes == [(0, ACKNOWLEDGED), (1, AVAILABLE), (2, ARCHIVED)]
    assert [sp.state_of(o) for o in range(3)] == [(ACQUIRED, 1)] * 3  # nothing applied before the write
    assert sp.snapshot([t]) == {"start_offset": 1, "state_epoch": 0, "leader_epoch": 0,
                                "state_batches": [(1, 1, AVAILABLE, 1), (2, 2, ARCHIVED, 1)]}  # what is written
    assert sp.stage("m1", [(0, 0, [ACK_ACCEPT])])[0] == ErrorCode.INVALID_RECORD_STATE  # in transition
    clock.advance(1000)  # the lock runs out while the write is out: the records wait for its outcome
    assert sp.state_of(0) == (ACQUIRED, 1) and not changes
    sp.complete([t], False)  # the write failed: rolled back, and the expired lock releases them now
    assert [sp.state_of(o) for o in range(3)] == [(AVAILABLE, 1)] * 3 and sp.start_offset == 0 and changes


def test_a_written_transition_applies_its_states_and_moves_the_start():
    sp, changes = make()
    sp.acquire("m1", batches((0, 2)), 500)
    _, _, t = sp.stage("m1", [(0, 1, [ACK_ACCEPT]), (2, 2, [ACK_RELEASE])])
    sp.complete([t], True)
    assert sp.start_offset == 2 and sp.state_of(2) == (AVAILABLE, 1)
    assert sp.acquire("m2", batches((2, 2)), 500) == [(2, 2, 2)]
    assert not changes  # what the write said is the state: nothing more to write
