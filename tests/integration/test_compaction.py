"""Log compaction: the latest record per key survives at its original offset, and nothing else changes.

The first scenarios drive the LogManager's cleaner over one log of each backend, on a chosen clock; then a
crash at every step of the segment swap; then stock clients against an in-process broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from types import SimpleNamespace

import pytest

from kbroker import Broker
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.records import (
    COMMIT, GZIP, LZ4, NONE, SNAPPY, ZSTD, Record, build_batch, build_control_batch, crc_matches,
    decode_records, iter_batches,
)
from kbroker.records.batch import DELETE_HORIZON_MASK
from kbroker.storage.base import LogConfig
from kbroker.storage.memory import MemoryLogStore
from kbroker.storage.segment import SegmentLogStore
from kbroker.wire.messages import produce
from kbroker.client import BlockingConnection

TOPIC_ID = uuid.UUID(int=0xC0)
OLD_MS = 1_000_000          # record timestamps: long ago
NOW_MS = 2_000_000_000_000  # the cleaner's clock


class OneLog:
    """One compacted log and a LogManager that sees only it."""

    def __init__(self, kind: str, data_dir, **config):
        self.kind = kind
        self.data_dir = data_dir
        defaults = dict(cleanup_policy="compact", file_delete_delay_ms=0, min_cleanable_dirty_ratio=0.5)
        defaults.update(config)
        self.config = LogConfig(**defaults)
        self.store = MemoryLogStore() if kind == "memory" else SegmentLogStore(data_dir)
        self._open()

    def _open(self):
        # ``log`` is the store, written directly (so without producer state); the LogManager sees the
        # UnifiedLog over it, whose high watermark ``clean`` moves to the log end.
        self.log = self.store.open_log("c", TOPIC_ID, 0, self.config)
        self.unified = UnifiedLog("c-0", self.log)
        partition = SimpleNamespace(index=0, log=self.unified)
        state = SimpleNamespace(topics=SimpleNamespace(by_name={"c": SimpleNamespace(name="c", partitions=[partition])}),
                                log_store=self.store,
                                config=SimpleNamespace(log_retention_check_interval_ms=300000, log_cleaner_backoff_ms=15000,
                                                       fsync="never"))
        self.manager = LogManager(state)

    def restart(self):
        self.close()
        if self.kind != "memory":
            self.store = SegmentLogStore(self.data_dir)
        self._open()

    def close(self):
        asyncio.run(self.manager.stop())
        self.store.close()

    def append(self, *pairs, ts=OLD_MS, **batch_args) -> bytes:
        """One batch of (key, value) records at the log end."""
        base = self.log.log_end_offset
        records = [Record(base + i, ts + i, k, v) for i, (k, v) in enumerate(pairs)]
        batch = bytes(build_batch(records, **batch_args))
        self.log.append(batch, base, base + len(pairs) - 1, len(pairs))
        return batch

    def clean(self, now_ms=NOW_MS, force=False) -> int:
        self.unified.maybe_increment_high_watermark(self.log.log_end_offset)
        return asyncio.run(self.manager.run_cleaner_once(now_ms=now_ms, force=force))

    def batches(self):
        out = []
        for chunk in self.log.read(self.log.log_start_offset, 1 << 30):
            data = bytes(chunk)
            for pos, h in iter_batches(data):
                out.append((h, data[pos:pos + h.size]))
        return out

    def records(self):
        return [(r.offset, r.key, r.value) for h, data in self.batches() if not h.is_control
                for r in decode_records(data, 0, h)]


@pytest.fixture(params=["memory", "segment"])
def kind(request):
    return request.param


@pytest.fixture
def make_log(kind, tmp_path):
    logs = []

    def make(**config):
        one = OneLog(kind, tmp_path / f"data{len(logs)}", **config)
        logs.append(one)
        return one

    yield make
    for one in logs:
        one.close()


def latest_per_key(records):
    out = {}
    for offset, key, value in records:
        out[key] = (offset, key, value)
    return sorted(out.values())


# -- what survives -----------------------------------------------------------------------------------


def test_the_latest_record_per_key_survives_at_its_original_offset(make_log):
    one = make_log(segment_bytes=600)
    for i in range(40):
        one.append((b"k%d" % (i % 5), b"v%d" % i), (b"k%d" % ((i + 2) % 5), b"w%d" % i))
    one.log.roll()
    before = one.records()
    ranges_before = {(h.base_offset, h.last_offset) for h, _ in one.batches()}
    assert one.clean(force=True) == 1
    after = one.records()
    assert after == latest_per_key(before)
    for h, data in one.batches():
        assert (h.base_offset, h.last_offset) in ranges_before  # offset ranges kept
        assert crc_matches(data, 0, h)
    assert one.log.log_end_offset == 80
    one.restart()
    assert one.records() == after


def test_the_active_segment_is_never_cleaned(make_log):
    one = make_log()
    for i in range(10):
        one.append((b"k", b"v%d" % i))
    before = one.records()
    one.clean(force=True)
    assert one.records() == before


def test_small_segments_are_merged_when_cleaned(make_log):
    one = make_log(segment_bytes=300)
    for i in range(30):
        one.append((b"k%d" % (i % 3), b"v%d" % i))
    one.log.roll()
    assert len(one.log.segment_infos()) > 5
    one.clean(force=True)  # groups are made by the sizes before cleaning (as Kafka's), so ...
    one.clean(force=True)  # ... the shrunk segments merge on the next pass
    # Three records left, in one closed segment, and the empty active one.
    assert len(one.log.segment_infos()) == 2
    assert [r[0] for r in one.records()] == [27, 28, 29]


def test_tombstones_stay_until_the_delete_horizon_then_go(make_log):
    one = make_log(delete_retention_ms=1000)
    one.append((b"gone", b"v1"), (b"kept", b"v2"))
    one.append((b"gone", None))
    one.log.roll()
    one.append((b"later", b"v3"))  # so the tombstone's batch is not the log's last
    one.clean(now_ms=NOW_MS, force=True)
    assert one.records() == [(1, b"kept", b"v2"), (2, b"gone", None), (3, b"later", b"v3")]
    h = next(h for h, _ in one.batches() if h.base_offset == 2)
    assert h.attributes & DELETE_HORIZON_MASK and h.base_timestamp == NOW_MS + 1000
    # Before the horizon nothing is due, and a forced clean keeps the tombstone.
    assert one.clean(now_ms=NOW_MS + 999) == 0
    one.clean(now_ms=NOW_MS + 999, force=True)
    assert (2, b"gone", None) in one.records()
    # At the horizon the clean is due by itself and the tombstone goes.
    assert one.clean(now_ms=NOW_MS + 1000) == 1
    assert one.records() == [(1, b"kept", b"v2"), (3, b"later", b"v3")]


def test_min_compaction_lag_keeps_young_segments_out_of_the_clean(make_log):
    one = make_log(min_compaction_lag_ms=10_000)
    one.append((b"k", b"old1"), (b"k", b"old2"))
    one.log.roll()
    one.append((b"k", b"young"), ts=NOW_MS - 100)
    one.log.roll()
    one.clean(now_ms=NOW_MS, force=True)
    # The young record does not count yet: the old segment keeps its latest record.
    assert one.records() == [(1, b"k", b"old2"), (2, b"k", b"young")]
    one.clean(now_ms=NOW_MS + 10_000, force=True)
    assert one.records() == [(2, b"k", b"young")]


def test_the_dirty_ratio_decides_when_a_log_is_cleaned(make_log):
    one = make_log(min_cleanable_dirty_ratio=0.5)
    for i in range(20):
        one.append((b"k%d" % i, b"v"))
    one.log.roll()
    assert one.clean() == 1  # everything is dirty the first time
    one.append((b"k0", b"new"))
    one.log.roll()
    assert one.clean() == 0  # 1 dirty batch of 20: below the ratio
    for i in range(1, 20):
        one.append((b"k%d" % i, b"new"))
    one.log.roll()
    assert one.clean() == 1
    assert {v for _o, _k, v in one.records()} == {b"new"}


def test_max_compaction_lag_cleans_whatever_the_ratio(make_log):
    one = make_log(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=60_000)
    for i in range(10):
        one.append((b"k%d" % i, b"a"))
    one.log.roll()
    one.clean(force=True)
    one.append((b"k0", b"b"))
    one.log.roll()
    born = one.log.segment_infos()[-2].rolling_base_ms  # the dirty segment's age
    assert one.clean(now_ms=born + 60_000) == 0
    assert one.clean(now_ms=born + 60_001) == 1
    assert one.records()[-1] == (10, b"k0", b"b") and (0, b"k0", b"a") not in one.records()


@pytest.mark.parametrize("codec", [NONE, GZIP, SNAPPY, LZ4, ZSTD])
def test_rewritten_batches_keep_codec_producer_fields_and_offset_range(make_log, codec):
    one = make_log()
    original = one.append((b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"c", b"4"), compression=codec,
                          producer_id=7, producer_epoch=3, base_sequence=10, partition_leader_epoch=5)
    one.append((b"c", b"5"))
    one.log.roll()
    one.clean(force=True)
    (h, data), (h2, _) = one.batches()
    old = next(h for _p, h in iter_batches(original))
    assert (h.base_offset, h.last_offset_delta) == (0, 3)
    assert h.compression == codec
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.partition_leader_epoch) == (7, 3, 10, 5)
    assert h.last_sequence == old.last_sequence == 13
    assert crc_matches(data, 0, h)
    assert [(r.offset, r.key, r.value) for r in decode_records(data, 0, h)] == [(1, b"b", b"2"), (2, b"a", b"3")]
    assert [r.timestamp for r in decode_records(data, 0, h)] == [OLD_MS + 1, OLD_MS + 2]


def test_a_batch_that_loses_everything_goes_unless_it_ends_the_log(make_log):
    one = make_log()
    one.append((b"k", b"1"))
    one.append((b"k", b"2"))
    one.append((b"k", b"3"))
    one.log.roll()
    one.clean(force=True)
    assert [(h.base_offset, h.record_count) for h, _ in one.batches()] == [(2, 1)]
    # Now the last batch of the log holds a superseded record: it stays, empty, and keeps the log end.
    one.append((b"k", b"4"))
    one.log.roll()
    one.append((b"k", b"5"))  # a later record of the same key, in the active segment
    one.log.roll()
    one.clean(force=True)
    assert one.records() == [(4, b"k", b"5")]
    one.restart()
    assert one.log.log_end_offset == 5


def test_control_batches_are_kept(make_log):
    one = make_log()
    one.append((b"k", b"1"), producer_id=9, producer_epoch=0, base_sequence=0, transactional=True)
    marker = bytes(build_control_batch(COMMIT, producer_id=9, producer_epoch=0, coordinator_epoch=0,
                                       timestamp_ms=OLD_MS, base_offset=1))
    one.log.append(marker, 1, 1, 1)
    one.append((b"k", b"2"))
    one.log.roll()
    one.clean(force=True)
    assert [(h.base_offset, h.is_control, h.record_count) for h, _ in one.batches()] == [(1, True, 1), (2, False, 1)]


def test_records_without_keys_are_dropped_by_the_cleaner(make_log):
    """They can only be there from before the topic became compacted; Kafka's cleaner drops them too."""
    one = make_log()
    one.append((None, b"no key"), (b"k", b"v"))
    one.log.roll()
    one.clean(force=True)
    assert one.records() == [(1, b"k", b"v")]


def test_an_unchanged_segment_is_not_rewritten(make_log):
    one = make_log()
    one.append((b"a", b"1"), (b"b", b"2"))
    one.log.roll()
    uid = one.log.segment_infos()[0].uid
    one.clean(force=True)
    assert one.log.segment_infos()[0].uid == uid


# -- a crash at every step of the swap ----------------------------------------------------------------


def _build_dirty_log(data_dir):
    one = OneLog("segment", data_dir)
    for i in range(12):
        one.append((b"k%d" % (i % 3), b"v%d" % i))
        if i % 4 == 3:
            one.log.roll()
    return one


def _clean_and_die_at(data_dir, step: int) -> int:
    """In a child process: clean the log and die (no cleanup, like kill -9) at the ``step``-th rename.
    Returns the child's exit code: 0 if it died as told, 3 if the clean finished first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store = SegmentLogStore(data_dir)
            one = OneLog.__new__(OneLog)
            one.kind, one.data_dir, one.store = "segment", data_dir, store
            one.config = LogConfig(cleanup_policy="compact", file_delete_delay_ms=0)
            one._open()
            real_replace = os.replace
            calls = [0]

            def dying_replace(src, dst):
                if calls[0] == step:
                    os._exit(0)
                calls[0] += 1
                return real_replace(src, dst)

            os.replace = dying_replace
            one.clean(force=True)
            os._exit(3)
        except BaseException:
            os._exit(1)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_crash_at_any_step_of_the_swap_leaves_the_old_log_or_the_new(tmp_path, caplog):
    data_dir = tmp_path / "data"
    one = _build_dirty_log(data_dir)
    original = one.records()
    compacted = latest_per_key(original) + [r for r in original if r[0] >= 12]
    one.close()
    outcomes = []
    for step in range(40):
        step_dir = tmp_path / f"step{step}"
        import shutil

        shutil.copytree(data_dir, step_dir)
        code = _clean_and_die_at(step_dir, step)
        assert code in (0, 3), code
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kbroker.storage"):
            store = SegmentLogStore(step_dir)
            log = store.open_log("c", TOPIC_ID, 0, LogConfig())
        records = [(r.offset, r.key, r.value) for chunk in log.read(0, 1 << 30)
                   for pos, h in iter_batches(bytes(chunk)) for r in decode_records(bytes(chunk), pos, h)]
        assert records in (original, compacted), (step, records)
        assert log.log_end_offset == 12
        for chunk in log.read(0, 1 << 30):
            for pos, h in iter_batches(bytes(chunk)):
                assert crc_matches(bytes(chunk), pos, h)
        assert len([r for r in caplog.records if r.name == "kbroker.storage"]) <= 1
        leftovers = [n for n in os.listdir(log.directory) if n.endswith((".cleaned", ".swap", ".deleted"))]
        assert not leftovers, (step, leftovers)
        outcomes.append("new" if records == compacted else "old")
        store.close()
        if code == 3:
            break
    # The steps went from "nothing happened" to "swapped", and the clean finished in the end.
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert code == 3


# -- through stock clients -----------------------------------------------------------------------------

COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "4096", "delete.retention.ms": "0",
             "min.cleanable.dirty.ratio": "0.01", "file.delete.delay.ms": "0"}


def _produce_updates(bootstrap: str, topic: str, count: int, keys: int) -> dict[bytes, tuple[int, bytes | None]]:
    """Keyed updates, every 7th a tombstone, from an idempotent lz4 producer; returns key -> (offset, value)
    of each key's last acknowledged record."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "enable.idempotence": True,
                  "compression.type": "lz4", "batch.num.messages": 20})
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        elif msg.key() not in latest or latest[msg.key()][0] < msg.offset():
            latest[msg.key()] = (msg.offset(), msg.value())

    for i in range(count):
        key = b"key-%03d" % (i % keys)
        value = None if i % 7 == 3 else b"value-%d" % i
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:3]
    return latest


def _consume_confluent(bootstrap, topic, until_offset):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and (not out or out[-1][0] < until_offset):
            for m in c.consume(500, 0.2):
                assert not m.error(), m.error()
                out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


def _consume_kafka_python(bootstrap, topic, until_offset):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and (not out or out[-1][0] < until_offset):
            for recs in c.poll(timeout_ms=200).values():
                out.extend((r.offset, r.key, r.value) for r in recs)
    finally:
        c.close()
    return out


def test_clients_read_exactly_the_latest_value_of_every_live_key(tmp_path):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    with Broker(port=0, data_dir=tmp_path / "data") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        for f in admin.create_topics([NewTopic("compacted", 1, 1, config=COMPACTED)]).values():
            f.result(10)
        latest = _produce_updates(b.bootstrap_servers, "compacted", 3000, 100)
        end = b.state.topics.get("compacted").partitions[0].log_end_offset
        assert end == 3000
        plog = b.state.topics.get("compacted").partitions[0].log
        assert len(plog.segment_infos()) > 5
        # segment.ms=1, through AlterConfigs: the retention task rolls the active segment without a restart.
        res = ConfigResource("topic", "compacted", set_config={**COMPACTED, "segment.ms": "1"})
        for f in admin.alter_configs([res]).values():
            f.result(10)
        manager = b.state.log_manager
        deadline = time.monotonic() + 10
        while b.call(lambda: plog.segment_infos()[-1].size_bytes) and time.monotonic() < deadline:
            b.call(manager.run_retention_once)
        assert b.call(lambda: plog.segment_infos()[-1].size_bytes) == 0
        assert b.call(manager.run_cleaner_once) == 1  # keeps the latest records, stamps the tombstones
        assert b.call(manager.run_cleaner_once) == 1  # delete.retention.ms=0: the tombstones go
        expected = sorted((offset, key, value) for key, (offset, value) in latest.items() if value is not None)
        assert len(expected) < 100
        last = expected[-1][0]
        assert _consume_confluent(b.bootstrap_servers, "compacted", last) == expected
        assert _consume_kafka_python(b.bootstrap_servers, "compacted", last) == expected
        assert b.state.topics.get("compacted").partitions[0].log_end_offset == 3000
        size_after = b.call(plog.size_bytes)
    # A restart reads the same log, and producing goes on at the same offsets.
    with Broker(port=0, data_dir=tmp_path / "data") as b:
        assert _consume_confluent(b.bootstrap_servers, "compacted", last) == expected
        assert b.call(b.state.topics.get("compacted").partitions[0].log.size_bytes) == size_after
        more = _produce_updates(b.bootstrap_servers, "compacted", 10, 10)
        assert min(o for o, _v in more.values()) == 3000


def test_records_without_a_key_are_refused_on_compacted_topics():
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    with Broker(port=0, storage="memory") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        for f in admin.create_topics([NewTopic("keys-only", 1, 1, config={"cleanup.policy": "compact,delete"})]).values():
            f.result(10)
        raw = BlockingConnection(b.host, b.port)
        batch = build_batch([Record(0, 1, b"k", b"with key"), Record(1, 1, None, b"no key")])
        req = produce.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[produce.ProduceRequest.TopicProduceData(
            name="keys-only", partition_data=[produce.ProduceRequest.PartitionProduceData(index=0, records=bytes(batch))])])
        part = raw.request(0, 9, req).responses[0].partition_responses[0]
        assert part.error_code == 87  # INVALID_RECORD
        message = "Compacted topic cannot accept message without key in topic partition keys-only-0"
        assert [(e.batch_index, e.batch_index_error_message) for e in part.record_errors] == [(1, message)]
        assert part.error_message.endswith(f"[RecordError(batchIndex=1, message='{message}')]")
        raw.close()
        errors = []
        p = Producer({"bootstrap.servers": b.bootstrap_servers})
        p.produce("keys-only", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
        assert p.flush(10) == 0  # one batch each: a refused batch is refused whole
        p.produce("keys-only", key=b"k", value=b"fine", on_delivery=lambda err, msg: errors.append(err))
        assert p.flush(10) == 0
        assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD
        assert errors[1] is None
        assert b.state.topics.get("keys-only").partitions[0].log_end_offset == 1


def test_clients_read_past_the_empty_batch_that_keeps_the_log_end(tmp_path):
    """The log's last batch held only tombstones; once they expire it stays as an empty batch (it carries
    the log end and its producer's state).  Every client reads up to it, and past it once more comes."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from support.clients import AioKafkaClient

    with Broker(port=0, data_dir=tmp_path / "data") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        for f in admin.create_topics([NewTopic("ends-empty", 1, 1, config=COMPACTED)]).values():
            f.result(10)
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "linger.ms": 5})
        for batch in ([(b"k%d" % i, b"v%d" % i) for i in range(10)], [(b"dead%d" % i, b"x") for i in range(5)],
                      [(b"dead%d" % i, None) for i in range(5)]):
            for key, value in batch:
                p.produce("ends-empty", key=key, value=value)
            assert p.flush(10) == 0
        plog = b.state.topics.get("ends-empty").partitions[0].log
        b.call(plog.roll)
        b.call(b.state.log_manager.run_cleaner_once)
        b.call(b.state.log_manager.run_cleaner_once)
        headers = b.call(lambda: [(h.base_offset, h.last_offset, h.record_count) for c in plog.read(0, 1 << 30)
                                  for _pos, h in iter_batches(bytes(c))])
        assert headers == [(0, 9, 10), (15, 19, 0)]
        aiokafka = AioKafkaClient(b.bootstrap_servers)

        def every_client_reads(expected):
            assert _consume_confluent(b.bootstrap_servers, "ends-empty", expected[-1][0]) == expected
            assert _consume_kafka_python(b.bootstrap_servers, "ends-empty", expected[-1][0]) == expected
            got = aiokafka.consume_assigned("ends-empty", 1, len(expected))
            assert [(r[1], r[2], r[3]) for r in got] == expected

        expected = [(i, b"k%d" % i, b"v%d" % i) for i in range(10)]
        every_client_reads(expected)
        p.produce("ends-empty", key=b"after", value=b"a")
        assert p.flush(10) == 0
        every_client_reads(expected + [(20, b"after", b"a")])
