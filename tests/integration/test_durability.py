"""Durability: when appends are fsynced (the flush policy), what a full disk or an I/O error does to a
produce, and what start-up says after a crash.

fsyncs are counted through the segment store's seam (``log_segment._fdatasync``) and faults injected
through its write seam (``log_segment._write``), under a real broker answering real Produce requests.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

import pytest

from support.brokerproc import BrokerProcess
from kbroker import Broker
from kbroker.records import Record, build_batch, crc_matches, iter_batches
from kbroker.storage import log_segment
from kbroker.wire.messages import produce
from kbroker.client import BlockingConnection

STORAGE_ERROR = 56  # KAFKA_STORAGE_ERROR


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Syncs:
    """Counts the flush policy's fdatasyncs (all of them go through the seam)."""

    def __init__(self, monkeypatch):
        self.count = 0
        self.fail = 0  # how many of the next calls raise EIO
        self._lock = threading.Lock()
        real = log_segment._fdatasync

        def counting(fd):
            with self._lock:
                if self.fail:
                    self.fail -= 1
                    raise OSError(errno.EIO, "Input/output error")
                self.count += 1
            return real(fd)

        monkeypatch.setattr(log_segment, "_fdatasync", counting)


@pytest.fixture
def syncs(monkeypatch):
    return Syncs(monkeypatch)


def produce_raw(client: BlockingConnection, topic: str, values_by_partition: dict[int, list[bytes]], acks: int = -1):
    """One Produce v9 request; returns {partition: (error code, base offset)}."""
    data = []
    for partition, values in values_by_partition.items():
        batch = build_batch([Record(i, int(time.time() * 1000), b"k%d" % i, v) for i, v in enumerate(values)])
        data.append(produce.ProduceRequest.PartitionProduceData(index=partition, records=bytes(batch)))
    req = produce.ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[
        produce.ProduceRequest.TopicProduceData(name=topic, partition_data=data)])
    resp = client.request(0, 9, req)
    return {p.index: (p.error_code, p.base_offset) for p in resp.responses[0].partition_responses}


def create(b, topic: str, partitions: int = 1, **configs):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    for f in admin.create_topics([NewTopic(topic, partitions, 1, config={k.replace("_", "."): str(v)
                                                                          for k, v in configs.items()})]).values():
        f.result(10)


def consume_all(bootstrap: str, topic: str, partition: int, count: int) -> list[tuple[int, bytes]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    out = []
    deadline = time.monotonic() + 15
    try:
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(500, 0.2):
                assert not m.error(), m.error()
                out.append((m.offset(), m.value()))
    finally:
        c.close()
    return out


# -- the flush policy ---------------------------------------------------------------------------------


def test_fsync_always_syncs_every_append_before_answering(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data", fsync="always") as b:
        create(b, "always")
        client = BlockingConnection(b.host, b.port)
        for i in range(10):
            assert produce_raw(client, "always", {0: [b"v%d" % i, b"w"]}) == {0: (0, 2 * i)}
            assert syncs.count == i + 1  # already synced when the answer came
        client.close()


def test_fsync_never_leaves_appends_to_the_os(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data", fsync="never") as b:
        create(b, "never")
        client = BlockingConnection(b.host, b.port)
        for i in range(10):
            produce_raw(client, "never", {0: [b"v"]})
        b.call(b.state.log_manager.run_flush_once)
        assert syncs.count == 0
        client.close()


def test_fsync_interval_syncs_about_once_a_second_not_per_append(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data", fsync="interval") as b:
        create(b, "interval")
        client = BlockingConnection(b.host, b.port)
        for i in range(20):
            produce_raw(client, "interval", {0: [b"v"]})
        assert syncs.count < 20
        # The appends stopped; the flush task syncs what is left within about a second.
        wait_for(lambda: b.call(lambda: b.state.topics.get("interval").partitions[0].log.store._unflushed_records) == 0,
                 what="the interval flush")
        client.close()


def test_topic_flush_messages_syncs_every_n_records(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        create(b, "every-five", flush_messages=5)
        client = BlockingConnection(b.host, b.port)
        for i in range(12):
            produce_raw(client, "every-five", {0: [b"v"]})
        assert syncs.count == 2
        client.close()


def test_topic_flush_ms_is_applied_by_the_flush_task(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        create(b, "by-time", flush_ms=100)
        plog = b.state.topics.get("by-time").partitions[0].log.store
        client = BlockingConnection(b.host, b.port)
        produce_raw(client, "by-time", {0: [b"v"]})
        wait_for(lambda: b.call(lambda: plog._unflushed_records) == 0, what="flush.ms")
        assert syncs.count >= 1
        client.close()


# -- a full disk, an I/O error ------------------------------------------------------------------------


class FullDisk:
    """Writes to the chosen files take half the bytes, then fail with ENOSPC (a full disk)."""

    def __init__(self, monkeypatch):
        self.fds: set[int] = set()
        self.failures = 0        # how many writes fail; -1 for all
        self.failed = 0
        real = log_segment._write

        def write(fd, data, position):
            if fd in self.fds and self.failures:
                self.failures -= 1
                self.failed += 1
                real(fd, bytes(data[:len(data) // 2]), position)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data, position)

        monkeypatch.setattr(log_segment, "_write", write)


def segment_state(b, topic, partition):
    plog = b.state.topics.get(topic).partitions[partition].log.store

    def read():
        seg = plog.segments[-1]
        return (plog.log_end_offset, seg.size, os.path.getsize(seg.log_path), len(seg.index), seg.next_offset)

    return b.call(read)


def test_a_full_disk_fails_the_produce_and_damages_nothing(tmp_path, monkeypatch, caplog):
    disk = FullDisk(monkeypatch)
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        create(b, "full", partitions=2, index_interval_bytes=1)
        client = BlockingConnection(b.host, b.port)
        for i in range(5):
            assert produce_raw(client, "full", {0: [b"p0-%d" % i], 1: [b"p1-%d" % i]}) == {0: (0, i), 1: (0, i)}
        before = segment_state(b, "full", 0)
        disk.fds = {b.state.topics.get("full").partitions[0].log.store.segments[-1].fd}
        disk.failures = -1
        # One request, two partitions: the full one fails, the other goes on.
        answer = produce_raw(client, "full", {0: [b"lost"], 1: [b"p1-5"]})
        assert answer == {0: (STORAGE_ERROR, -1), 1: (0, 5)}
        assert produce_raw(client, "full", {0: [b"lost again"]}) == {0: (STORAGE_ERROR, -1)}
        assert disk.failed == 2
        after = segment_state(b, "full", 0)
        assert after == before  # log end offset, size in memory and on disk, index entries
        # Space again: the next append lands right after the last good one.
        disk.failures = 0
        assert produce_raw(client, "full", {0: [b"p0-5"]}) == {0: (0, 5)}
        client.close()
        expected = [(i, b"p0-%d" % i) for i in range(6)]
        assert consume_all(b.bootstrap_servers, "full", 0, 6) == expected
        assert consume_all(b.bootstrap_servers, "full", 1, 6) == [(i, b"p1-%d" % i) for i in range(6)]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.storage"):
        with Broker(port=0, data_dir=tmp_path / "data") as b:
            assert consume_all(b.bootstrap_servers, "full", 0, 6) == expected
            seg = b.state.topics.get("full").partitions[0].log.store.segments[-1]
            with open(seg.log_path, "rb") as f:
                data = f.read()
            assert all(crc_matches(data, pos, h) for pos, h in iter_batches(data))
    assert not [r for r in caplog.records if r.name == "kbroker.storage"]  # nothing to repair


def test_a_failed_fsync_takes_the_append_back(tmp_path, syncs):
    with Broker(port=0, data_dir=tmp_path / "data", fsync="always") as b:
        create(b, "eio")
        client = BlockingConnection(b.host, b.port)
        assert produce_raw(client, "eio", {0: [b"a"]}) == {0: (0, 0)}
        before = segment_state(b, "eio", 0)
        syncs.fail = 1
        assert produce_raw(client, "eio", {0: [b"not durable"]}) == {0: (STORAGE_ERROR, -1)}
        assert segment_state(b, "eio", 0) == before
        assert produce_raw(client, "eio", {0: [b"b"]}) == {0: (0, 1)}
        client.close()
        assert consume_all(b.bootstrap_servers, "eio", 0, 2) == [(0, b"a"), (1, b"b")]


def test_an_idempotent_producer_rides_out_a_full_disk_exactly_once(tmp_path, monkeypatch):
    from confluent_kafka import Producer

    disk = FullDisk(monkeypatch)
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        create(b, "retry", partitions=2)
        disk.fds = {b.state.topics.get("retry").partitions[0].log.store.segments[-1].fd}
        disk.failures = 3
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "linger.ms": 1,
                      "batch.num.messages": 5, "retry.backoff.ms": 20})
        errors, delivered = [], []
        for i in range(40):
            p.produce("retry", value=b"v%d" % i, partition=i % 2,
                      on_delivery=lambda err, msg: (errors.append(err) if err else delivered.append(msg.value())))
        assert p.flush(30) == 0
        assert not errors and len(delivered) == 40
        assert disk.failed == 3
        got = consume_all(b.bootstrap_servers, "retry", 0, 20)
        assert [v for _o, v in got] == [b"v%d" % i for i in range(0, 40, 2)]  # each once, in order
        assert [o for o, _v in got] == list(range(20))


# -- recovery after a crash says what it did in one line ----------------------------------------------


def test_recovery_after_kill_9_and_a_torn_tail_is_one_line(tmp_path):
    from confluent_kafka import Producer

    proc = BrokerProcess(tmp_path / "data", "--fsync", "always").start()
    try:
        p = Producer({"bootstrap.servers": proc.bootstrap_servers, "acks": "all", "linger.ms": 0})
        for i in range(50):
            p.produce("torn", value=b"v%d" % i)
            p.poll(0)
        assert p.flush(15) == 0
        proc.kill()
        directory = tmp_path / "data" / "torn-0"
        log_file = directory / "00000000000000000000.log"
        with open(log_file, "ab") as f:  # a torn write: half a batch header
            f.write(b"\x00" * 30)
        os.remove(directory / "00000000000000000000.index")
        proc.start()
        line = proc.wait_for_stderr(r"torn-0: recovered: .*").group(0)
        assert "truncated 30 bytes" in line and "rebuilt its indexes" in line
        assert sum("recovered" in l for l in proc.stderr_lines) == 1
        got = consume_all(proc.bootstrap_servers, "torn", 0, 50)
        assert got == [(i, b"v%d" % i) for i in range(50)]
    finally:
        proc.kill()
