"""The Java admin client (kafka-clients 4.4) describes topics with DescribeTopicPartitions (KIP-966): with the
broker's ``max.request.partition.size.limit`` at 2 it has to follow NextCursor across several answers to see
all five partitions of a topic, each with its leader, replicas and ISR; an unknown topic fails alone."""

from __future__ import annotations

from kbroker import Broker
from kbroker.client import BlockingClient
from support.java_client import java_client_or_skip

DESCRIBE_TOPIC_PARTITIONS = 75


def test_java_admin_pages_through_describe_topic_partitions():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory", settings={"max.request.partition.size.limit": "2"}) as b:
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("five", 5)
            c.create_topic("one", 1)
        got = java(b.bootstrap_servers)._call("describeTopics", topics=["five", "one", "missing"])
        asked = [r for r in b.control.requests(1000) if r["api_key"] == DESCRIBE_TOPIC_PARTITIONS]
        node = b.state.node_id
    assert got["missing"] == {"error": "UNKNOWN_TOPIC_OR_PARTITION"}
    for name, count in (("five", 5), ("one", 1)):
        assert [p["partition"] for p in got[name]["partitions"]] == list(range(count))
        for p in got[name]["partitions"]:
            assert (p["leader"], p["replicas"], p["isr"]) == (node, [node], [node])
        assert "DESCRIBE" in got[name]["authorizedOperations"] and "WRITE" in got[name]["authorizedOperations"]
    # 6 partitions, 2 per answer: the client followed the cursor (Kafka's admin asks again per cursor).
    assert len(asked) >= 3, asked
    assert all(r["api_version"] == 0 for r in asked)
