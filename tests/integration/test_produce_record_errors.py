"""ProduceResponse record errors (KIP-467), over a raw socket and with a stock client: a batch refused for
some of its records names each of them (their index in the batch, and why), with the partition's
error_message Kafka's LogValidator writes; errors about the batch as a whole carry no record index."""

from __future__ import annotations

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.records.builder import build_batch, simple_batch
from kbroker.records.compression import GZIP
from kbroker.records.record import Record
from kbroker.wire.messages import create_topics, produce
from kbroker.client import BlockingConnection

P = produce.ProduceRequest
C = create_topics.CreateTopicsRequest


@pytest.fixture
def b():
    with Broker(port=0, storage="memory") as broker:
        yield broker


def _create(c, name, configs):
    resp = c.request(19, 4, C(topics=[C.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[],
        configs=[C.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])], timeout_ms=5000))
    assert resp.topics[0].error_code == 0


def _produce(c, topic, batch, version=9):
    req = P(acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.PartitionProduceData(index=0, records=bytes(batch))])])
    return c.request(0, version, req).responses[0].partition_responses[0]


def _keyless_message(topic):
    return f"Compacted topic cannot accept message without key in topic partition {topic}-0"


@pytest.mark.parametrize("compression", [0, GZIP])
def test_keyless_records_on_a_compacted_topic_are_each_named(b, topic_name, compression):
    c = BlockingConnection(b.host, b.port)
    _create(c, topic_name, {"cleanup.policy": "compact"})
    keys = [b"k0", None, b"k2", None, None, b"k5"]
    batch = build_batch([Record(i, 1000, k, b"v") for i, k in enumerate(keys)], compression=compression)
    part = _produce(c, topic_name, batch)
    assert part.error_code == ErrorCode.INVALID_RECORD
    assert [(e.batch_index, e.batch_index_error_message) for e in part.record_errors] == [
        (1, _keyless_message(topic_name)), (3, _keyless_message(topic_name)), (4, _keyless_message(topic_name))]
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{_keyless_message(topic_name)}')" for i in (1, 3, 4))
    assert part.error_message == ("One or more records have been rejected due to 3 record errors in total, and "
                                  f"only showing the first three errors at most: [{shown}]")
    assert part.base_offset == -1
    # Nothing of the batch was written; a batch with every key goes in at offset 0.
    assert _produce(c, topic_name, build_batch([Record(0, 1000, b"k", b"v")])).base_offset == 0


def test_the_message_shows_at_most_three_record_errors(b, topic_name):
    c = BlockingConnection(b.host, b.port)
    _create(c, topic_name, {"cleanup.policy": "compact"})
    part = _produce(c, topic_name, simple_batch(*[b"v"] * 5))
    assert [e.batch_index for e in part.record_errors] == [0, 1, 2, 3, 4]
    assert part.error_message.startswith("One or more records have been rejected due to 5 record errors in total")
    assert part.error_message.count("RecordError(") == 3


def test_record_errors_are_absent_before_produce_v8(b, topic_name):
    c = BlockingConnection(b.host, b.port)
    _create(c, topic_name, {"cleanup.policy": "compact"})
    part = _produce(c, topic_name, simple_batch(b"v"), version=7)
    assert part.error_code == ErrorCode.INVALID_RECORD


def test_a_batch_over_the_size_limit_has_no_record_errors(b, topic_name):
    """Kafka's UnifiedLog refuses the batch as a whole (RecordTooLargeException): no record index."""
    c = BlockingConnection(b.host, b.port)
    _create(c, topic_name, {"max.message.bytes": "1000"})
    part = _produce(c, topic_name, simple_batch(b"x" * 2000))
    assert part.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert part.record_errors == []


def test_confluent_kafka_reports_the_record_error(b, topic_name):
    from confluent_kafka import KafkaError, Producer

    c = BlockingConnection(b.host, b.port)
    _create(c, topic_name, {"cleanup.policy": "compact"})
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": False})
    p.produce(topic_name, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(10) == 0
    assert errors[0].code() == KafkaError.INVALID_RECORD  # librdkafka reads record_errors but shows its own text
