"""The high-watermark checkpoint (Kafka's replication-offset-checkpoint): the file's format, atomic writes,
and where a log's high watermark starts from it (capped at the log end, never below the log start); a
partition that is its own ISR still moves it to the log end at once."""

from __future__ import annotations

import os
import uuid

import pytest

from kbroker.log.unified_log import UnifiedLog
from kbroker.partition import Partition
from kbroker.records import simple_batch
from kbroker.storage.base import LogConfig
from kbroker.storage.checkpoint import (REPLICATION_OFFSET_CHECKPOINT_FILE, offset_checkpoint_text,
                                        parse_offset_checkpoint, read_offset_checkpoint)
from kbroker.storage.memory import MemoryLogStore
from kbroker.storage.segment import SegmentLogStore

TOPIC_ID = uuid.UUID(int=0x77)


def test_the_file_is_kafkas_format_and_reads_back():
    offsets = {("orders", 1): 42, ("orders", 0): 7, ("a.b-c", 12): 0}
    text = offset_checkpoint_text(offsets)
    assert text == "0\n3\na.b-c 12 0\norders 0 7\norders 1 42\n"
    assert parse_offset_checkpoint(text) == offsets
    assert offset_checkpoint_text({}) == "0\n0\n"
    assert parse_offset_checkpoint("0\n0\n") == {}


@pytest.mark.parametrize("text", ["1\n0\n", "0\n2\norders 0 7\n", "0\n1\norders 0\n", "", "0\n1\norders x 7\n"])
def test_a_damaged_or_unknown_file_is_refused(text):
    with pytest.raises(ValueError):
        parse_offset_checkpoint(text)


def _append(plog, n: int) -> None:
    base = plog.log_end_offset
    plog.append(simple_batch(*[b"v%d" % i for i in range(n)], base_offset=base), base, base + n - 1, n)


def test_logs_start_at_their_checkpointed_high_watermark_capped_at_the_log_end(tmp_path):
    store = SegmentLogStore(tmp_path)
    logs = {i: store.open_log("orders", TOPIC_ID, i, LogConfig()) for i in range(3)}
    for plog in logs.values():
        _append(plog, 10)
    logs[2].delete_records_before(6)
    store.checkpoint_high_watermarks({("orders", 0): 4, ("orders", 1): 25, ("orders", 2): 3})
    path = tmp_path / REPLICATION_OFFSET_CHECKPOINT_FILE
    assert read_offset_checkpoint(str(path)) == {("orders", 0): 4, ("orders", 1): 25, ("orders", 2): 3}
    assert not os.path.exists(str(path) + ".tmp")
    store.close()

    store = SegmentLogStore(tmp_path)
    hws = [UnifiedLog(f"orders-{i}", store.open_log("orders", TOPIC_ID, i, LogConfig())).high_watermark
           for i in range(3)]
    assert hws == [4, 10, 6]  # as written; capped at the log end; never below the log start
    # A partition not in the checkpoint starts at its log start offset, as before.
    fresh = UnifiedLog("orders-3", store.open_log("orders", TOPIC_ID, 3, LogConfig()))
    assert fresh.high_watermark == 0
    store.close()


def test_a_damaged_checkpoint_is_ignored_and_logs_start_at_their_log_start(tmp_path):
    store = SegmentLogStore(tmp_path)
    _append(store.open_log("orders", TOPIC_ID, 0, LogConfig()), 5)
    store.close()
    (tmp_path / REPLICATION_OFFSET_CHECKPOINT_FILE).write_text("0\n9\norders 0 3\n")
    store = SegmentLogStore(tmp_path)
    assert UnifiedLog("orders-0", store.open_log("orders", TOPIC_ID, 0, LogConfig())).high_watermark == 0
    store.close()


def test_a_single_replica_partition_moves_to_the_log_end_at_once(tmp_path):
    """One broker (the leader is the whole ISR): the high watermark is the log end as soon as the partition
    leads, whatever the checkpoint says."""
    store = SegmentLogStore(tmp_path)
    _append(store.open_log("orders", TOPIC_ID, 0, LogConfig()), 10)
    store.checkpoint_high_watermarks({("orders", 0): 3})
    store.close()
    store = SegmentLogStore(tmp_path)
    p = Partition(None, 0, store.open_log("orders", TOPIC_ID, 0, LogConfig()))
    assert p.high_watermark == 10
    store.close()


def test_the_memory_store_keeps_the_checkpoint_for_logs_it_reopens():
    store = MemoryLogStore()
    plog = store.open_log("orders", TOPIC_ID, 0, LogConfig())
    _append(plog, 10)
    store.checkpoint_high_watermarks({("orders", 0): 6})
    plog.close()
    assert UnifiedLog("orders-0", store.open_log("orders", TOPIC_ID, 0, LogConfig())).high_watermark == 6
