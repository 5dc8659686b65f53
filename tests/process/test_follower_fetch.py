"""Fetching from the closest replica (KIP-392) on a cluster of three brokers in racks r0, r1, r2, with
``replica.selector.class`` = RackAwareReplicaSelector: a confluent-kafka consumer with ``client.rack`` reads every
record, and the follower in its rack served them (each broker's BytesOut for the topic: only consumers' fetches
reach a follower); without a selector the leader serves. The wire rules with exact requests: the leader answers
``preferred_read_replica`` with no records; a follower serves a v11+ consumer up to its high watermark, answers
OFFSET_OUT_OF_RANGE past its log end and FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for another epoch, and
refuses v10 consumers and ListOffsets (NOT_LEADER_OR_FOLLOWER)."""

from __future__ import annotations

import time
import uuid

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.replica_selector import RACK_AWARE
from kbroker.wire.messages import fetch as F, list_offsets as L

TIMEOUT_S = 30
RECORDS = 200


def _cluster(selector: bool) -> Broker:
    settings = {"replica.selector.class": RACK_AWARE} if selector else {}
    return Broker(brokers=3, rack="r0,r1,r2", settings=settings)


@pytest.fixture(scope="module")
def racked():
    with _cluster(selector=True) as b:
        yield b


def _topic_on(b: Broker, replicas: list[int]) -> str:
    """A topic of one partition with these replicas (the first leads), RECORDS records produced with
    acks=all, and every replica in the ISR."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"closest-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[replicas])])[topic].result(TIMEOUT_S)
    p = Producer({"bootstrap.servers": b.bootstrap_servers, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        p.produce(topic, value=b"v%d" % i, key=b"k%d" % i)
    assert p.flush(TIMEOUT_S) == 0
    _wait_replicated(b, topic, replicas)
    return topic


def _wait_replicated(b: Broker, topic: str, replicas: list[int]) -> None:
    assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)
    # the followers have fetched past the last record (the leader knows they hold it), and have been told the
    # high watermark (by the answer to their next fetch)
    servers = b.cluster.servers
    assert b.call(b.cluster.wait_for, lambda: all(
        s.log_end_offset >= RECORDS
        for s in servers[replicas[0]].state.topics.get(topic).partitions[0].followers.values()) and all(
        servers[n].state.topics.get(topic).partitions[0].high_watermark == RECORDS for n in replicas), TIMEOUT_S)


def _consume_all(b: Broker, topic: str, rack: str | None) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    conf = {"bootstrap.servers": b.bootstrap_servers, "group.id": f"g-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False, "fetch.wait.max.ms": 100}
    if rack is not None:
        conf["client.rack"] = rack
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < RECORDS and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m.value())
        return out
    finally:
        c.close()


def _bytes_out(b: Broker, topic: str) -> dict[int, int]:
    def read():
        out = {}
        for node, server in b.cluster.servers.items():
            t = server.metrics.topics.get(topic)
            out[node] = t.bytes_out if t is not None else 0
        return out
    return b.call(read)


def test_a_consumer_reads_everything_from_the_follower_in_its_rack(racked):
    topic = _topic_on(racked, [0, 1, 2])
    before = _bytes_out(racked, topic)
    values = _consume_all(racked, topic, rack="r2")
    assert values == [b"v%d" % i for i in range(RECORDS)]
    served = {n: v - before[n] for n, v in _bytes_out(racked, topic).items()}
    assert served[2] > 0, served  # the follower in r2 served the consumer
    assert served[1] == 0, served  # the follower in r1 served nobody


def test_a_consumer_in_the_leaders_rack_reads_from_the_leader(racked):
    topic = _topic_on(racked, [1, 2, 0])
    before = _bytes_out(racked, topic)
    assert _consume_all(racked, topic, rack="r1") == [b"v%d" % i for i in range(RECORDS)]
    served = {n: v - before[n] for n, v in _bytes_out(racked, topic).items()}
    assert served[2] == served[0] == 0, served


def test_without_a_replica_selector_the_leader_serves():
    with _cluster(selector=False) as b:
        topic = _topic_on(b, [0, 1, 2])
        assert _consume_all(b, topic, rack="r2") == [b"v%d" % i for i in range(RECORDS)]
        assert _bytes_out(b, topic)[2] == 0


def _address(b: Broker, node: int) -> tuple[str, int]:
    server = b.cluster.servers[node]
    return server.host, server.port


def _fetch(b: Broker, node: int, topic: str, version: int, offset: int, rack: str = "", epoch: int = -1):
    c = BlockingConnection(*_address(b, node))
    try:
        req = F.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, rack_id=rack,
                             topics=[F.FetchRequest.FetchTopic(topic=topic, partitions=[F.FetchRequest.FetchPartition(
                                 partition=0, fetch_offset=offset, current_leader_epoch=epoch,
                                 partition_max_bytes=1 << 20)])])
        return c.request(1, version, req).responses[0].partitions[0]
    finally:
        c.close()


def _epoch(b: Broker, topic: str) -> int:
    return b.call(lambda: b.cluster.controller.topic(topic).partitions[0].leader_epoch)


def test_the_wire_rules_of_fetching_from_a_follower(racked):
    topic = _topic_on(racked, [0, 1, 2])
    racked.move_leader(topic, 0, 1)  # leader epochs 1 and 2: an older one can be sent
    racked.move_leader(topic, 0, 0)
    _wait_replicated(racked, topic, [0, 1, 2])
    epoch = _epoch(racked, topic)
    assert epoch == 2
    # the leader names the replica in the consumer's rack, with no records
    r = _fetch(racked, 0, topic, 11, 0, rack="r2", epoch=epoch)
    assert (r.error_code, r.preferred_read_replica, bytes(r.records or b"")) == (0, 2, b"")
    assert r.high_watermark == RECORDS
    # a consumer in no rack, or in the leader's, reads from the leader
    for rack in ("", "r0", "elsewhere"):
        r = _fetch(racked, 0, topic, 11, 0, rack=rack, epoch=epoch)
        assert r.preferred_read_replica == -1 and r.error_code == 0 and len(_records(r)) > 0
    # the follower serves a v11+ consumer up to its high watermark
    r = _fetch(racked, 2, topic, 11, 0, rack="r2", epoch=epoch)
    assert r.error_code == 0 and r.high_watermark == RECORDS and len(_records(r)) > 0
    # at its high watermark: nothing yet; past its log end: out of range (the consumer goes back to the leader)
    assert _fetch(racked, 2, topic, 12, RECORDS).error_code == 0
    assert _fetch(racked, 2, topic, 12, RECORDS + 5).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    # its leader epoch is checked as the leader's is
    assert _fetch(racked, 2, topic, 12, 0, epoch=epoch - 1).error_code == ErrorCode.FENCED_LEADER_EPOCH
    assert _fetch(racked, 2, topic, 12, 0, epoch=epoch + 1).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    # before v11 a consumer has no client metadata: only the leader serves it
    assert _fetch(racked, 2, topic, 10, 0).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # ListOffsets stays with the leader
    c = BlockingConnection(*_address(racked, 2))
    try:
        lo = c.request(2, 5, L.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
            L.ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                L.ListOffsetsRequest.ListOffsetsPartition(partition_index=0, timestamp=-1)])]))
        assert lo.topics[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    finally:
        c.close()


def _records(r) -> bytes:
    recs = r.records
    if recs is None:
        return b""
    if isinstance(recs, (bytes, bytearray, memoryview)):
        return bytes(recs)
    return b"".join(bytes(x) for x in recs)
