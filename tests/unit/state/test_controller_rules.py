"""The rules every controller applies (controller.py's pure functions, shared by the in-process and the
PostgreSQL controllers): who leads when a leader is gone, what new partitions start as."""

from __future__ import annotations

import pytest

from kbroker.controller import NO_LEADER, PartitionRegistration, elect_leader, new_partitions, topic_placement
from kbroker.errors import ErrorCode, KafkaError


def _p(replicas, isr, leader, le=3, pe=7):
    return PartitionRegistration(replicas, isr, leader, le, pe)


def test_a_live_leader_is_kept():
    assert elect_leader(_p([1, 2, 3], [1, 2, 3], 1), {1, 2, 3}) is None


def test_the_first_live_in_sync_replica_takes_over_and_the_isr_keeps_the_live_ones():
    assert elect_leader(_p([1, 2, 3], [1, 3, 2], 1), {2, 3}) == (3, [3, 2])


def test_with_no_live_in_sync_replica_the_partition_waits_with_its_isr():
    assert elect_leader(_p([1, 2], [1], 1), {2}) == (NO_LEADER, [1])
    assert elect_leader(_p([1, 2], [1], NO_LEADER), {2}) is None  # already offline: nothing changes


def test_unclean_election_lets_a_replica_outside_the_isr_lead():
    assert elect_leader(_p([1, 2], [1], 1), {2}, unclean=True) == (2, [2])
    assert elect_leader(_p([1, 2], [1], 1), {3}, unclean=True) == (NO_LEADER, [1])  # no replica alive


def test_a_returning_in_sync_replica_is_elected():
    assert elect_leader(_p([1], [1], NO_LEADER), {1}) == (1, [1])


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
