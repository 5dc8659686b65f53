"""Rack-aware replica placement (controller.place_replicas), as Kafka's StripedReplicaPlacer places replicas:
a partition's replicas span as many racks as they can, leaders go round the racks and the brokers, and a topic
that grows continues where its placement left off."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kbroker.broker_server import cluster_racks
from kbroker.controller import place_replicas
from kbroker.errors import ErrorCode, KafkaError

SIX_IN_THREE = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}


@pytest.mark.parametrize("seed", range(20))
def test_every_partition_spans_every_rack_it_can(seed):
    placed = place_replicas(list(SIX_IN_THREE), 12, 3, SIX_IN_THREE, rng=random.Random(seed))
    for replicas in placed:
        assert len(set(replicas)) == 3
        assert {SIX_IN_THREE[b] for b in replicas} == {"a", "b", "c"}
    # 12 partitions x 3 replicas over 6 brokers: each holds 6, each rack 12
    assert Counter(b for r in placed for b in r) == {b: 6 for b in SIX_IN_THREE}


@pytest.mark.parametrize("seed", range(20))
def test_two_replicas_over_three_racks_never_share_a_rack(seed):
    placed = place_replicas(list(SIX_IN_THREE), 9, 2, SIX_IN_THREE, rng=random.Random(seed))
    assert all(SIX_IN_THREE[r[0]] != SIX_IN_THREE[r[1]] for r in placed)
    # the leaders go round the racks: as many partitions led from each rack
    assert Counter(SIX_IN_THREE[r[0]] for r in placed) == {"a": 3, "b": 3, "c": 3}


@pytest.mark.parametrize("seed", range(20))
def test_more_replicas_than_racks_uses_each_rack_before_repeating_one(seed):
    racks = {1: "a", 2: "a", 3: "a", 4: "b"}
    placed = place_replicas(list(racks), 8, 3, racks, rng=random.Random(seed))
    for replicas in placed:
        assert len(set(replicas)) == 3
        assert {racks[b] for b in replicas} == {"a", "b"}  # rack b's one broker is in every partition


def test_one_broker_per_rack_gives_each_broker_a_turn_as_leader():
    racks = {1: "x", 2: "y", 3: "z"}
    placed = place_replicas(list(racks), 3, 3, racks, rng=random.Random(7))
    assert sorted(r[0] for r in placed) == [1, 2, 3]
    assert all(sorted(r) == [1, 2, 3] for r in placed)


def test_without_racks_partitions_stripe_over_the_brokers():
    placed = place_replicas([1, 2, 3], 6, 2, rng=random.Random(3))
    assert sorted(r[0] for r in placed) == [1, 1, 2, 2, 3, 3]
    assert all(len(set(r)) == 2 for r in placed)
    # the follower is the leader's successor in the (shuffled) broker order: each pair appears once per round
    assert len({tuple(r) for r in placed[:3]}) == 3


def test_brokers_without_a_rack_form_a_rack_of_their_own():
    racks = {1: None, 2: None, 3: "a", 4: "a"}
    placed = place_replicas(list(racks), 4, 2, racks, rng=random.Random(1))
    assert all({racks[r[0]], racks[r[1]]} == {None, "a"} for r in placed)


def test_a_growing_topic_continues_after_its_last_partition():
    racks = {1: "a", 2: "b", 3: "c"}
    existing = [[2, 3, 1]]  # the last partition's leader is in rack b: the next leader comes from rack c
    placed = place_replicas(list(racks), 2, 3, racks, existing=existing, rng=random.Random(0))
    assert [r[0] for r in placed] == [3, 1]


def test_placement_is_refused_with_more_replicas_than_brokers():
    with pytest.raises(KafkaError) as e:
        place_replicas([1, 2], 1, 3, {1: "a", 2: "b"})
    assert e.value.code == ErrorCode.INVALID_REPLICATION_FACTOR


@pytest.mark.parametrize("rack, expected", [
    (None, [None, None, None]),
    ("a", ["a", "a", "a"]),
    ("a, b,c", ["a", "b", "c"]),
])
def test_a_cluster_in_one_process_gives_each_broker_its_rack(rack, expected):
    assert cluster_racks(rack, 3) == expected


@pytest.mark.parametrize("rack", ["a,b", "a,,c"])
def test_a_rack_list_that_does_not_fit_the_brokers_is_refused(rack):
    with pytest.raises(ValueError):
        cluster_racks(rack, 3)
