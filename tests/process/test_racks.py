"""Racks (``broker.rack``) in a cluster, with stock clients: every broker's rack in DescribeCluster and Metadata,
and CreateTopics placing a partition's replicas over as many racks as it can (Kafka's StripedReplicaPlacer;
the placement's own rules are tests/unit/cluster/test_rack_placement.py)."""

from __future__ import annotations

import uuid

import pytest

from kbroker import Broker
from support.brokerproc import BrokerProcess

TIMEOUT_S = 30


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def _racks_described(bootstrap: str) -> dict[int, str | None]:
    admin = _admin(bootstrap)  # kept until the answer: a destroyed client fails its futures
    result = admin.describe_cluster(request_timeout=10).result(TIMEOUT_S)
    return {n.id: n.rack for n in result.nodes}


def _replicas(bootstrap: str, topic: str) -> list[list[int]]:
    from confluent_kafka import TopicCollection

    admin = _admin(bootstrap)
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
    desc = futures[topic].result(TIMEOUT_S)
    return [[n.id for n in p.replicas] for p in sorted(desc.partitions, key=lambda p: p.id)]


def _create(bootstrap: str, topic: str, partitions: int, rf: int) -> None:
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    admin.create_topics([NewTopic(topic, partitions, rf)])[topic].result(TIMEOUT_S)


def test_each_broker_of_a_cluster_in_one_process_has_its_rack():
    with Broker(brokers=3, rack="r1,r2,r3") as b:
        assert _racks_described(b.bootstrap_servers) == {0: "r1", 1: "r2", 2: "r3"}
        from confluent_kafka.admin import ConfigResource

        res = ConfigResource(ConfigResource.Type.BROKER, "1")
        admin = _admin(b.bootstrap_servers)
        configs = admin.describe_configs([res])[res].result(TIMEOUT_S)
        assert configs["broker.rack"].value == "r2"


@pytest.mark.parametrize("rf", [2, 3])
def test_create_topics_spreads_replicas_over_the_racks(tmp_path, rf):
    racks = {0: "a", 1: "a", 2: "b", 3: "b"}
    with BrokerProcess(tmp_path, "--brokers", "4", "--rack", "a,a,b,b") as proc:
        bootstrap = proc.bootstrap_servers
        assert _racks_described(bootstrap) == racks
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert sorted(md.brokers) == [0, 1, 2, 3]
        topic = f"racked-{uuid.uuid4().hex[:8]}"
        _create(bootstrap, topic, 8, rf)
        placed = _replicas(bootstrap, topic)
        assert len(placed) == 8
        for replicas in placed:
            assert len(set(replicas)) == rf
            assert {racks[r] for r in replicas} == {"a", "b"}, placed
        # the leaders go round the racks
        assert sorted(racks[r[0]] for r in placed) == ["a"] * 4 + ["b"] * 4
