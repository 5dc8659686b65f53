"""The controller's rules for ElectLeaders, reassignments and the automatic leader rebalance, without sockets
(controller.py's pure functions, as Kafka's PartitionChangeBuilder and ReplicationControlManager have them),
and the in-process controller applying them: persisted in the topic store, completed by an ISR change."""

from __future__ import annotations

import pytest

from kbroker.controller import (NO_LEADER, PREFERRED_ELECTION, UNCLEAN_ELECTION, BrokerRegistration,
                                InProcessController, MetadataListener, PartitionRegistration, TopicRegistration,
                                elect, imbalanced_partitions, partition_change, reassign, run_now)
from kbroker.errors import ErrorCode, KafkaError
from kbroker.topic_store import MemoryTopicStore

ALL = {1, 2, 3, 4}


def _code(fn, *args, **kwargs) -> int:
    with pytest.raises(KafkaError) as e:
        fn(*args, **kwargs)
    return e.value.code


# -- ElectLeaders ----------------------------------------------------------------------------------------

def test_a_preferred_election_moves_leadership_to_the_first_replica():
    p = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=2)
    assert elect(p, PREFERRED_ELECTION, {1, 2, 3}) == (1, [1, 2, 3])
    assert _code(elect, PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1), PREFERRED_ELECTION, ALL) == \
        ErrorCode.ELECTION_NOT_NEEDED
    # The preferred replica down or out of sync, the current leader fine: nothing moves.
    assert _code(elect, p, PREFERRED_ELECTION, {2, 3}) == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert _code(elect, PartitionRegistration([1, 2, 3], [2, 3], leader=2), PREFERRED_ELECTION, ALL) == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    # No leader at all: the first live ISR member, as Kafka's builder does for PREFERRED.
    assert elect(PartitionRegistration([1, 2, 3], [2, 3], leader=NO_LEADER), PREFERRED_ELECTION, {3}) == (3, [2, 3])
    assert _code(elect, PartitionRegistration([1, 2], [2], leader=NO_LEADER), PREFERRED_ELECTION, {1}) == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


def test_an_unclean_election_only_for_a_partition_without_a_leader():
    assert _code(elect, PartitionRegistration([1, 2], [1, 2], leader=1), UNCLEAN_ELECTION, ALL) == \
        ErrorCode.ELECTION_NOT_NEEDED
    offline = PartitionRegistration([1, 2, 3], [1], leader=NO_LEADER)
    assert elect(offline, UNCLEAN_ELECTION, {2, 3}) == (2, [2])  # out of sync: it becomes the whole ISR
    assert elect(offline, UNCLEAN_ELECTION, {1, 3}) == (1, [1])  # an ISR member first
    assert _code(elect, offline, UNCLEAN_ELECTION, set()) == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    assert _code(elect, offline, 7, ALL) == ErrorCode.INVALID_REQUEST


# -- reassignments -----------------------------------------------------------------------------------------

def test_a_reassignment_adds_then_removes_and_moves_the_leader():
    p = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1, leader_epoch=4, partition_epoch=9)
    started = reassign(p, [2, 3, 4], ALL, ALL)
    assert (started.replicas, started.isr, started.adding, started.removing, started.leader) == \
        ([2, 3, 4, 1], [1, 2, 3], [4], [1], 1)
    assert (started.leader_epoch, started.partition_epoch) == (4, 10)  # nothing left the replicas yet
    # Broker 4 caught up: the leader lets it into the ISR, and the reassignment completes in that change.
    done = partition_change(started, ALL, 1, [1, 2, 3, 4])
    assert (done.replicas, done.isr, done.adding, done.removing, done.leader) == ([2, 3, 4], [2, 3, 4], [], [], 2)
    assert (done.leader_epoch, done.partition_epoch) == (5, 11)


def test_a_reassignment_the_isr_already_covers_completes_at_once():
    p = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1)
    reordered = reassign(p, [3, 2, 1], ALL, ALL)
    assert (reordered.replicas, reordered.leader, reordered.reassigning) == ([3, 2, 1], 1, False)
    shrunk = reassign(p, [2, 3], ALL, ALL)
    assert (shrunk.replicas, shrunk.isr, shrunk.leader, shrunk.leader_epoch) == ([2, 3], [2, 3], 2, 1)


def test_cancelling_drops_the_adding_replicas():
    started = reassign(PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1), [2, 3, 4], ALL, ALL)
    back = reassign(started, None, ALL, ALL)
    assert (back.replicas, back.isr, back.adding, back.removing, back.leader) == ([2, 3, 1], [1, 2, 3], [], [], 1)
    assert _code(reassign, back, None, ALL, ALL) == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
    # Only adding replicas in sync: going back would be an unclean election.
    odd = PartitionRegistration([4, 1], [4], leader=4, adding=[4], removing=[1])
    assert _code(reassign, odd, None, ALL, ALL) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert reassign(odd, None, ALL, ALL, unclean=True).isr == [1]


def test_reassignment_targets_are_checked():
    p = PartitionRegistration([1, 2, 3], [1, 2, 3], leader=1)
    for target in ([], [1, 1, 2], [1, 2, 9]):
        assert _code(reassign, p, target, ALL, ALL) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert _code(reassign, p, [1, 2], ALL, ALL, allow_replication_factor_change=False) == \
        ErrorCode.INVALID_REPLICATION_FACTOR
    assert reassign(p, [2, 3, 4], ALL, ALL, allow_replication_factor_change=False).adding == [4]


# -- the automatic rebalance -------------------------------------------------------------------------------

def test_imbalance_is_per_preferred_broker_over_the_percentage():
    def topic(leaders):
        return TopicRegistration("t", None, {}, [PartitionRegistration(r, [1, 2, 3], leader=l)
                                                 for r, l in zip(([1, 2, 3], [1, 3, 2], [2, 3, 1], [3, 1, 2]), leaders)])
    assert imbalanced_partitions([topic([1, 1, 2, 3])], {1, 2, 3}, 10) == []
    assert imbalanced_partitions([topic([2, 1, 2, 3])], {1, 2, 3}, 10) == [("t", 0)]  # broker 1: 1 of 2
    assert imbalanced_partitions([topic([2, 1, 2, 3])], {1, 2, 3}, 50) == []  # 50% is not over 50%
    assert imbalanced_partitions([topic([2, 3, 2, 3])], {2, 3}, 10) == []  # broker 1 is down


# -- the in-process controller -------------------------------------------------------------------------------

def test_the_in_process_controller_reassigns_and_persists():
    store = MemoryTopicStore()
    c = InProcessController(store)
    for n in (1, 2, 3, 4):
        run_now(c.register_broker(BrokerRegistration(n, {"PLAINTEXT": ("h", n)}), MetadataListener()))
    run_now(c.create_topic("t", 1, 3, [[1, 2, 3]], {}))
    [(name, [(index, code, _msg)])] = run_now(c.alter_reassignments([("t", [(0, [2, 3, 4])])]))
    assert (name, index, code) == ("t", 0, 0)
    assert c.reassignments(None)[0][1][0][1].adding == [4]
    assert InProcessController(store).topic("t").partitions[0].removing == [1]  # the topic store has it
    p = c.topic("t").partitions[0]
    run_now(c.alter_partition("t", 0, p.leader_epoch, p.partition_epoch, p.leader, [1, 2, 3, 4]))  # 4 caught up
    p = c.topic("t").partitions[0]
    assert (p.replicas, p.isr, p.leader, c.reassignments(None)) == ([2, 3, 4], [2, 3, 4], 2, [])
    assert run_now(c.elect_leaders(PREFERRED_ELECTION, None)) == [("t", [])]
    assert run_now(c.elect_leaders(PREFERRED_ELECTION, [("t", [0, 5]), ("u", [0])])) == [
        ("t", [(0, ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."),
               (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such partition as t-5")]),
        ("u", [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such topic as u")])]
