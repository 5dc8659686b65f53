"""KIP-392's replica selection (replica_selector.py), as Kafka's RackAwareReplicaSelector and
ReplicaManager.findPreferredReadReplica choose."""

from __future__ import annotations

import pytest

from kbroker.replica_selector import (RACK_AWARE, ReplicaView, parse_selector, preferred_read_replica,
                                      rack_aware_select)

LEADER = ReplicaView(1, "a", 100, 0)


def test_a_client_without_a_rack_reads_from_the_leader():
    assert rack_aware_select(None, LEADER, [LEADER, ReplicaView(2, None, 100, 0)]) is LEADER
    assert rack_aware_select("", LEADER, [LEADER, ReplicaView(2, "", 100, 0)]) is LEADER


def test_the_leader_wins_in_its_own_rack():
    assert rack_aware_select("a", LEADER, [LEADER, ReplicaView(2, "a", 100, 0)]) is LEADER


def test_no_replica_in_the_clients_rack_means_the_leader():
    assert rack_aware_select("z", LEADER, [LEADER, ReplicaView(2, "b", 100, 0)]) is LEADER


def test_the_most_caught_up_replica_of_the_rack_then_the_most_recently_caught_up():
    behind, ahead = ReplicaView(2, "b", 90, 0), ReplicaView(3, "b", 100, 500)
    assert rack_aware_select("b", LEADER, [LEADER, behind, ahead]) is ahead
    recent = ReplicaView(4, "b", 100, 10)
    assert rack_aware_select("b", LEADER, [LEADER, behind, ahead, recent]) is recent


def test_the_leader_names_another_replica_only_with_a_selector():
    follower = ReplicaView(2, "b", 100, 0)
    assert preferred_read_replica(RACK_AWARE, "b", LEADER, [follower]) == 2
    assert preferred_read_replica(RACK_AWARE, "a", LEADER, [follower]) == -1
    assert preferred_read_replica(None, "b", LEADER, [follower]) == -1


@pytest.mark.parametrize("value, expected", [
    ("org.apache.kafka.common.replica.RackAwareReplicaSelector", RACK_AWARE),
    ("RackAwareReplicaSelector", RACK_AWARE),
    ("", None),
])
def test_replica_selector_class_names(value, expected):
    assert parse_selector(value) == expected


def test_an_unknown_replica_selector_is_refused_at_start_up():
    from kbroker.config import BrokerConfig, apply_settings

    with pytest.raises(ValueError, match="replica.selector.class"):
        apply_settings(BrokerConfig(), {"replica.selector.class": "com.example.MySelector"})
