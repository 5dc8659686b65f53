"""The consumer group protocol's server-side assignors and a member's reconciliation (KIP-848), as pure functions:
balance, stickiness and co-partitioning of `uniform` and `range`; the revoke-before-assign state machine of
Kafka's CurrentAssignmentBuilder."""

import uuid

from kbroker.coordinator.assignors import MemberSpec, range_assign, uniform_assign
from kbroker.coordinator.current_assignment_builder import MemberAssignment, MemberState, reconcile

A = uuid.UUID(int=1)
B = uuid.UUID(int=2)


def spec(*topics, current=None, instance=None):
    return MemberSpec(frozenset(topics), current or {}, instance)


def counts(result):
    return {m: sum(len(ps) for ps in a.values()) for m, a in result.items()}


def every_partition_once(result, partitions):
    owned = [(t, p) for a in result.values() for t, ps in a.items() for p in ps]
    assert sorted(owned, key=str) == sorted(((t, p) for t, n in partitions.items() for p in range(n)), key=str)


# -- uniform ----------------------------------------------------------------------------------------------------------

def test_uniform_three_members_six_partitions_get_two_each():
    result = uniform_assign({"m1": spec(A), "m2": spec(A), "m3": spec(A)}, {A: 6})
    assert counts(result) == {"m1": 2, "m2": 2, "m3": 2}
    every_partition_once(result, {A: 6})


def test_uniform_is_sticky_when_a_member_joins():
    before = uniform_assign({"m1": spec(A), "m2": spec(A)}, {A: 6})
    after = uniform_assign({"m1": spec(A, current=before["m1"]), "m2": spec(A, current=before["m2"]),
                            "m3": spec(A)}, {A: 6})
    assert counts(after) == {"m1": 2, "m2": 2, "m3": 2}
    # Only the partitions the newcomer needs move: each old member keeps two of its three.
    assert after["m1"][A] <= before["m1"][A] and after["m2"][A] <= before["m2"][A]


def test_uniform_member_leaving_spreads_only_its_partitions():
    before = uniform_assign({"m1": spec(A), "m2": spec(A), "m3": spec(A)}, {A: 6})
    after = uniform_assign({"m1": spec(A, current=before["m1"]), "m2": spec(A, current=before["m2"])}, {A: 6})
    assert counts(after) == {"m1": 3, "m2": 3}
    assert before["m1"][A] <= after["m1"][A] and before["m2"][A] <= after["m2"][A]


def test_uniform_heterogeneous_subscriptions_assign_only_subscribed_topics_and_balance():
    result = uniform_assign({"m1": spec(A), "m2": spec(A, B), "m3": spec(B)}, {A: 4, B: 2})
    every_partition_once(result, {A: 4, B: 2})
    assert B not in result["m1"] and A not in result["m3"]
    assert counts(result) == {"m1": 2, "m2": 2, "m3": 2}


def test_uniform_drops_partitions_of_topics_that_shrank_or_are_unsubscribed():
    result = uniform_assign({"m1": spec(A, current={A: frozenset({0, 5}), B: frozenset({0})})}, {A: 2})
    assert result == {"m1": {A: frozenset({0, 1})}}


# -- range ------------------------------------------------------------------------------------------------------------

def test_range_gives_contiguous_ranges_and_co_partitions():
    result = range_assign({"m1": spec(A, B), "m2": spec(A, B)}, {A: 5, B: 5})
    assert result["m1"] == {A: frozenset({0, 1, 2}), B: frozenset({0, 1, 2})}
    assert result["m2"] == {A: frozenset({3, 4}), B: frozenset({3, 4})}


def test_range_keeps_partitions_within_the_share():
    result = range_assign({"m1": spec(A, current={A: frozenset({2, 3})}), "m2": spec(A)}, {A: 4})
    assert result["m1"] == {A: frozenset({2, 3})}
    assert result["m2"] == {A: frozenset({0, 1})}


# -- reconciliation ---------------------------------------------------------------------------------------------------

def member(epoch, assigned, pending=None, state=MemberState.STABLE):
    return MemberAssignment(state, epoch, epoch - 1, {t: frozenset(ps) for t, ps in assigned.items()},
                            {t: frozenset(ps) for t, ps in (pending or {}).items()})


def free(_t, _p):
    return -1


def test_a_new_member_gets_free_partitions_at_the_target_epoch():
    m = reconcile(member(0, {}), 3, {A: frozenset({0, 1})}, free, {})
    assert (m.state, m.member_epoch, m.assigned) == (MemberState.STABLE, 3, {A: frozenset({0, 1})})


def test_partitions_held_by_another_member_are_not_given_until_released():
    held = {(A, 1): 2}
    m = reconcile(member(0, {}), 3, {A: frozenset({0, 1})}, lambda t, p: held.get((t, p), -1), {})
    assert (m.state, m.member_epoch, m.assigned) == (MemberState.UNRELEASED_PARTITIONS, 3, {A: frozenset({0})})
    # Once the other member lets go, the next heartbeat hands it over.
    m = reconcile(m, 3, {A: frozenset({0, 1})}, free, {A: frozenset({0})})
    assert (m.state, m.assigned) == (MemberState.STABLE, {A: frozenset({0, 1})})


def test_revocation_comes_first_and_the_member_stays_at_its_epoch():
    m = reconcile(member(2, {A: {0, 1, 2}}), 3, {A: frozenset({0, 1, 3})}, free, {A: frozenset({0, 1, 2})})
    assert m.state is MemberState.UNREVOKED_PARTITIONS
    assert m.member_epoch == 2
    assert m.assigned == {A: frozenset({0, 1})} and m.pending_revocation == {A: frozenset({2})}
    # Still owning partition 2: nothing moves.
    assert reconcile(m, 3, {A: frozenset({0, 1, 3})}, free, {A: frozenset({0, 1, 2})}) == m
    # Without saying what it owns, it is assumed to still own it.
    assert reconcile(m, 3, {A: frozenset({0, 1, 3})}, free, None) == m
    # Revoked: it moves to the target epoch and gets the new partition.
    done = reconcile(m, 3, {A: frozenset({0, 1, 3})}, free, {A: frozenset({0, 1})})
    assert (done.state, done.member_epoch, done.assigned, done.pending_revocation) == (
        MemberState.STABLE, 3, {A: frozenset({0, 1, 3})}, {})


def test_a_member_that_owns_none_of_the_revoked_partitions_moves_on_at_once():
    m = reconcile(member(2, {A: {0, 1}}), 3, {A: frozenset({0})}, free, {A: frozenset({0})})
    assert (m.state, m.member_epoch, m.assigned) == (MemberState.STABLE, 3, {A: frozenset({0})})


def test_a_stable_member_at_the_target_epoch_is_left_alone():
    m = member(3, {A: {0}})
    assert reconcile(m, 3, {A: frozenset({0, 1})}, free, {A: frozenset({0})}) is m
