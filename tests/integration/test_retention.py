"""Retention: topic configs set and changed through stock admin clients, and old segments going while
producing goes on.

The broker runs in-process with a short ``log.retention.check.interval.ms``; tests wait for its task by
polling what a client sees (the earliest offset) against a deadline.  Records carry producer-chosen
timestamps, so "old" data is simply data stamped an hour ago.
"""

from __future__ import annotations

import os
import time

import pytest

from kbroker import Broker

CHECK_MS = 50
HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def produce(bootstrap: str, topic: str, count: int, timestamp_ms: int | None = None, size: int = 100,
            partition: int = 0) -> list[int]:
    """``count`` records (one batch every 10), acknowledged; returns their offsets."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "batch.num.messages": 10, "acks": "all"})
    offsets, errors = [], []

    def delivered(err, msg):
        (errors.append(err) if err else offsets.append(msg.offset()))

    for i in range(count):
        kw = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        p.produce(topic, key=b"k%d" % i, value=b"x" * size, partition=partition, on_delivery=delivered, **kw)
        p.poll(0)
    assert p.flush(20) == 0
    assert not errors, errors[:3]
    return sorted(offsets)


class Earliest:
    """The earliest offset (ListOffsets -2) as each client asks for it."""

    def __init__(self, bootstrap: str):
        from confluent_kafka import Consumer
        from kafka.admin import KafkaAdminClient

        self.confluent = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
        self.kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)

    def __call__(self, topic: str, partition: int = 0) -> int:
        from confluent_kafka import TopicPartition
        from kafka import TopicPartition as KpTopicPartition
        from kafka.admin import OffsetSpec

        low, _high = self.confluent.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        tp = KpTopicPartition(topic, partition)
        kp = self.kafka_python.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset
        assert kp >= low, (kp, low)  # asked later: retention may have moved it meanwhile
        return kp

    def close(self):
        self.confluent.close()
        self.kafka_python.close()


@pytest.fixture(params=["segment", "memory"])
def broker(request, tmp_path):
    data_dir = tmp_path / "data" if request.param == "segment" else None
    with Broker(port=0, storage=request.param, data_dir=data_dir, log_retention_check_interval_ms=CHECK_MS) as b:
        yield b


@pytest.fixture
def earliest(broker):
    e = Earliest(broker.bootstrap_servers)
    yield e
    e.close()


def segment_bases(b, topic, partition=0) -> list[int]:
    plog = b.state.topics.get(topic).partitions[partition].log
    return b.call(lambda: [s.base_offset for s in plog.segment_infos()])


# -- configs through the admin clients -----------------------------------------------------------------


def _create_confluent(b, topic, configs):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=configs)]).values():
        f.result(10)
    return admin


def _describe_confluent(admin, topic) -> dict[str, tuple[str, str]]:
    from confluent_kafka.admin import ConfigResource

    [f] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {k: (e.value, e.source) for k, e in f.result(10).items()}


def _alter_confluent(admin, topic, configs):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
    for f in admin.incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=entries)]).values():
        f.result(10)


def test_confluent_admin_creates_describes_and_alters_retention(broker, earliest):
    from confluent_kafka.admin import ConfigSource

    topic = "conf-retention"
    admin = _create_confluent(broker, topic, {"retention.ms": "-1", "segment.bytes": "2000",
                                              "file.delete.delay.ms": "0"})
    described = _describe_confluent(admin, topic)
    assert described["retention.ms"] == ("-1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert described["segment.bytes"] == ("2000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert described["cleanup.policy"][0] == "delete"
    produce(broker.bootstrap_servers, topic, 200, timestamp_ms=now_ms() - HOUR_MS)
    bases = segment_bases(broker, topic)
    assert len(bases) > 5
    # Retention -1 keeps everything, however old, across several checks.
    broker.call(broker.state.log_manager.run_retention_once)
    assert earliest(topic) == 0
    _alter_confluent(admin, topic, {"retention.ms": "60000"})
    assert _describe_confluent(admin, topic)["retention.ms"][0] == "60000"
    # Every closed segment is an hour old: the task deletes them all, never the active one.
    wait_for(lambda: earliest(topic) == bases[-1], what="retention to reach the active segment")
    assert segment_bases(broker, topic) == [bases[-1]]
    assert broker.state.topics.get(topic).partitions[0].high_watermark == 200


def test_kafka_python_admin_creates_describes_and_alters_retention(broker, earliest):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    topic = "kp-retention"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "-1", "segment.bytes": "2000",
                                                                  "file.delete.delay.ms": "0"})])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        described = admin.describe_configs([resource])["topic"][topic]
        assert described["retention.ms"]["value"] == "-1"
        assert described["segment.bytes"]["value"] == "2000"
        produce(broker.bootstrap_servers, topic, 200, timestamp_ms=now_ms() - HOUR_MS)
        bases = segment_bases(broker, topic)
        assert len(bases) > 5
        # retention.bytes: keep about 3 segments' worth.
        limit = 3 * 2000
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"retention.bytes": str(limit)})], incremental=True)
        described = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        assert described["retention.bytes"]["value"] == str(limit)
        assert described["retention.ms"]["value"] == "-1"  # an incremental alter keeps the others
        wait_for(lambda: earliest(topic) > 0, what="size retention")
        plog = broker.state.topics.get(topic).partitions[0].log
        infos = broker.call(plog.segment_infos)
        total = sum(s.size_bytes for s in infos)
        # As Kafka: the oldest closed segments go while the rest still exceeds the limit.
        assert total - infos[0].size_bytes < limit or infos[0].active
        assert earliest(topic) == infos[0].base_offset
        # The legacy AlterConfigs (kafka-python resends the other overrides itself).
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "5000"})],
                            incremental=False)
        described = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        assert described["segment.bytes"]["value"] == "5000"
        assert described["retention.bytes"]["value"] == str(limit)
        assert broker.call(lambda: plog.config.segment_bytes) == 5000
    finally:
        admin.close()


def test_a_new_segment_bytes_applies_to_the_next_append_without_a_restart(broker):
    topic = "grow"
    admin = _create_confluent(broker, topic, {})
    produce(broker.bootstrap_servers, topic, 100)
    assert segment_bases(broker, topic) == [0]
    _alter_confluent(admin, topic, {"segment.bytes": "1500"})
    produce(broker.bootstrap_servers, topic, 100)
    assert len(segment_bases(broker, topic)) > 5


# -- time retention while producing ------------------------------------------------------------------


def test_old_segments_go_and_the_earliest_offset_advances_while_producing_goes_on(broker, earliest):
    topic = "rolling"
    _create_confluent(broker, topic, {"retention.ms": "60000", "segment.bytes": "3000", "file.delete.delay.ms": "0"})
    old = produce(broker.bootstrap_servers, topic, 300, timestamp_ms=now_ms() - HOUR_MS)
    seen = [earliest(topic)]
    fresh = []
    deadline = time.monotonic() + 15
    # Producing goes on; every round, the earliest offset only moves forward.
    while time.monotonic() < deadline and (seen[-1] <= old[-1] or len(fresh) < 300):
        fresh += produce(broker.bootstrap_servers, topic, 50)
        seen.append(earliest(topic))
        assert seen[-1] >= seen[-2]
    assert seen[-1] > old[-1], seen  # every old record went ...
    assert seen[-1] <= fresh[0]      # ... and no fresh one did
    from test_compaction import _consume_confluent

    got = _consume_confluent(broker.bootstrap_servers, topic, fresh[-1])
    assert [o for o, _k, _v in got] == list(range(seen[-1], fresh[-1] + 1))


def test_records_older_than_retention_ms_by_the_clock_go_as_time_passes(broker, earliest):
    """Real timestamps and a 300 ms retention: segments expire while the producer writes."""
    topic = "short-lived"
    _create_confluent(broker, topic, {"retention.ms": "300", "segment.bytes": "2000", "file.delete.delay.ms": "0"})
    offsets = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and earliest(topic) == 0:
        offsets += produce(broker.bootstrap_servers, topic, 20)
    first = earliest(topic)
    assert first > 0
    assert first <= broker.state.topics.get(topic).partitions[0].high_watermark


def test_segment_ms_rolls_an_idle_partition_so_retention_can_free_it(broker, earliest):
    topic = "idle"
    admin = _create_confluent(broker, topic, {"retention.ms": "60000", "file.delete.delay.ms": "0"})
    produce(broker.bootstrap_servers, topic, 50, timestamp_ms=now_ms() - HOUR_MS)
    broker.call(broker.state.log_manager.run_retention_once)
    assert earliest(topic) == 0  # all in the active segment: never deleted
    _alter_confluent(admin, topic, {"segment.ms": "1"})
    wait_for(lambda: earliest(topic) == 50, what="the roll and then retention")
    assert segment_bases(broker, topic) == [50]


def test_compacted_topics_are_left_to_the_cleaner(broker, earliest):
    _create_confluent(broker, "compact-only", {"cleanup.policy": "compact", "retention.ms": "1",
                                               "segment.bytes": "2000", "file.delete.delay.ms": "0"})
    _create_confluent(broker, "compact-delete", {"cleanup.policy": "compact,delete", "retention.ms": "1",
                                                 "segment.bytes": "2000", "file.delete.delay.ms": "0"})
    for topic in ("compact-only", "compact-delete"):
        produce(broker.bootstrap_servers, topic, 100, timestamp_ms=now_ms() - HOUR_MS)
    wait_for(lambda: earliest("compact-delete") > 0, what="retention of compact,delete")
    broker.call(broker.state.log_manager.run_retention_once)
    assert earliest("compact-only") == 0


# -- files -------------------------------------------------------------------------------------------


def test_deleted_segments_are_renamed_then_removed_after_file_delete_delay(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", log_retention_check_interval_ms=CHECK_MS) as b:
        _create_confluent(b, "delayed", {"retention.ms": "60000", "segment.bytes": "2000",
                                         "file.delete.delay.ms": "300"})
        produce(b.bootstrap_servers, "delayed", 100, timestamp_ms=now_ms() - HOUR_MS)
        directory = tmp_path / "data" / "delayed-0"

        def deleted():
            return [n for n in os.listdir(directory) if n.endswith(".deleted")]

        renamed = wait_for(deleted, what=".deleted files")
        assert any(n.endswith(".log.deleted") for n in renamed)
        wait_for(lambda: not deleted(), what="the delayed removal")
        assert b.state.topics.get("delayed").partitions[0].log_start_offset > 0
