"""Fetch answers sent with sendfile (plaintext connections, segment storage): the bytes a client receives are
the stored batches, whole and in order, also when the socket takes only part of an answer at once (the
rest then goes through the transport) and when further answers are pipelined behind it. TLS and memory
storage keep the in-memory path; tests/integration/test_security_clients.py and the memory-storage suites cover them."""

from __future__ import annotations

import ssl

import pytest

from kbroker import Broker, server
from kbroker.security.certs import write_certs
from kbroker.records.builder import simple_batch
from kbroker.records.batch import iter_batches
from kbroker.records.record import decode_records
from kbroker.storage.file_region import FileRegion
from kbroker.storage.memory import MemoryLogStore
from kbroker.storage.segment import SegmentLogStore
from kbroker.storage.base import LogConfig
from kbroker.wire.messages import api_versions, delete_topics, fetch, produce
from kbroker.client import BlockingConnection
from support.topics import auto_create

sendfile_all = server._sendfile_all

P = produce.ProduceRequest
F = fetch.FetchRequest


def _append(log, values, base):
    batch = bytearray(simple_batch(*values, base_offset=base))
    log.append(batch, base, base + len(values) - 1, len(values))


def _bytes(chunks):
    return b"".join(bytes(c) for c in chunks)


def _records(data):
    data = bytes(data)
    return [r for pos, _h in iter_batches(data) for r in decode_records(data, pos)]


# -- the store -------------------------------------------------------------------------------------------

def test_regions_hold_the_same_bytes_as_a_read(tmp_path):
    store = SegmentLogStore(str(tmp_path))
    log = store.open_log("t", None, 0, LogConfig(segment_bytes=600))  # small segments: reads span files
    for i in range(20):
        _append(log, [f"v{i}-{j}".encode() * 5 for j in range(3)], i * 3)
    for offset in (0, 1, 7, 30, 59):
        for max_bytes in (1, 300, 1000, 1 << 20):
            regions = log.read_regions(offset, max_bytes)
            assert all(type(r) is FileRegion for r in regions)
            assert _bytes(regions) == _bytes(log.read(offset, max_bytes))
    assert log.read_regions(60, 1 << 20) == []
    # Each region knows the last offset in it (read_committed's aborted-transaction lookup needs it).
    regions = log.read_regions(0, 1 << 20)
    assert regions[-1].last_offset == 59
    store.close()


def test_regions_stop_before_max_offset(tmp_path):
    store = SegmentLogStore(str(tmp_path))
    log = store.open_log("t", None, 0, LogConfig())
    for i in range(5):
        _append(log, [b"a", b"b"], i * 2)
    regions = log.read_regions(0, 1 << 20, max_offset=6)  # batches at 0, 2, 4; the one at 6 starts too late
    assert [r.offset for r in _records(_bytes(regions))] == [0, 1, 2, 3, 4, 5]
    assert regions[-1].last_offset == 5
    store.close()


def test_a_store_without_files_has_no_regions():
    log = MemoryLogStore().open_log("t", None, 0, LogConfig())
    _append(log, [b"x"], 0)
    assert log.read_regions(0, 1 << 20) is None


# -- over a socket ---------------------------------------------------------------------------------------

@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", storage="segment") as broker:
        yield broker


def _fill(c, topic, batches, values_per_batch, size):
    auto_create(c, topic)
    sent = []
    for i in range(batches):
        values = [bytes([65 + (i + j) % 26]) * size for j in range(values_per_batch)]
        req = P(acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(name=topic, partition_data=[
            P.PartitionProduceData(index=0, records=bytes(simple_batch(*values)))])])
        assert c.request(0, 9, req).responses[0].partition_responses[0].error_code == 0
        sent += values
    return sent


def _fetch(topic, max_bytes, isolation=0):
    return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=isolation,
             topics=[F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
                 partition=0, fetch_offset=0, partition_max_bytes=max_bytes)])])


def test_a_large_answer_the_socket_cannot_take_at_once_arrives_whole_and_in_order(b, monkeypatch):
    calls = []

    def watched(fd, region):  # observe, do not change: how much of each region the socket took at once
        n = sendfile_all(fd, region)
        calls.append((n, region.size))
        return n

    monkeypatch.setattr(server, "_sendfile_all", watched)
    writer = BlockingConnection(b.host, b.port)
    sent = _fill(writer, "big", batches=24, values_per_batch=100, size=10_000)  # about 24 MB
    c = BlockingConnection(b.host, b.port)
    # Fetch, then ApiVersions, then Fetch read_committed, pipelined: the answers must come in this order.
    frames = c.frame(1, 12, _fetch("big", 64 << 20))
    frames += c.frame(18, 3, api_versions.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    frames += c.frame(1, 12, _fetch("big", 64 << 20, isolation=1))
    c.send_bytes(frames)  # the client checks each answer's correlation id against its requests in flight
    got = c.read_response(1, 12).responses[0].partitions[0]
    assert [r.value for r in _records(got.records)] == sent
    assert c.read_response(18, 3).error_code == 0
    again = c.read_response(1, 12).responses[0].partitions[0]
    assert again.last_stable_offset == len(sent) and again.aborted_transactions == []
    assert bytes(again.records) == bytes(got.records)
    # The first answer went out partly by sendfile and the rest through the transport (the kernel's
    # buffers hold a few MB, not 24).
    assert 0 < calls[0][0] < calls[0][1]


def test_many_small_answers_with_file_data_pipelined(b):
    writer = BlockingConnection(b.host, b.port)
    sent = _fill(writer, "small", batches=50, values_per_batch=2, size=10)
    c = BlockingConnection(b.host, b.port)
    frames = b""
    for offset in range(len(sent)):
        frames += c.frame(1, 12, F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
            F.FetchTopic(topic="small", partitions=[F.FetchPartition(partition=0, fetch_offset=offset,
                                                                     partition_max_bytes=60)])]))
    c.send_bytes(frames)  # one read on the broker side: the answers go out together
    for offset in range(len(sent)):
        part = c.read_response(1, 12).responses[0].partitions[0]
        recs = _records(part.records)
        assert recs[0].offset == offset - offset % 2 and recs[0].value == sent[offset - offset % 2]


def test_a_fetch_answer_leaves_before_a_pipelined_request_deletes_its_topic(b):
    writer = BlockingConnection(b.host, b.port)
    sent = _fill(writer, "doomed", batches=3, values_per_batch=10, size=5_000)
    c = BlockingConnection(b.host, b.port)
    frames = c.frame(1, 12, _fetch("doomed", 1 << 20))
    frames += c.frame(20, 6, delete_topics.DeleteTopicsRequest(
        topics=[delete_topics.DeleteTopicsRequest.DeleteTopicState(name="doomed")], timeout_ms=1000))
    c.send_bytes(frames)  # one read: both are handled in one turn of the loop
    part = c.read_response(1, 12).responses[0].partitions[0]
    assert [r.value for r in _records(part.records)] == sent
    assert c.read_response(20, 6).responses[0].error_code == 0


# -- over TLS: regions read into a buffer used again --------------------------------------------------------

@pytest.fixture
def tls_broker(tmp_path):
    certs = {k: str(v) for k, v in write_certs(tmp_path / "certs").items()}
    settings = {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", "ssl.keystore.type": "PEM",
                "ssl.keystore.location": certs["server.pem"], "ssl.truststore.location": certs["ca.pem"]}
    with Broker(port=0, data_dir=tmp_path / "data", storage="segment", settings=settings) as broker:
        yield broker, certs


def _tls_client(broker, certs) -> BlockingConnection:
    host, port = broker.listeners["SSL"].rsplit(":", 1)
    c = BlockingConnection(host, int(port))
    c.sock = ssl.create_default_context(cafile=certs["ca.pem"]).wrap_socket(c.sock, server_hostname="127.0.0.1")
    return c


def test_over_tls_stored_batches_arrive_whole_and_the_read_buffer_is_used_again(tls_broker, monkeypatch):
    b, certs = tls_broker
    buffers = []
    read_regions = server.KafkaConnection._read_regions

    def watched(self, pieces):  # observe which buffer each answer was read into
        out, buf = read_regions(self, pieces)
        buffers.append(buf)
        return out, buf

    monkeypatch.setattr(server.KafkaConnection, "_read_regions", watched)
    host, port = b.listeners["PLAINTEXT"].rsplit(":", 1)
    sent = _fill(BlockingConnection(host, int(port)), "tls", batches=8, values_per_batch=50, size=2_000)
    c = _tls_client(b, certs)
    frames = c.frame(1, 12, _fetch("tls", 1 << 20))
    frames += c.frame(18, 3, api_versions.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    c.send_bytes(frames)
    got = c.read_response(1, 12).responses[0].partitions[0]
    assert [r.value for r in _records(got.records)] == sent[:len(_records(got.records))] and len(got.records) > 0
    assert c.read_response(18, 3).error_code == 0
    for _ in range(3):  # one answer at a time: each is read into the same buffer
        again = c.request(1, 12, _fetch("tls", 1 << 20)).responses[0].partitions[0]
        assert bytes(again.records) == bytes(got.records)
    assert len(buffers) == 4 and buffers[0] is not None and all(buf is buffers[0] for buf in buffers)
