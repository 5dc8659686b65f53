"""Fetch requests a careless or hostile client sends, over a raw socket (issue 16): every partition in error
under a long poll, a topic deleted while a fetch waits on it, an answer the client asks to be huge, the same
partition named many times, and index files whose entries lie. The broker answers as Kafka does, with whole
batches only, and keeps the connection."""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.records.batch import iter_batches
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import api_versions, create_topics, delete_topics, fetch, metadata, produce
from kbroker.client import BlockingConnection

F = fetch.FetchRequest
FOREVER_MS = 30_000  # a long poll far longer than any assertion below waits


def _client(b) -> BlockingConnection:
    return BlockingConnection(b.host, b.port, timeout_s=20)


def _create(c: BlockingConnection, name: str, partitions: int = 1, configs: dict | None = None):
    C = create_topics.CreateTopicsRequest
    cfgs = [C.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()]
    resp = c.request(19, 4, C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1,
                                                       assignments=[], configs=cfgs)], timeout_ms=5000))
    assert resp.topics[0].error_code == 0, resp


def _produce(c: BlockingConnection, topic: str, batch, partition: int = 0) -> int:
    P = produce.ProduceRequest
    resp = c.request(0, 7, P(acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.PartitionProduceData(index=partition, records=bytes(batch))])]))
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == 0, part
    return part.base_offset


def _topic_id(c: BlockingConnection, topic: str) -> uuid.UUID:
    M = metadata.MetadataRequest
    resp = c.request(3, 12, M(topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False))
    return resp.topics[0].topic_id


def _fetch(topic="", topic_id=None, parts=((0, 0),), max_wait_ms=0, min_bytes=1, max_bytes=1 << 30,
           partition_max_bytes=1 << 30):
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes, isolation_level=0,
             session_id=0, session_epoch=-1, topics=[F.FetchTopic(
                 topic=topic, topic_id=topic_id or uuid.UUID(int=0),
                 partitions=[F.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=partition_max_bytes,
                                              current_leader_epoch=-1, log_start_offset=-1)
                             for p, o in parts])],
             forgotten_topics_data=[], rack_id="")


def _timed(c: BlockingConnection, version: int, req):
    start = time.monotonic()
    resp = c.request(1, version, req)
    return resp, time.monotonic() - start


def _still_serves(c: BlockingConnection) -> None:
    assert c.request(18, 0, api_versions.ApiVersionsRequest()).error_code == 0


def _batches(records) -> list:
    """(base offset, last offset) of every batch; fails unless ``records`` is whole batches back to back."""
    data = bytes(records)
    out = []
    end = 0
    for pos, h in iter_batches(data):
        out.append((h.base_offset, h.last_offset))
        end = pos + h.batch_length + 12
    assert end == len(data), f"{len(data) - end} bytes after the last whole batch"
    return out


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data") as broker:
        yield broker


# -- every partition in error, under a long poll -------------------------------------------------------------


def test_unknown_topic_under_a_long_poll_is_answered_at_once(b):
    c = _client(b)
    resp, took = _timed(c, 11, _fetch(topic="no-such-topic", max_wait_ms=FOREVER_MS))
    p = resp.responses[0].partitions[0]
    assert p.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert took < 5, took  # Kafka: nothing readable to wait for, so no wait
    _still_serves(c)


def test_unknown_topic_id_under_a_long_poll_is_answered_at_once(b):
    c = _client(b)
    resp, took = _timed(c, 13, _fetch(topic_id=uuid.uuid4(), max_wait_ms=FOREVER_MS))
    assert resp.responses[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
    assert took < 5, took
    _still_serves(c)


def test_partition_index_out_of_range_under_a_long_poll_is_answered_at_once(b, topic_name):
    c = _client(b)
    _create(c, topic_name, partitions=2)
    resp, took = _timed(c, 11, _fetch(topic=topic_name, parts=((2, 0), (-1, 0)), max_wait_ms=FOREVER_MS))
    assert [p.error_code for p in resp.responses[0].partitions] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] * 2
    assert took < 5, took
    _still_serves(c)


def test_a_readable_partition_in_error_ends_the_long_poll(b, topic_name):
    """Kafka's ReplicaManager answers at once when reading a partition gave an error (here
    OFFSET_OUT_OF_RANGE), even if others have nothing yet."""
    c = _client(b)
    _create(c, topic_name, partitions=2)
    resp, took = _timed(c, 11, _fetch(topic=topic_name, parts=((0, 0), (1, 99)), max_wait_ms=FOREVER_MS))
    assert [p.error_code for p in resp.responses[0].partitions] == [0, ErrorCode.OFFSET_OUT_OF_RANGE]
    assert took < 5, took


def test_a_topic_deleted_while_a_fetch_waits_on_it_is_answered_with_an_error(b, topic_name):
    waiting = _client(b)
    admin = _client(b)
    _create(admin, topic_name)
    _produce(admin, topic_name, simple_batch(b"x"))
    waiting.send_bytes(waiting.frame(1, 11, _fetch(topic=topic_name, parts=((0, 1),), max_wait_ms=FOREVER_MS)))
    # The wait is registered once the broker answers a later request on another connection... and the fetch
    # has not been answered: its partition has nothing past offset 1.
    _still_serves(admin)
    D = delete_topics.DeleteTopicsRequest
    start = time.monotonic()
    resp = admin.request(20, 4, D(topic_names=[topic_name], timeout_ms=5000))
    assert resp.responses[0].error_code == 0
    answer = waiting.read_response(1, 11)
    assert time.monotonic() - start < 5
    assert answer.responses[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    _still_serves(waiting)


def test_a_topic_deleted_while_a_fetch_by_id_waits_on_it_is_answered_with_an_error(b, topic_name):
    waiting = _client(b)
    admin = _client(b)
    _create(admin, topic_name)
    tid = _topic_id(admin, topic_name)
    waiting.send_bytes(waiting.frame(1, 13, _fetch(topic_id=tid, parts=((0, 0),), max_wait_ms=FOREVER_MS)))
    _still_serves(admin)
    D = delete_topics.DeleteTopicsRequest
    assert admin.request(20, 4, D(topic_names=[topic_name], timeout_ms=5000)).responses[0].error_code == 0
    answer = waiting.read_response(1, 13)
    assert answer.responses[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
    _still_serves(waiting)


# -- answers bounded by fetch.max.bytes, duplicates collapsed --------------------------------------------------

BIG = 100_000  # bytes of value per batch


def _fill(c, topic, batches: int) -> None:
    for i in range(batches):
        _produce(c, topic, simple_batch(os.urandom(BIG)))


def test_an_answer_is_capped_by_the_brokers_fetch_max_bytes(tmp_path, topic_name):
    with Broker(port=0, data_dir=tmp_path / "data", settings={"fetch.max.bytes": "1048576"}) as b:
        c = _client(b)
        _create(c, topic_name)
        _fill(c, topic_name, 30)  # ~3 MB
        resp = c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1, partition_max_bytes=2**31 - 1))
        records = resp.responses[0].partitions[0].records
        assert 900_000 < len(records) <= 1_048_576, len(records)
        got = _batches(records)
        assert got[0][0] == 0 and [b for b, _ in got] == list(range(len(got)))


def test_one_batch_larger_than_fetch_max_bytes_is_still_returned_whole(tmp_path, topic_name):
    """KIP-74: at least one batch, so a consumer always makes progress; then nothing more."""
    with Broker(port=0, data_dir=tmp_path / "data", settings={"fetch.max.bytes": "50000"}) as b:
        c = _client(b)
        _create(c, topic_name, partitions=2)
        _fill(c, topic_name, 3)
        _produce(c, topic_name, simple_batch(b"small"), partition=1)
        resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, 0), (1, 0)), max_bytes=2**31 - 1))
        p0, p1 = resp.responses[0].partitions
        assert _batches(p0.records) == [(0, 0)]
        assert len(p1.records) == 0  # the answer is full


def test_a_partition_named_many_times_gets_one_entry(b, topic_name):
    """Kafka keys a request's partitions in a map: one entry per partition, in the place of its first
    mention, with the fetch position of its last."""
    c = _client(b)
    _create(c, topic_name)
    _fill(c, topic_name, 5)
    parts = [(0, 0)] * 7 + [(0, 3)]
    resp = c.request(1, 11, _fetch(topic=topic_name, parts=parts, max_bytes=2**31 - 1))
    assert len(resp.responses) == 1
    (p,) = resp.responses[0].partitions
    assert _batches(p.records) == [(3, 3), (4, 4)]


def test_a_topic_named_twice_gets_its_partitions_once(b, topic_name):
    c = _client(b)
    _create(c, topic_name)
    _fill(c, topic_name, 2)
    req = _fetch(topic=topic_name, max_bytes=2**31 - 1)
    req.topics.append(req.topics[0])
    resp = c.request(1, 11, req)
    assert sum(len(t.partitions) for t in resp.responses) == 1
    assert _batches(resp.responses[0].partitions[0].records) == [(0, 0), (1, 1)]


# -- unsent answers held per connection -------------------------------------------------------------------


def _status_bytes(pid: int, field: str) -> int:
    """A size from /proc/<pid>/status (VmHWM: the peak RSS; RssAnon: the anonymous part of the RSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def _peak_rss_bytes(pid: int) -> int:
    return _status_bytes(pid, "VmHWM")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the broker's peak RSS from /proc")
def test_a_client_that_pipelines_fetches_and_never_reads_holds_at_most_fetch_max_bytes(tmp_path, topic_name):
    """32 pipelined Fetch requests for a 20 MB partition from a client that reads nothing: each answer is
    capped at fetch.max.bytes (1 MiB here), and the broker stops answering that connection once an answer is
    waiting for the socket (the part the socket did not take is read into memory), so its peak memory grows
    by about one capped answer."""
    from support.brokerproc import BrokerProcess

    with BrokerProcess(tmp_path / "data", "--set", "fetch.max.bytes=1048576") as proc:
        b = type("Addr", (), {"host": proc.host, "port": proc.port})
        c = _client(b)
        _create(c, topic_name)
        _fill(c, topic_name, 200)  # 20 MB
        warm = c.request(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1))
        assert 900_000 < len(warm.responses[0].partitions[0].records) <= 1_048_576
        before = _peak_rss_bytes(proc.proc.pid)
        hog = BlockingConnection(proc.host, proc.port)
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frames = b"".join(hog.frame(1, 11, _fetch(topic=topic_name, max_bytes=2**31 - 1)) for _ in range(32))
        hog.send_bytes(frames)
        # Two round trips on another connection: the broker has read the hog's frames by then.
        _still_serves(c)
        _still_serves(c)
        grown = _peak_rss_bytes(proc.proc.pid) - before
        assert grown < 8_000_000, f"peak RSS grew by {grown / 1e6:.1f} MB"
        hog.close()


def test_list_offsets_by_timestamp_over_a_batch_that_does_not_decompress_answers_corrupt_message():
    """A snappy batch whose compressed records are garbage under a valid CRC, in the log (a client's produce
    of it is refused since records/validation.py, test_compressed_validation.py; a log written before, or a
    leader's, may hold one): a ListOffsets by timestamp that must decode it answers CORRUPT_MESSAGE for that
    partition (Kafka's mapping of a CorruptRecordException) and the connection stays usable, instead of the
    handler failing and the connection closing (found by the data-path fuzz test)."""
    from kbroker.records.batch import CRC_OFFSET, RECORDS_OFFSET, compute_crc, read_header
    from kbroker.records.compression import SNAPPY
    from kbroker.records.record import Record
    from kbroker.records.builder import build_batch
    from kbroker.wire.messages import list_offsets

    now = int(time.time() * 1000)
    batch = build_batch([Record(i, now + i, None, b"v" * 200) for i in range(20)], compression=SNAPPY)
    for i in range(RECORDS_OFFSET + 20, len(batch)):  # past the xerial header: the blocks themselves
        batch[i] ^= 0x5A
    header = read_header(batch)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch, 0, header.batch_length + 12))
    L = list_offsets.ListOffsetsRequest
    with Broker(port=0) as b:
        c = _client(b)
        topic = f"corrupt-{uuid.uuid4().hex[:8]}"
        _create(c, topic)
        b.call(lambda: b.state.topics.get(topic).partitions[0].log.append_as_follower(batch))  # as replicated
        for _ in range(2):  # answered, and the connection still answers
            r = c.request(2, 7, L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
                name=topic, partitions=[L.ListOffsetsPartition(partition_index=0, timestamp=now + 5)])]))
            part = r.topics[0].partitions[0]
            assert (part.error_code, part.offset) == (ErrorCode.CORRUPT_MESSAGE, -1)
        c.close()
