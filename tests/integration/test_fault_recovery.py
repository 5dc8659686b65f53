"""Stock clients recover from injected faults without losing or duplicating records (idempotent producer):
NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, a connection closed before the broker handled the request, and
one closed after it wrote the batch but before the client saw the answer."""

from __future__ import annotations

import pytest

from kbroker import Broker

N = 300
FAULTS = {
    "not_leader": {"error_code": 6, "count": 3},
    "request_timed_out": {"error_code": 7, "count": 3},
    "disconnect_before": {"disconnect": True, "count": 2},
    "drop_response_after_write": {"drop_response": True, "count": 2},
}


@pytest.fixture
def broker():
    with Broker(port=0, storage="memory") as b:
        yield b


def _stored_values(b, topic: str) -> list[bytes]:
    recs = b.control.records(topic, 0, 0, limit=10 * N)
    return [r["value"]["data"].encode() for r in recs]


def _produce_confluent(bootstrap: str, topic: str) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "retry.backoff.ms": 20, "reconnect.backoff.ms": 10, "message.timeout.ms": 30000})
    errors = []
    for i in range(N):
        p.produce(topic, value=b"m%d" % i, partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
        if i % 50 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:3]


def _produce_kafka_python(bootstrap: str, topic: str) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
                      retry_backoff_ms=20, reconnect_backoff_ms=10)
    try:
        futures = [p.send(topic, value=b"m%d" % i, partition=0) for i in range(N)]
        p.flush(30)
        for f in futures:
            f.get(30)
    finally:
        p.close()


PRODUCERS = {"confluent-kafka": _produce_confluent, "kafka-python": _produce_kafka_python}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("client", list(PRODUCERS))
def test_idempotent_producer_recovers_exactly_once(broker, client, fault):
    topic = f"faults-{client}-{fault}"
    from kbroker.client import BlockingClient

    with BlockingClient(broker.bootstrap_servers) as admin:
        admin.create_topic(topic, 1)
    broker.control.add_fault("Produce", topic=topic, **FAULTS[fault])
    PRODUCERS[client](broker.bootstrap_servers, topic)
    assert broker.control.faults() == []  # every injected fault was hit
    values = _stored_values(broker, topic)
    assert sorted(values) == sorted(b"m%d" % i for i in range(N)), "lost or duplicated records"
    assert values == [b"m%d" % i for i in range(N)], "records out of order"


def test_consumer_recovers_from_fetch_faults(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(N):
        p.produce("fetch-faults", value=b"m%d" % i, partition=0)
    assert p.flush(10) == 0
    broker.control.add_fault("Fetch", error_code=6, count=2)
    broker.control.add_fault("Fetch", disconnect=True, count=1)
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "ff", "enable.auto.commit": False,
                  "reconnect.backoff.ms": 10, "fetch.error.backoff.ms": 20})
    c.assign([TopicPartition("fetch-faults", 0, 0)])
    got = []
    import time

    deadline = time.monotonic() + 30
    while len(got) < N and time.monotonic() < deadline:
        for m in c.consume(100, 0.2):
            if not m.error():
                got.append(m.value())
    c.close()
    assert got == [b"m%d" % i for i in range(N)]
    assert broker.control.faults() == []
