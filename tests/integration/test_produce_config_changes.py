"""A topic config changed at run time reaches the very next Produce, though the broker keeps the configs a
Produce reads parsed per topic (topics.py ``Topic.produce_settings``, issue 17): topic overrides through
IncrementalAlterConfigs and AlterConfigs, and the dynamic broker defaults a topic without an override
follows. A stock producer (confluent-kafka) over a real socket sees each change."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Producer, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from kbroker import Broker

BIG = b"x" * 5000


@pytest.fixture
def b():
    with Broker(port=0, storage="memory") as broker:
        yield broker


def _admin(b) -> AdminClient:
    return AdminClient({"bootstrap.servers": b.bootstrap_servers, "log_level": 0})


def _create(admin: AdminClient, name: str) -> None:
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def _produce(producer: Producer, topic: str, value: bytes):
    """The delivery report of one message: (error code or None, timestamp type or None when refused)."""
    out = []
    producer.produce(topic, value, on_delivery=lambda err, msg: out.append((err, msg.timestamp()[0])))
    assert producer.flush(30) == 0
    (err, ts_type), = out
    return (err.code(), None) if err is not None else (None, ts_type)


def _incremental(admin: AdminClient, resource: ConfigResource) -> None:
    admin.incremental_alter_configs([resource])[resource].result(30)


def test_topic_overrides_take_effect_on_the_next_produce(b):
    admin = _admin(b)
    _create(admin, "t")
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0, "log_level": 0})
    assert _produce(producer, "t", BIG) == (None, TIMESTAMP_CREATE_TIME)  # the settings are cached now

    _incremental(admin, ConfigResource(ConfigResource.Type.TOPIC, "t", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)]))
    assert _produce(producer, "t", BIG) == (KafkaError.MSG_SIZE_TOO_LARGE, None)
    assert _produce(producer, "t", b"small") == (None, TIMESTAMP_CREATE_TIME)

    # AlterConfigs replaces every override: max.message.bytes is back to its default.
    resource = ConfigResource(ConfigResource.Type.TOPIC, "t",
                              set_config={"message.timestamp.type": "LogAppendTime"})
    admin.alter_configs([resource])[resource].result(30)
    assert _produce(producer, "t", BIG) == (None, TIMESTAMP_LOG_APPEND_TIME)

    _incremental(admin, ConfigResource(ConfigResource.Type.TOPIC, "t", incremental_configs=[
        ConfigEntry("message.timestamp.type", None, incremental_operation=AlterConfigOpType.DELETE)]))
    assert _produce(producer, "t", BIG) == (None, TIMESTAMP_CREATE_TIME)


def test_broker_defaults_take_effect_on_the_next_produce(b):
    """A dynamic broker config sets the defaults of every topic without an override (TopicDefaults)."""
    admin = _admin(b)
    _create(admin, "d")
    producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0, "log_level": 0})
    assert _produce(producer, "d", BIG) == (None, TIMESTAMP_CREATE_TIME)

    broker = ConfigResource(ConfigResource.Type.BROKER, str(b.node_ids[0]), incremental_configs=[
        ConfigEntry("log.message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.max.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    _incremental(admin, broker)
    assert _produce(producer, "d", BIG) == (KafkaError.MSG_SIZE_TOO_LARGE, None)
    assert _produce(producer, "d", b"small") == (None, TIMESTAMP_LOG_APPEND_TIME)

    broker = ConfigResource(ConfigResource.Type.BROKER, str(b.node_ids[0]), incremental_configs=[
        ConfigEntry("log.message.timestamp.type", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("message.max.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    _incremental(admin, broker)
    assert _produce(producer, "d", BIG) == (None, TIMESTAMP_CREATE_TIME)
