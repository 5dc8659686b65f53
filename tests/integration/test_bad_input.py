"""Bad input over a raw socket: the broker answers as Kafka does or closes that one connection, and keeps
serving everybody else and every stored batch."""

from __future__ import annotations

import socket
import struct

import pytest

from kbroker import Broker
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import api_versions, fetch, metadata, produce
from kbroker.client import BlockingConnection
from support.topics import auto_create


@pytest.fixture
def b():
    with Broker(port=0, storage="memory", socket_request_max_bytes=1 << 20) as broker:
        yield broker


def _client(b) -> BlockingConnection:
    return BlockingConnection(b.host, b.port)


def _healthy(b) -> None:
    """Another connection still gets answers."""
    c = _client(b)
    resp = c.request(18, 0, api_versions.ApiVersionsRequest())
    assert resp.error_code == 0
    c.close()


def test_oversized_frame_closes_connection(b):
    c = _client(b)
    c.send_bytes(struct.pack(">i", (1 << 20) + 1) + b"\x00" * 100)
    assert c.is_closed()
    _healthy(b)


def test_negative_frame_size_closes_connection(b):
    c = _client(b)
    c.send_bytes(struct.pack(">i", -5))
    assert c.is_closed()
    _healthy(b)


def test_truncated_header_closes_connection(b):
    c = _client(b)
    c.send_bytes(struct.pack(">i", 3) + b"\x00\x12\x00")
    assert c.is_closed()
    _healthy(b)


def test_unknown_api_key_closes_connection(b):
    c = _client(b)
    body = struct.pack(">hhih", 9999, 0, 1, -1)
    c.send_bytes(struct.pack(">i", len(body)) + body)
    assert c.is_closed()
    _healthy(b)


def test_unsupported_version_of_other_api_closes_connection(b):
    c = _client(b)
    body = struct.pack(">hhih", 3, 99, 1, -1)
    c.send_bytes(struct.pack(">i", len(body)) + body)
    assert c.is_closed()
    _healthy(b)


def test_malformed_body_closes_connection(b):
    c = _client(b)
    # Metadata v1 whose topic array claims a million entries.
    body = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 1_000_000) + b"\x00\x01a"
    c.send_bytes(struct.pack(">i", len(body)) + body)
    assert c.is_closed()
    _healthy(b)


def test_lying_string_length_closes_connection(b):
    c = _client(b)
    body = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 1) + struct.pack(">h", 5000) + b"abc"
    c.send_bytes(struct.pack(">i", len(body)) + body)
    assert c.is_closed()
    _healthy(b)


def test_api_versions_too_new_gets_unsupported_version_with_v0_body(b):
    c = _client(b)
    body = struct.pack(">hhih", 18, 77, 42, 3) + b"raw"
    c.send_bytes(struct.pack(">i", len(body)) + body)
    frame = c.read_frame()
    # Response header v0: correlation id only, then a v0 ApiVersions body.
    (cid,) = struct.unpack_from(">i", frame, 0)
    assert cid == 42
    resp, end = api_versions.RESPONSE_DECODERS[0](memoryview(frame), 4)
    assert end == len(frame)
    assert resp.error_code == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, 0, 5)]
    # The connection stays usable: the client retries at a version we speak.
    assert c.request(18, 3, api_versions.ApiVersionsRequest(client_software_name="x",
                                                            client_software_version="1")).error_code == 0


def test_api_versions_v3_response_header_is_v0(b):
    c = _client(b)
    c.send_bytes(c.frame(18, 3, api_versions.ApiVersionsRequest(client_software_name="raw-client",
                                                                client_software_version="1.0")))
    frame = c.read_frame()
    # No tagged-field byte after the correlation id (KIP-511): the body starts at byte 4.
    resp, end = api_versions.RESPONSE_DECODERS[3](memoryview(frame), 4)
    assert end == len(frame) and resp.error_code == 0


def test_api_versions_bad_software_name_is_invalid_request(b):
    c = _client(b)
    resp = c.request(18, 3, api_versions.ApiVersionsRequest(client_software_name="bad name!",
                                                            client_software_version="1"))
    assert resp.error_code == 42 and resp.api_keys == []  # as Kafka: the error alone


def test_corrupt_batch_is_refused_and_nothing_is_stored(b):
    c = _client(b)
    batch = bytearray(simple_batch(b"v", keys=[b"k"]))
    batch[-1] ^= 0xFF  # break the CRC
    auto_create(c, "corrupt")
    req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name="corrupt", partition_data=[produce.ProduceRequest.PartitionProduceData(index=0, records=bytes(batch))])])
    resp = c.request(0, 8, req)
    assert resp.responses[0].partition_responses[0].error_code == 2  # CORRUPT_MESSAGE
    good = simple_batch(b"v", keys=[b"k"])
    req.topic_data[0].partition_data[0].records = good
    ok = c.request(0, 8, req).responses[0].partition_responses[0]
    assert ok.error_code == 0 and ok.base_offset == 0


def test_old_magic_is_invalid_record(b):
    c = _client(b)
    batch = bytearray(simple_batch(b"v", keys=[b"k"]))
    batch[16] = 1  # magic byte
    auto_create(c, "magic")
    req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name="magic", partition_data=[produce.ProduceRequest.PartitionProduceData(index=0, records=bytes(batch))])])
    assert c.request(0, 8, req).responses[0].partition_responses[0].error_code == 87  # INVALID_RECORD


def test_produce_v2_is_unsupported_version(b):
    c = _client(b)
    req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name="old", partition_data=[produce.ProduceRequest.PartitionProduceData(index=0, records=b"")])])
    assert c.request(0, 2, req).responses[0].partition_responses[0].error_code == 35


def test_client_that_disconnects_mid_request_affects_nobody(b):
    c = _client(b)
    frame = c.frame(3, 1, metadata.MetadataRequest(topics=None))
    c.send_bytes(frame[: len(frame) // 2])
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    _healthy(b)


def test_client_that_never_reads_does_not_stall_others(b):
    slow = _client(b)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Fill a topic, then pipeline many large fetches without reading any answer.
    c = _client(b)
    value = b"x" * 100_000
    auto_create(c, "big")
    req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name="big", partition_data=[produce.ProduceRequest.PartitionProduceData(
            index=0, records=simple_batch(*[value] * 5, keys=[b"k"] * 5))])])
    assert c.request(0, 8, req).responses[0].partition_responses[0].error_code == 0
    fetch_req = fetch.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=50 << 20, topics=[
        fetch.FetchRequest.FetchTopic(topic="big", partitions=[fetch.FetchRequest.FetchPartition(
            partition=0, fetch_offset=0, partition_max_bytes=10 << 20)])])
    slow.sock.setblocking(False)
    sent = 0
    for _ in range(200):
        try:
            slow.sock.send(slow.frame(1, 8, fetch_req))
            sent += 1
        except BlockingIOError:
            break
    # Everyone else is still served promptly.
    _healthy(b)
    resp = c.request(1, 8, fetch_req)
    assert resp.responses[0].partitions[0].error_code == 0
    slow.close()


def test_many_bad_connections_then_data_is_intact(b):
    c = _client(b)
    auto_create(c, "intact")
    req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
        name="intact", partition_data=[produce.ProduceRequest.PartitionProduceData(
            index=0, records=simple_batch(b"v", keys=[b"k"]))])])
    assert c.request(0, 8, req).responses[0].partition_responses[0].error_code == 0
    import random

    rnd = random.Random(7)
    for _ in range(50):
        bad = _client(b)
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
        bad.send_bytes(struct.pack(">i", len(junk)) + junk)
        bad.close()
    fetch_req = fetch.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
        fetch.FetchRequest.FetchTopic(topic="intact", partitions=[fetch.FetchRequest.FetchPartition(
            partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
    part = c.request(1, 8, fetch_req).responses[0].partitions[0]
    # Stored as sent, but for the partition leader epoch the broker writes into bytes 12-15.
    assert part.error_code == 0 and bytes(part.records) == bytes(simple_batch(b"v", keys=[b"k"],
                                                                              partition_leader_epoch=0))
