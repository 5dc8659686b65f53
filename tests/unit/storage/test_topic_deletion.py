"""Deleting a topic as Kafka does: cheap on the event loop. Its logs are closed without a flush, their
directories renamed to ``<topic>-<partition>.<uuid>-delete`` with one fsync of the data directory per request,
and the files removed on a worker thread; leftover ``-delete`` directories go at the next start."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from kbroker.broker_state import BrokerState
from kbroker.config import BrokerConfig
from kbroker.controller import run_now
from kbroker.records import simple_batch
from kbroker.storage import log_segment
from kbroker.storage.base import LogConfig
from kbroker.storage.segment import DELETE_DIR_SUFFIX, SegmentLogStore


def _append(plog, value: bytes) -> bytes:
    base = plog.log_end_offset
    batch = simple_batch(value, base_offset=base, timestamp_ms=1000)
    plog.append(batch, base, base, 1)
    return bytes(batch)


@pytest.fixture
def state(tmp_path):
    async def make() -> BrokerState:  # its group coordinator's timers need a loop
        return BrokerState(BrokerConfig(data_dir=str(tmp_path / "data"), storage="segment"))
    loop = asyncio.new_event_loop()
    s = loop.run_until_complete(make())
    run_now(s.register({"PLAINTEXT": ("localhost", 9092)}))
    yield s
    s.close()
    loop.close()


class _Syncs:
    """Counts fsyncs by the path synced, and segment flushes and seals."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        self.flushes = 0
        real_fsync = os.fsync

        def fsync(fd):
            self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        def counting(name):
            real = getattr(log_segment.LogSegment, name)

            def wrapper(seg, *a, **kw):
                self.flushes += 1
                return real(seg, *a, **kw)
            monkeypatch.setattr(log_segment.LogSegment, name, wrapper)

        monkeypatch.setattr(os, "fsync", fsync)
        counting("flush")
        counting("seal")


def test_deleting_a_topic_of_many_partitions_flushes_nothing_and_syncs_the_directory_once(state, monkeypatch):
    data_dir = state.log_store.data_dir
    topic = state.topics.create("big", 200)
    for p in topic.partitions:
        _append(p.log.store, b"x" * 100)
    syncs = _Syncs(monkeypatch)
    with state.topics.batch():  # as the DeleteTopics handler
        run_now(state.delete_topic(topic))
    assert syncs.flushes == 0
    assert syncs.paths.count(data_dir) == 1  # one rename made durable for all 200
    assert not [p for p in syncs.paths if os.path.basename(os.path.dirname(p)).startswith("big-")]
    assert not [n for n in os.listdir(data_dir) if n.startswith("big-") and not n.endswith(DELETE_DIR_SUFFIX)]
    state.log_store.wait_for_removals()
    assert not [n for n in os.listdir(data_dir) if n.startswith("big-")]
    assert state.topics.get("big") is None
    again = state.topics.create("big", 2)  # the name starts afresh
    assert [p.log.store.log_end_offset for p in again.partitions] == [0, 0]


def test_creating_a_topic_of_many_partitions_syncs_no_directory_per_partition(state, monkeypatch):
    syncs = _Syncs(monkeypatch)
    state.topics.create("wide", 300)
    assert syncs.flushes == 0
    assert syncs.paths.count(state.log_store.data_dir) <= 1
    assert len(syncs.paths) <= 2  # the metadata store's append (and its directory), not one per partition


def test_a_deleted_topic_leaves_other_topics_alone(state):
    keep = state.topics.create("keep", 2)
    gone = state.topics.create("gone", 3)
    written = {p.index: _append(p.log.store, b"kept") for p in keep.partitions}
    for p in gone.partitions:
        _append(p.log.store, b"gone")
    with state.topics.batch():
        run_now(state.delete_topic(gone))
    state.log_store.wait_for_removals()
    for p in keep.partitions:
        assert b"".join(bytes(c) for c in p.log.store.read(0, 1 << 20)) == written[p.index]


def test_leftover_delete_directories_are_removed_at_start(tmp_path):
    data_dir = tmp_path / "data"
    doomed = data_dir / f"old-0.{'ab' * 16}{DELETE_DIR_SUFFIX}"
    (doomed / "nested").mkdir(parents=True)
    (doomed / "00000000000000000000.log").write_bytes(b"stale")
    (data_dir / "live-0").mkdir()
    store = SegmentLogStore(data_dir)
    try:
        assert sorted(os.listdir(data_dir)) == ["live-0"]
    finally:
        store.close()


def test_a_late_deletion_leaves_a_newer_topic_of_the_same_name_alone(tmp_path):
    # A deleted topic's logs are removed once the deletion is durable; a topic of the same name opened before
    # then (the controller's changes applied in one batch) keeps its log.
    store = SegmentLogStore(tmp_path / "data")
    old_id, new_id = uuid.UUID(int=1), uuid.UUID(int=2)
    try:
        old = store.open_log("t", old_id, 0, LogConfig())
        _append(old, b"old")
        old.discard()
        new = store.open_log("t", new_id, 0, LogConfig())
        written = _append(new, b"new")
        store.delete_logs("t", old_id, [0])
        store.wait_for_removals()
        assert b"".join(bytes(c) for c in new.read(0, 1 << 20)) == written
        assert os.listdir(tmp_path / "data") == ["t-0"]
    finally:
        store.close()
