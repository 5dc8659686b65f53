"""The core APIs over a raw socket, where exact answers matter: acks, limits, fetch positions and long
polls, topic creation and deletion rules."""

from __future__ import annotations

import time
import uuid

import pytest

from kbroker import Broker
from kbroker.records.builder import simple_batch
from kbroker.records.record import decode_records
from kbroker.wire.messages import create_topics, delete_topics, fetch, list_offsets, metadata, produce
from kbroker.client import BlockingConnection
from support.topics import auto_create

P = produce.ProduceRequest
F = fetch.FetchRequest
C = create_topics.CreateTopicsRequest
D = delete_topics.DeleteTopicsRequest


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", message_max_bytes=2000) as broker:
        yield broker


def _client(b) -> BlockingConnection:
    return BlockingConnection(b.host, b.port)


def _produce(c, topic, records, acks=1, partition=0, version=9, create=True):
    if create:  # a client asks Metadata (which auto-creates) before it produces
        auto_create(c, topic)
    req = P(acks=acks, timeout_ms=1000, topic_data=[P.TopicProduceData(name=topic, partition_data=[
        P.PartitionProduceData(index=partition, records=bytes(records))])])
    if acks == 0:
        c.send_bytes(c.frame(0, version, req))
        return None
    return c.request(0, version, req).responses[0].partition_responses[0]


def _fetch_req(topic, offset, max_wait_ms=0, min_bytes=0, partition_max_bytes=1 << 20, isolation=0):
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=50 << 20,
             isolation_level=isolation, topics=[F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
                 partition=0, fetch_offset=offset, partition_max_bytes=partition_max_bytes)])])


def test_acks_zero_gets_no_answer_but_is_written(b):
    c = _client(b)
    assert _produce(c, "a0", simple_batch(b"x"), acks=0) is None
    # The next request's answer is the next frame: nothing was sent for the acks=0 one.
    r = _produce(c, "a0", simple_batch(b"y"), acks=-1)
    assert r.error_code == 0 and r.base_offset == 1


def test_message_max_bytes(b):
    c = _client(b)
    r = _produce(c, "big", simple_batch(b"x" * 3000))
    assert r.error_code == 10  # MESSAGE_TOO_LARGE
    assert _produce(c, "big", simple_batch(b"x" * 100)).base_offset == 0


def test_log_append_time_topic(b):
    c = _client(b)
    resp = c.request(19, 7, C(topics=[C.CreatableTopic(name="lat", num_partitions=1, replication_factor=1, configs=[
        C.CreatableTopicConfig(name="message.timestamp.type", value="LogAppendTime")])], timeout_ms=1000))
    assert resp.topics[0].error_code == 0
    before = int(time.time() * 1000)
    r = _produce(c, "lat", simple_batch(b"x", timestamp_ms=1))
    assert r.error_code == 0 and r.log_append_time_ms >= before
    data = c.request(1, 12, _fetch_req("lat", 0)).responses[0].partitions[0].records
    rec = decode_records(bytes(data))[0]
    assert rec.timestamp == r.log_append_time_ms


def test_timestamps_too_far_from_the_broker_clock_are_refused(b):
    """message.timestamp.after.max.ms defaults to one hour (Kafka 4, KIP-937) and before.max.ms to no bound:
    a record stamped two hours ahead is INVALID_TIMESTAMP with Kafka's messages, and nothing is appended;
    a topic's own bounds apply both ways; LogAppendTime topics are not checked."""
    c = _client(b)
    now = int(time.time() * 1000)
    future = simple_batch(b"ok", b"ahead", timestamp_ms=now + 2 * 3600_000)
    r = _produce(c, "ts", future)
    assert (r.error_code, r.base_offset) == (32, -1)  # INVALID_TIMESTAMP
    assert r.error_message == "One or more records have been rejected due to invalid timestamp"
    assert [e.batch_index for e in r.record_errors] == [0, 1]
    assert r.record_errors[0].batch_index_error_message.startswith(
        f"Timestamp {now + 2 * 3600_000} of message with offset 0 is out of range. The timestamp should be within [")
    assert _produce(c, "ts", simple_batch(b"old", timestamp_ms=1)).base_offset == 0  # no lower bound by default

    resp = c.request(19, 7, C(topics=[C.CreatableTopic(name="ts2", num_partitions=1, replication_factor=1, configs=[
        C.CreatableTopicConfig(name="message.timestamp.after.max.ms", value=str(3 * 3600_000)),
        C.CreatableTopicConfig(name="message.timestamp.before.max.ms", value="60000")])], timeout_ms=1000))
    assert resp.topics[0].error_code == 0
    assert _produce(c, "ts2", future).error_code == 0
    old = _produce(c, "ts2", simple_batch(b"new", b"old", timestamp_ms=now - 120_000))
    assert old.error_code == 32 and len(old.record_errors) == 2
    resp = c.request(19, 7, C(topics=[C.CreatableTopic(name="ts3", num_partitions=1, replication_factor=1, configs=[
        C.CreatableTopicConfig(name="message.timestamp.type", value="LogAppendTime")])], timeout_ms=1000))
    assert resp.topics[0].error_code == 0
    assert _produce(c, "ts3", future).error_code == 0


def test_fetch_positions(b):
    c = _client(b)
    _produce(c, "fp", simple_batch(b"a", b"b", b"c"))
    _produce(c, "fp", simple_batch(b"d", base_offset=0))
    # An offset inside the first batch returns the whole batch (the client skips what it did not ask for).
    part = c.request(1, 12, _fetch_req("fp", 1)).responses[0].partitions[0]
    assert part.error_code == 0 and part.high_watermark == 4
    recs = decode_records(bytes(part.records))
    assert [r.offset for r in recs] == [0, 1, 2]
    # At the end: no records, but zero-length and not null.
    part = c.request(1, 12, _fetch_req("fp", 4)).responses[0].partitions[0]
    assert part.error_code == 0 and part.records is not None and len(part.records) == 0
    # Beyond the end: OFFSET_OUT_OF_RANGE, and no watermarks (-1, as Kafka's answer for a read that failed).
    part = c.request(1, 12, _fetch_req("fp", 5)).responses[0].partitions[0]
    assert (part.error_code, part.high_watermark, part.last_stable_offset, part.log_start_offset) == (1, -1, -1, -1)
    # KIP-74: a batch larger than partition_max_bytes is still returned whole.
    part = c.request(1, 12, _fetch_req("fp", 0, partition_max_bytes=10)).responses[0].partitions[0]
    assert len(decode_records(bytes(part.records))) == 3


def test_fetch_long_poll_is_woken_by_an_append(b):
    c = _client(b)
    _produce(c, "lp", simple_batch(b"first"))
    waiter = _client(b)
    t0 = time.monotonic()
    # The fetch is sent first and parks (nothing at offset 1 yet); the append on another connection wakes it.
    waiter.send_bytes(waiter.frame(1, 12, _fetch_req("lp", 1, max_wait_ms=20000, min_bytes=1)))
    _produce(c, "lp", simple_batch(b"second"))
    part = waiter.read_response(1, 12).responses[0].partitions[0]
    assert [r.value for r in decode_records(bytes(part.records))] == [b"second"]
    # Answered because of the append, long before its 20 s wait would have run out.
    assert time.monotonic() - t0 < 15


def test_list_offsets_earliest_latest_and_max_timestamp(b):
    c = _client(b)
    _produce(c, "lo", simple_batch(b"a", b"b", timestamp_ms=1000))
    _produce(c, "lo", simple_batch(b"c", timestamp_ms=5000))
    _produce(c, "lo", simple_batch(b"d", timestamp_ms=2000))
    L = list_offsets.ListOffsetsRequest

    def ask(ts, version=8):
        r = c.request(2, version, L(replica_id=-1, topics=[L.ListOffsetsTopic(name="lo", partitions=[
            L.ListOffsetsPartition(partition_index=0, timestamp=ts)])]))
        p = r.topics[0].partitions[0]
        return p.error_code, p.offset, p.timestamp

    assert ask(-2) == (0, 0, -1)
    assert ask(-1) == (0, 4, -1)
    assert ask(-3) == (0, 2, 5000)
    assert ask(1500) == (0, 2, 5000)
    assert ask(6000) == (0, -1, -1)
    assert ask(-4) == (0, 0, -1)
    assert ask(-5, version=9)[1] == -1


@pytest.mark.parametrize("name,code", [("", 17), (".", 17), ("..", 17), ("a" * 250, 17), ("bad name", 17),
                                       ("ok.name_-1", 0)])
def test_topic_name_rules(b, name, code):
    c = _client(b)
    resp = c.request(19, 7, C(topics=[C.CreatableTopic(name=name, num_partitions=1, replication_factor=1)],
                              timeout_ms=1000))
    assert resp.topics[0].error_code == code


def test_create_topics_rules(b):
    c = _client(b)

    def create(**kw):
        args = dict(name="ct", num_partitions=2, replication_factor=1)
        args.update(kw)
        validate = args.pop("validate_only", False)
        return c.request(19, 7, C(topics=[C.CreatableTopic(**args)], timeout_ms=1000,
                                  validate_only=validate)).topics[0]

    assert create(validate_only=True).error_code == 0
    md = c.request(3, 12, metadata.MetadataRequest(topics=None)).topics
    assert md == []  # validate_only created nothing
    assert create(replication_factor=3).error_code == 38  # INVALID_REPLICATION_FACTOR
    assert create(num_partitions=0).error_code == 37  # INVALID_PARTITIONS
    assert create(configs=[C.CreatableTopicConfig(name="no.such", value="1")]).error_code == 40  # INVALID_CONFIG
    assert create(configs=[C.CreatableTopicConfig(name="cleanup.policy", value="shred")]).error_code == 40
    ok = create(replication_factor=-1, num_partitions=-1)
    assert ok.error_code == 0 and ok.num_partitions == 1 and ok.topic_id != uuid.UUID(int=0)
    assert create().error_code == 36  # TOPIC_ALREADY_EXISTS


def test_delete_topics_by_name_and_by_id_remove_the_data(b, tmp_path):
    c = _client(b)
    for name in ("del-a", "del-b"):
        _produce(c, name, simple_batch(b"x"))
    data = tmp_path / "data"
    assert (data / "del-a-0").exists() and (data / "del-b-0").exists()
    md = {t.name: t.topic_id for t in c.request(3, 12, metadata.MetadataRequest(topics=None)).topics}
    r = c.request(20, 6, D(topics=[D.DeleteTopicState(name=None, topic_id=md["del-b"]),
                                   D.DeleteTopicState(name="del-a"),
                                   D.DeleteTopicState(name=None, topic_id=uuid.uuid4()),
                                   D.DeleteTopicState(name="missing")], timeout_ms=1000))
    assert [x.error_code for x in r.responses] == [0, 0, 100, 3]  # UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION
    assert not (data / "del-a-0").exists() and not (data / "del-b-0").exists()
    assert c.request(3, 12, metadata.MetadataRequest(topics=None)).topics == []
    # A topic of the same name starts empty.
    assert _produce(c, "del-a", simple_batch(b"y")).base_offset == 0


def test_auto_creation_can_be_turned_off():
    with Broker(port=0, storage="memory", auto_create_topics_enable=False) as b:
        c = _client(b)
        r = c.request(3, 12, metadata.MetadataRequest(topics=[metadata.MetadataRequest.MetadataRequestTopic(
            name="nope")], allow_auto_topic_creation=True))
        assert r.topics[0].error_code == 3
        assert _produce(c, "nope", simple_batch(b"x"), create=False).error_code == 3
        assert r.controller_id == 0 and r.cluster_id


def test_produce_never_creates_a_topic(b):
    """As Kafka 4 (KafkaApis.handleProduceRequest): only Metadata auto-creates; Produce to a topic that does not
    exist is UNKNOWN_TOPIC_OR_PARTITION whatever its name, and leaves no topic behind."""
    c = _client(b)
    for name in ("never-made", "bad/name"):
        r = _produce(c, name, simple_batch(b"x"), create=False)
        assert (r.error_code, r.base_offset, r.log_start_offset) == (3, -1, -1)
    r = c.request(3, 12, metadata.MetadataRequest(topics=[metadata.MetadataRequest.MetadataRequestTopic(
        name="never-made")], allow_auto_topic_creation=False))
    assert r.topics[0].error_code == 3
