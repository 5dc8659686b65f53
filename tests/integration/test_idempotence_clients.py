"""Idempotent producers (issue #4): a batch the broker wrote but whose answer the client never saw is re-sent
and must not be written twice (KIP-98).

With stock clients, the cut is the control plane's ``drop_response`` fault on Produce: the broker handles the
request (the batch is in the log) and closes the connection instead of answering, so the client retries the
same batch with the same producer id, epoch and sequence. The stored records are read back through the
control plane. Over a raw socket, the broker's own answers (Kafka's ProducerStateManager rules): a duplicate
batch gets the base offset of the ORIGINAL, a sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch
INVALID_PRODUCER_EPOCH, a new epoch that does not start at sequence 0 OUT_OF_ORDER_SEQUENCE_NUMBER; and the
producer state is rebuilt from the log on restart, so a retry after a restart is still recognised.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.records.builder import build_batch
from kbroker.records.record import Record
from kbroker.wire.messages import init_producer_id, produce
from kbroker.client import BlockingConnection
from support.txn_helpers import TIMEOUT_S, create_topic

PRODUCE = 0
INIT_PRODUCER_ID = 22


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data") as broker:
        yield broker


def _topic() -> str:
    return f"idem-{uuid.uuid4().hex[:8]}"


def _stored_values(b, topic: str, partition: int = 0) -> list[bytes]:
    return [r["value"]["data"].encode() for r in b.control.records(topic, partition, limit=10_000)]


def _produce_requests(b) -> int:
    return sum(1 for r in b.control.requests(1000) if r["api_key"] == PRODUCE)


# -- stock clients: the answer is lost, the client retries ------------------------------------------------


def _send_confluent(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    reports = []
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=lambda err, m: reports.append((err, m.offset())))
    assert p.flush(TIMEOUT_S) == 0
    assert all(err is None for err, _ in reports), reports
    return sorted(o for _, o in reports)


def _send_kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20, acks="all")
    try:
        futures = [p.send(topic, value=v, partition=0) for v in values]
        p.flush(TIMEOUT_S)
        return sorted(f.get(TIMEOUT_S).offset for f in futures)
    finally:
        p.close()


def _send_aiokafka(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    async def go():
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20)
        await p.start()
        try:
            futures = [await p.send(topic, value=v, partition=0) for v in values]
            return sorted(m.offset for m in await asyncio.gather(*futures))
        finally:
            await p.stop()

    return asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


SENDERS = {"confluent-kafka": _send_confluent, "kafka-python": _send_kafka_python, "aiokafka": _send_aiokafka}


@pytest.mark.parametrize("client", list(SENDERS))
def test_batch_resent_after_lost_answer_is_stored_once(b, client):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    b.control.add_fault("Produce", drop_response=True, topic=topic, count=1)
    values = [b"v%d" % i for i in range(5)]

    offsets = SENDERS[client](b.bootstrap_servers, topic, values)

    assert b.control.faults() == [], "the fault was never hit"
    assert _produce_requests(b) >= 2, "the batch whose answer was dropped was not retried"
    assert _stored_values(b, topic) == values  # once each, in order
    # Every record was acknowledged with the offset it has in the log: the retry was answered with the
    # original batch's offsets.
    assert offsets == list(range(len(values)))


@pytest.mark.parametrize("client", list(SENDERS))
def test_several_lost_answers_in_a_row_leave_no_duplicate(b, client):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    b.control.add_fault("Produce", drop_response=True, topic=topic, count=3)
    values = [b"w%d" % i for i in range(20)]

    offsets = SENDERS[client](b.bootstrap_servers, topic, values)

    assert b.control.faults() == []
    assert _stored_values(b, topic) == values
    assert offsets == list(range(len(values)))


# -- the broker's own answers, over a raw socket -----------------------------------------------------------


def _producer_id(c: BlockingConnection) -> tuple[int, int]:
    r = c.request(INIT_PRODUCER_ID, 1, init_producer_id.InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=60000))
    assert r.error_code == 0
    return r.producer_id, r.producer_epoch


def _batch(values: list[bytes], **kw) -> bytes:
    return bytes(build_batch([Record(i, 1_700_000_000_000, None, v) for i, v in enumerate(values)],
                             base_offset=0, **kw))


def _produce(c: BlockingConnection, topic: str, records: bytes, version: int = 8):
    req = produce.ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name=topic, partition_data=[produce.ProduceRequest.PartitionProduceData(index=0, records=records)])])
    return c.request(PRODUCE, version, req).responses[0].partition_responses[0]


@pytest.fixture
def raw(b):
    c = BlockingConnection(b.host, b.port)
    yield c
    c.close()


def test_duplicate_batch_is_answered_with_the_original_base_offset(b, raw):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    pid, epoch = _producer_id(raw)
    first = _batch([b"a", b"b", b"c"], producer_id=pid, producer_epoch=epoch, base_sequence=0)
    r = _produce(raw, topic, first)
    assert (r.error_code, r.base_offset) == (0, 0)
    r = _produce(raw, topic, _batch([b"plain"]))  # someone else writes in between
    assert (r.error_code, r.base_offset) == (0, 3)
    second = _batch([b"d"], producer_id=pid, producer_epoch=epoch, base_sequence=3)
    assert (_produce(raw, topic, second).base_offset) == 4

    again = _produce(raw, topic, first)
    assert (again.error_code, again.base_offset) == (0, 0)  # where the original went, not the log end
    again = _produce(raw, topic, second)
    assert (again.error_code, again.base_offset) == (0, 4)
    assert _stored_values(b, topic) == [b"a", b"b", b"c", b"plain", b"d"]


def test_duplicate_of_any_of_the_last_five_batches_is_recognised(b, raw):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    pid, epoch = _producer_id(raw)
    batches = [_batch([b"%d" % i], producer_id=pid, producer_epoch=epoch, base_sequence=i) for i in range(6)]
    for i, batch in enumerate(batches):
        assert _produce(raw, topic, batch).base_offset == i
    for i in range(1, 6):  # the five the broker keeps (Kafka's NUM_BATCHES_TO_RETAIN)
        r = _produce(raw, topic, batches[i])
        assert (r.error_code, r.base_offset) == (0, i)
    # The sixth from the end is no longer known: its sequence is not the next one.
    assert _produce(raw, topic, batches[0]).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert len(_stored_values(b, topic)) == 6


def test_sequence_gap_is_out_of_order(b, raw):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    pid, epoch = _producer_id(raw)
    assert _produce(raw, topic, _batch([b"a", b"b"], producer_id=pid, producer_epoch=epoch,
                                       base_sequence=0)).error_code == 0
    gap = _produce(raw, topic, _batch([b"x"], producer_id=pid, producer_epoch=epoch, base_sequence=3))
    assert (gap.error_code, gap.base_offset) == (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
    overlap = _produce(raw, topic, _batch([b"y", b"z"], producer_id=pid, producer_epoch=epoch, base_sequence=1))
    assert overlap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    # The next sequence is still accepted after the refusals.
    ok = _produce(raw, topic, _batch([b"c"], producer_id=pid, producer_epoch=epoch, base_sequence=2))
    assert (ok.error_code, ok.base_offset) == (0, 2)
    assert _stored_values(b, topic) == [b"a", b"b", b"c"]


def test_old_epoch_is_invalid_producer_epoch_and_new_epoch_starts_at_zero(b, raw):
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    pid, epoch = _producer_id(raw)
    assert _produce(raw, topic, _batch([b"a"], producer_id=pid, producer_epoch=epoch,
                                       base_sequence=0)).error_code == 0
    # A new epoch must start at sequence 0.
    bad = _produce(raw, topic, _batch([b"x"], producer_id=pid, producer_epoch=epoch + 1, base_sequence=1))
    assert bad.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _produce(raw, topic, _batch([b"b"], producer_id=pid, producer_epoch=epoch + 1,
                                       base_sequence=0)).error_code == 0
    old = _produce(raw, topic, _batch([b"y"], producer_id=pid, producer_epoch=epoch, base_sequence=1))
    assert (old.error_code, old.base_offset) == (ErrorCode.INVALID_PRODUCER_EPOCH, -1)
    # Even a duplicate of a batch written at the old epoch is refused once the epoch moved on.
    stale = _produce(raw, topic, _batch([b"a"], producer_id=pid, producer_epoch=epoch, base_sequence=0))
    assert stale.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert _stored_values(b, topic) == [b"a", b"b"]


def test_unknown_producer_id_is_accepted_at_any_sequence(b, raw):
    """A producer id the partition has no state for (its records went with retention, or it never wrote
    here) is accepted at any sequence, as Kafka accepts it."""
    topic = _topic()
    create_topic(b.bootstrap_servers, topic, 1)
    pid, epoch = _producer_id(raw)
    r = _produce(raw, topic, _batch([b"a"], producer_id=pid, producer_epoch=epoch, base_sequence=17))
    assert (r.error_code, r.base_offset) == (0, 0)
    r = _produce(raw, topic, _batch([b"b"], producer_id=pid, producer_epoch=epoch, base_sequence=18))
    assert (r.error_code, r.base_offset) == (0, 1)


def test_producer_state_survives_a_restart(tmp_path):
    """The producer state is rebuilt from the batch headers in the log: a retry that arrives after a restart
    is still answered with the original offset, and a gap is still refused."""
    data = tmp_path / "data"
    topic = _topic()
    with Broker(port=0, data_dir=data) as b1:
        create_topic(b1.bootstrap_servers, topic, 1)
        c = BlockingConnection(b1.host, b1.port)
        pid, epoch = _producer_id(c)
        first = _batch([b"a", b"b"], producer_id=pid, producer_epoch=epoch, base_sequence=0)
        assert _produce(c, topic, first).base_offset == 0
        c.close()
    with Broker(port=0, data_dir=data) as b2:
        c = BlockingConnection(b2.host, b2.port)
        again = _produce(c, topic, first)
        assert (again.error_code, again.base_offset) == (0, 0)
        gap = _produce(c, topic, _batch([b"x"], producer_id=pid, producer_epoch=epoch, base_sequence=5))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        nxt = _produce(c, topic, _batch([b"c"], producer_id=pid, producer_epoch=epoch, base_sequence=2))
        assert (nxt.error_code, nxt.base_offset) == (0, 2)
        c.close()
        assert _stored_values(b2, topic) == [b"a", b"b", b"c"]
