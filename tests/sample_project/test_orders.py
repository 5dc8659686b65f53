"""How a user tests their own code with kbroker's pytest plugin: the `kafka_broker` and `kafka_topic`
fixtures come from the installed kbroker package (no conftest needed), and assertions go through the
broker's inspection API instead of a hand-written consumer."""

import json

import pytest

from orders import OrderPublisher


def test_orders_are_published_keyed_by_customer(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=1)
    publisher = OrderPublisher(kafka_broker.bootstrap_servers, topic)
    publisher.publish("o-1", 1250, "alice")
    publisher.publish("o-2", 990, "bob")
    publisher.close()

    records = kafka_broker.control.records(topic, partition=0)
    assert [r["key"]["data"] for r in records] == ["alice", "bob"]
    assert json.loads(records[0]["value"]["data"]) == {"order_id": "o-1", "amount_cents": 1250}
    assert records[0]["headers"] == [{"key": "source", "value": {"encoding": "utf-8", "data": "orders-service"}}]


def test_publisher_survives_a_broker_hiccup(kafka_broker, kafka_topic):
    topic = kafka_topic()
    kafka_broker.control.add_fault("Produce", error_code=6, count=2, topic=topic)  # NOT_LEADER_OR_FOLLOWER
    publisher = OrderPublisher(kafka_broker.bootstrap_servers, topic)
    for i in range(10):
        publisher.publish(f"o-{i}", i, "carol")
    publisher.close()
    assert len(kafka_broker.control.records(topic)) == 10


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_each_test_gets_fresh_topics(kafka_broker, kafka_topic, n):
    topic = kafka_topic(partitions=n)
    assert kafka_broker.control.records(topic) == []
