"""Tests that need nothing but the Kafka protocol, so they run against any broker (--kbroker-external)."""

from confluent_kafka.admin import AdminClient


def test_kafka_topic_creates_a_topic(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=3)
    md = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 3
