"""kbroker's Kafka client: the sans-IO protocol core byte by byte, then the async and blocking shells
against a running broker (pipelined requests, negotiation, admin operations, errors by Kafka's names)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from kbroker import Broker
from kbroker.client import BlockingClient, BlockingConnection, Client, ClientError, ClientProtocol, Connection
from kbroker.client.protocol import ProtocolError, negotiate
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import BY_KEY, api_versions, fetch, metadata, produce

AV = api_versions.ApiVersionsResponse


def _response_frame(api_key: int, version: int, cid: int, obj, flexible_header: bool) -> bytes:
    out = bytearray(struct.pack(">i", cid))
    if flexible_header:
        out.append(0)
    BY_KEY[api_key].RESPONSE_ENCODERS[version](obj, out)
    return struct.pack(">i", len(out)) + bytes(out)


# -- the protocol core, no sockets ----------------------------------------------------------------------

def test_request_header_v1_for_an_old_version_and_v2_for_a_flexible_one():
    p = ClientProtocol("cid")
    old = p.encode(3, 8, metadata.MetadataRequest(topics=None))
    new = p.encode(3, 9, metadata.MetadataRequest(topics=None))
    # size, api key, version, correlation id, client id; v2 adds an empty tagged-field section
    assert old[4:17] == struct.pack(">hhih", 3, 8, 1, 3) + b"cid"
    assert new[4:17] == struct.pack(">hhih", 3, 9, 2, 3) + b"cid" and new[17] == 0
    assert struct.unpack_from(">i", old)[0] == len(old) - 4
    assert [(f.correlation_id, f.version) for f in p.in_flight] == [(1, 8), (2, 9)]


def test_produce_with_acks_0_is_not_in_flight():
    p = ClientProtocol()
    p.encode(0, 9, produce.ProduceRequest(acks=0, timeout_ms=1, topic_data=[]))
    p.encode(0, 9, produce.ProduceRequest(acks=1, timeout_ms=1, topic_data=[]))
    assert [f.correlation_id for f in p.in_flight] == [2]


def test_answers_fed_whole_or_byte_by_byte_match_the_oldest_request():
    p = ClientProtocol()
    p.encode(18, 3, api_versions.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    p.encode(3, 12, metadata.MetadataRequest(topics=None))
    # ApiVersions v3's response header is v0 (KIP-511), Metadata v12's is v1.
    data = _response_frame(18, 3, 1, AV(error_code=0, api_keys=[]), False) + \
        _response_frame(3, 12, 2, metadata.MetadataResponse(brokers=[], topics=[], controller_id=7), True)
    for b in data:
        p.receive_data(bytes([b]))
    first = p.decode(p.next_frame())
    second = p.decode(p.next_frame())
    assert first.error_code == 0 and second.controller_id == 7
    assert p.next_frame() is None and not p.in_flight


def test_an_answer_out_of_step_or_with_trailing_bytes_is_a_protocol_error():
    p = ClientProtocol()
    p.encode(18, 0, api_versions.ApiVersionsRequest())
    p.receive_data(_response_frame(18, 0, 99, AV(error_code=0, api_keys=[]), False))
    with pytest.raises(ProtocolError, match="correlation id 99, expected 1"):
        p.decode(p.next_frame())
    p.encode(18, 0, api_versions.ApiVersionsRequest())
    frame = _response_frame(18, 0, 2, AV(error_code=0, api_keys=[]), False)
    p.receive_data(struct.pack(">i", len(frame) - 4 + 1) + frame[4:] + b"x")
    with pytest.raises(ProtocolError, match="1 trailing bytes"):
        p.decode(p.next_frame())
    p.receive_data(struct.pack(">i", -1))
    with pytest.raises(ProtocolError):
        p.next_frame()


def test_an_unsupported_api_versions_version_is_answered_in_v0():
    p = ClientProtocol()
    p.encode(18, 4, api_versions.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    body = AV(error_code=35, api_keys=[AV.ApiVersion(api_key=18, min_version=0, max_version=2)])
    p.receive_data(_response_frame(18, 0, 1, body, False))
    resp = p.decode(p.next_frame())
    assert resp.error_code == 35 and resp.api_keys[0].max_version == 2


def test_negotiation_takes_per_api_the_highest_version_both_know():
    ours_meta = BY_KEY[3].REQUEST_VERSIONS[1]
    resp = AV(error_code=0, api_keys=[
        AV.ApiVersion(api_key=3, min_version=0, max_version=ours_meta + 5),  # newer broker: our highest
        AV.ApiVersion(api_key=0, min_version=3, max_version=7),              # older broker: its highest
        AV.ApiVersion(api_key=1, min_version=99, max_version=120),           # nothing in common: left out
        AV.ApiVersion(api_key=9999, min_version=0, max_version=1),           # unknown to us: left out
    ])
    assert negotiate(resp) == {3: ours_meta, 0: 7}


def test_a_replica_fetch_is_expressible():
    F = fetch.FetchRequest
    req = F(replica_state=F.ReplicaState(replica_id=2, replica_epoch=5), max_wait_ms=500, min_bytes=1,
            topics=[F.FetchTopic(topic="t", partitions=[F.FetchPartition(partition=0, fetch_offset=10)])])
    frame = ClientProtocol().encode(1, 15, req)
    from kbroker.wire.header import body_offset
    body = frame[4:]
    decoded, _ = BY_KEY[1].REQUEST_DECODERS[15](memoryview(body), body_offset(body, True))
    assert (decoded.replica_state.replica_id, decoded.replica_state.replica_epoch) == (2, 5)
    old = ClientProtocol().encode(1, 12, F(replica_id=2, topics=[]))[4:]
    assert BY_KEY[1].REQUEST_DECODERS[12](memoryview(old), body_offset(old, True))[0].replica_id == 2


# -- against a running broker -----------------------------------------------------------------------------

@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data") as broker:
        yield broker


def test_many_requests_in_flight_on_one_async_connection(b):
    async def go():
        conn = await Connection.open(b.host, b.port)
        try:
            assert conn.version(3) == BY_KEY[3].REQUEST_VERSIONS[1]  # kbroker serves all we know
            reqs = [conn.send_nowait(3, metadata.MetadataRequest(topics=[]), v) for v in (0, 1, 4, 9, 12)] * 1
            reqs += [conn.send_nowait(18, api_versions.ApiVersionsRequest(), 0) for _ in range(50)]
            assert len(conn.protocol.in_flight) == 55  # all written before any answer was read
            answers = await asyncio.gather(*reqs)
            assert [a.brokers[0].port for a in answers[:5]] == [b.port] * 5
            assert all(a.error_code == 0 and a.api_keys for a in answers[5:])
        finally:
            await conn.close()
    asyncio.run(go())


def test_the_async_client_bootstraps_and_administers_topics(b):
    async def go():
        async with Client(f"127.0.0.1:1,{b.bootstrap_servers}") as c:  # the first server refuses
            assert c.controller_id in c.brokers
            await c.create_topic("a", 3)
            await c.create_topics({"b": {"partitions": 1}, "c": {"partitions": 2, "config": {"cleanup.policy": "compact"}}})
            assert await c.list_topics() == ["a", "b", "c"]
            with pytest.raises(ClientError) as e:
                await c.create_topic("a", 1)
            assert e.value.name == "TOPIC_ALREADY_EXISTS" and e.value.code == 36
            await c.create_partitions({"a": 5})
            md = await c.metadata(["a"])
            assert len(md.topics[0].partitions) == 5
            await c.delete_topics(["a", "b"])
            assert await c.list_topics() == ["c"]
            with pytest.raises(ClientError, match="UNKNOWN_TOPIC_OR_PARTITION"):
                await c.delete_topic("a")
    asyncio.run(go())


def test_a_failed_connection_fails_every_request_in_flight(b):
    async def go():
        conn = await Connection.open(b.host, b.port)
        frame_size_lie = struct.pack(">i", 10)  # a frame the broker cannot parse: it closes the connection
        answered = [conn.send_nowait(18, api_versions.ApiVersionsRequest(), 0) for _ in range(3)]
        conn._stream.transport.write(frame_size_lie + b"\x00" * 10)
        late = conn.send_nowait(18, api_versions.ApiVersionsRequest(), 0)  # in flight when the broker closes
        results = await asyncio.gather(*answered, late, return_exceptions=True)
        assert all(r.error_code == 0 for r in results[:3])
        assert isinstance(results[3], ConnectionError) and conn.closed
        with pytest.raises(ConnectionError):
            conn.send_nowait(18, api_versions.ApiVersionsRequest(), 0)
        await conn.close()
    asyncio.run(go())


def test_large_answers_are_received_whole_and_an_answer_kept_is_never_overwritten_by_the_next(b):
    """Fetch answers of hundreds of kilobytes arrive in many reads straight into buffers the connection uses
    again (a follower's replica fetches): the records of an answer the caller still holds stay as they were
    while later answers arrive, and once let go their buffer takes the next answer."""
    values = [bytes([i]) * 400_000 for i in (1, 2, 3)]

    async def go():
        conn = await Connection.open(b.host, b.port)
        try:
            F = fetch.FetchRequest

            async def fetch_at(offset: int):
                resp = await conn.send(1, F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                                            isolation_level=0, topics=[F.FetchTopic(topic="big", partitions=[
                                                F.FetchPartition(partition=0, fetch_offset=offset,
                                                                 partition_max_bytes=1)])]), 12)
                part = resp.responses[0].partitions[0]
                assert part.error_code == 0
                return part.records

            kept = await fetch_at(0)
            first = bytes(kept)
            assert values[0] in first and len(first) > 400_000
            for offset in (1, 2, 1, 2):
                other = await fetch_at(offset)
                assert values[offset] in bytes(other)
                assert bytes(kept) == first  # not overwritten by the answers that came after it
                del other
            pool = conn._stream.reader._pool
            assert pool.kept_bytes > 0  # the answers let go went back for the next ones
        finally:
            await conn.close()

    with BlockingClient(b.bootstrap_servers) as c:
        c.create_topic("big", 1)
    producer = BlockingConnection(b.host, b.port, negotiate_versions=True)
    with producer:
        P = produce.ProduceRequest
        for v in values:
            batch = bytes(simple_batch(v))
            resp = producer.send(0, P(acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(name="big", partition_data=[
                P.PartitionProduceData(index=0, records=batch)])]), version=9)
            assert resp.responses[0].partition_responses[0].error_code == 0
    asyncio.run(go())


def test_the_blocking_client_works_inside_a_running_loop_too(b):
    async def inside():
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("x", 2)
            return c.list_topics()
    with BlockingClient(b.bootstrap_servers, client_id="sync") as c:
        assert c.list_topics() == []
    assert asyncio.run(inside()) == ["x"]


def test_the_blocking_connection_negotiates_and_sends_exact_frames(b):
    with BlockingConnection(b.host, b.port, negotiate_versions=True) as c:
        assert c.version(3, at_most=4) == 4
        assert c.send(3, metadata.MetadataRequest(topics=[]), version=4).brokers[0].port == b.port
        frames = c.frame(18, 0, api_versions.ApiVersionsRequest()) + c.frame(3, 1, metadata.MetadataRequest(topics=[]))
        c.send_bytes(frames)
        assert c.read_response(18).error_code == 0
        md = c.read_response(3)
        assert md.controller_id == md.brokers[0].node_id
