"""The rules every controller applies (controller.py's pure functions, shared by the in-process and the
PostgreSQL controllers): who leads when a leader is gone, what new partitions start as."""

from __future__ import annotations

import itertools

import pytest

from kbroker.controller import (NO_LEADER, PartitionRegistration, leader_and_isr_for_live, leader_and_isr_without,
                                new_partitions, topic_placement)
from kbroker.errors import ErrorCode, KafkaError


def _p(replicas, isr, leader, le=3, pe=7):
    return PartitionRegistration(replicas, isr, leader, le, pe)


def test_with_every_isr_member_alive_nothing_changes():
    assert leader_and_isr_for_live(_p([1, 2, 3], [1, 2, 3], 1), {1, 2, 3}) == (1, [1, 2, 3])


def test_the_first_live_in_sync_replica_in_assignment_order_takes_over():
    # Kafka's offline-partition election: assignment order (replicas), not ISR order; the dead leader leaves
    assert leader_and_isr_for_live(_p([1, 2, 3], [1, 3, 2], 1), {2, 3}) == (2, [3, 2])


def test_a_dead_follower_leaves_the_isr_and_the_leader_stays():
    # what PostgreSQL's controller once left alone: acks=all then waited for replica.lag.time.max.ms
    assert leader_and_isr_for_live(_p([1, 2, 3], [1, 2, 3], 1), {1, 2}) == (1, [1, 2])
    assert leader_and_isr_for_live(_p([1, 2, 3], [1, 2, 3], 2), {2}) == (2, [2])


def test_with_no_live_in_sync_replica_the_partition_waits_with_its_last_member():
    assert leader_and_isr_for_live(_p([1, 2], [1], 1), {2}) == (NO_LEADER, [1])
    assert leader_and_isr_for_live(_p([1, 2], [1], NO_LEADER), {2}) == (NO_LEADER, [1])  # already offline
    # all of them gone at once: the ISR keeps one (the last to leave, in ISR order), never none
    assert leader_and_isr_for_live(_p([1, 2, 3], [1, 2, 3], 1), set()) == (NO_LEADER, [3])


def test_an_offline_partition_leads_again_once_its_in_sync_replica_is_back():
    assert leader_and_isr_for_live(_p([1, 2], [1], NO_LEADER), {1, 2}) == (1, [1])
    assert leader_and_isr_for_live(_p([1, 2, 3], [2, 3], NO_LEADER), {1, 3}) == (3, [3])


def test_unclean_election_lets_a_replica_outside_the_isr_lead():
    assert leader_and_isr_for_live(_p([1, 2], [1], 1), {2}, unclean=True) == (2, [2])
    assert leader_and_isr_for_live(_p([1, 2], [1], NO_LEADER), {2}, unclean=True) == (2, [2])
    assert leader_and_isr_for_live(_p([1, 2], [1], 1), {3}, unclean=True) == (NO_LEADER, [1])  # none alive


def test_the_same_as_removing_the_dead_brokers_one_by_one():
    """The rule from the live set (PostgreSQL's controller) agrees with the in-process controller's
    broker-by-broker ``leader_and_isr_without`` on every partition of three replicas."""
    for replicas in itertools.permutations([1, 2, 3]):
        for n in (1, 2, 3):
            for isr in itertools.permutations(replicas, n):
                for leader in isr:
                    for dead in itertools.chain.from_iterable(
                            itertools.combinations(isr, k) for k in range(len(isr) + 1)):
                        p, live = _p(list(replicas), list(isr), leader), {1, 2, 3} - set(dead)
                        step = p
                        for node in dead:
                            step = _p(step.replicas, *reversed(leader_and_isr_without(
                                step, node, live - {node} - set(dead))))
                        assert leader_and_isr_for_live(p, live) == (step.leader, step.isr), (p, dead)


def test_new_partitions_are_led_by_their_first_live_replica():
    got = new_partitions([[1, 2], [2, 1], [3]], {2, 3})
    assert [(p.leader, p.isr, p.leader_epoch, p.partition_epoch) for p in got] == [
        (2, [2], 0, 0), (2, [2], 0, 0), (3, [3], 0, 0)]
    assert new_partitions([[4]], {1})[0].leader == NO_LEADER and new_partitions([[4]], {1})[0].isr == [4]


@pytest.mark.parametrize("partitions, rf, assignments, code", [
    (0, 1, None, ErrorCode.INVALID_PARTITIONS),
    (1, 0, None, ErrorCode.INVALID_REPLICATION_FACTOR),
    (1, 4, None, ErrorCode.INVALID_REPLICATION_FACTOR),  # more than the live brokers
    (1, 1, [[1, 1]], ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # a broker twice
    (1, 1, [[9]], ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # an unknown broker
])
def test_placement_refuses_what_kafka_refuses(partitions, rf, assignments, code):
    with pytest.raises(KafkaError) as e:
        topic_placement(partitions, rf, assignments, known={1, 2, 3}, live=[1, 2, 3])
    assert e.value.code == code


def test_placement_stripes_over_the_live_brokers():
    placed = topic_placement(6, 1, None, known={1, 2, 3, 4}, live=[1, 2, 3])
    assert sorted(r[0] for r in placed) == [1, 1, 2, 2, 3, 3]
