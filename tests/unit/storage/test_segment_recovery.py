"""Segment recovery: what a crash or a bad disk leaves behind, and what start-up makes of it.

Each test writes a log, damages its files the way a torn write or a lost
page would, reopens it and checks that everything before the damage is
intact, the damage is gone, and exactly one line says what was done.
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from kbroker.records import iter_batches, read_header, simple_batch
from kbroker.storage.base import LogConfig
from kbroker.storage.segment import SegmentLogStore

TOPIC_ID = uuid.UUID(int=77)
CONFIG = LogConfig(segment_bytes=2500, index_interval_bytes=200)


def open_log(data_dir, config=CONFIG):
    store = SegmentLogStore(data_dir)
    return store, store.open_log("events", TOPIC_ID, 0, config)


def fill(log, count, first_ts=1000):
    """Append ``count`` batches of two records; returns their bytes."""
    out = []
    for i in range(count):
        base = log.log_end_offset
        batch = simple_batch(b"value-%d" % i * 3, b"x", base_offset=base, timestamp_ms=first_ts + i)
        log.append(batch, base, base + 1, 2)
        out.append(bytes(batch))
    return out


def crash(store):
    """The process dies: file descriptors close, nothing is flushed or sealed."""
    for log in store._logs.values():
        for seg in log.segments:
            seg.close()


def joined(chunks) -> bytes:
    return b"".join(bytes(c) for c in chunks)


def seg_path(log, base=None, suffix=".log"):
    if base is None:
        base = log.segments[-1].base_offset
    return os.path.join(log.directory, f"{base:020d}{suffix}")


def recovery_lines(caplog):
    return [r for r in caplog.records if r.name == "kbroker.storage"]


@pytest.fixture
def crashed(tmp_path):
    """A log of 60 batches over several segments, closed cleanly; returns (data_dir, batches, path of last .log)."""
    data_dir = tmp_path / "data"
    store, log = open_log(data_dir)
    batches = fill(log, 60)
    assert len(log.segments) > 2
    path = seg_path(log)
    store.close()
    return data_dir, batches, path


def reopen_and_check(data_dir, batches, keep, caplog):
    """Reopen: the first ``keep`` batches are there, nothing else; returns the log and its store."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.storage"):
        store, log = open_log(data_dir)
    expected_end = read_header(batches[keep - 1]).last_offset + 1 if keep else 0
    assert log.log_end_offset == expected_end
    assert joined(log.read(0, 1 << 30)) == b"".join(batches[:keep])
    for i in range(keep):
        assert joined(log.read(2 * i + 1, 1)) == batches[i]
    # The log goes on where it was cut.
    more = fill(log, 3, first_ts=5000)
    assert joined(log.read(expected_end, 1 << 20)) == b"".join(more)
    return store, log


# -- torn and corrupt tails ----------------------------------------------------------


def test_a_batch_cut_in_the_middle_is_dropped(crashed, caplog):
    data_dir, batches, path = crashed
    os.truncate(path, os.path.getsize(path) - 10)
    store, log = reopen_and_check(data_dir, batches, 59, caplog)
    [line] = recovery_lines(caplog)
    assert "truncated" in line.getMessage() and line.levelno == logging.WARNING
    store.close()


def test_a_cut_inside_the_last_header_is_dropped(crashed, caplog):
    data_dir, batches, path = crashed
    os.truncate(path, os.path.getsize(path) - len(batches[-1]) + 20)
    store, _ = reopen_and_check(data_dir, batches, 59, caplog)
    assert len(recovery_lines(caplog)) == 1
    store.close()


def test_a_cut_exactly_between_batches_loses_nothing_else(crashed, caplog):
    data_dir, batches, path = crashed
    os.truncate(path, os.path.getsize(path) - len(batches[-1]))
    store, _ = reopen_and_check(data_dir, batches, 59, caplog)
    store.close()


def test_garbage_after_the_last_batch_is_dropped(crashed, caplog):
    data_dir, batches, path = crashed
    with open(path, "ab") as f:
        f.write(b"\x00\x01garbage that is not a batch" * 5)
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    [line] = recovery_lines(caplog)
    assert "truncated 145 bytes" in line.getMessage()
    store.close()


def test_zeros_after_the_last_batch_are_dropped(crashed, caplog):
    """A file extended by the filesystem but never written holds zeros."""
    data_dir, batches, path = crashed
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    assert len(recovery_lines(caplog)) == 1
    store.close()


def test_a_flipped_byte_in_the_last_batch_drops_it(crashed, caplog):
    data_dir, batches, path = crashed
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) - 5)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    store, _ = reopen_and_check(data_dir, batches, 59, caplog)
    [line] = recovery_lines(caplog)
    assert "CRC32C" in line.getMessage()
    store.close()


def test_a_lying_length_in_the_last_batch_drops_it(crashed, caplog):
    data_dir, batches, path = crashed
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) - len(batches[-1]) + 8)
        f.write((10_000_000).to_bytes(4, "big"))
    store, _ = reopen_and_check(data_dir, batches, 59, caplog)
    assert len(recovery_lines(caplog)) == 1
    store.close()


def test_a_corrupt_batch_in_the_middle_of_the_tail_drops_it_and_what_follows(tmp_path, caplog):
    """A crash without close: indexes lag the log; the damaged batch and everything after it go."""
    data_dir = tmp_path / "data"
    store, log = open_log(data_dir, LogConfig(index_interval_bytes=200))
    batches = fill(log, 40)
    path = seg_path(log)
    crash(store)
    position = sum(map(len, batches[:30])) + 70
    with open(path, "r+b") as f:
        f.seek(position)
        f.write(b"\xff\xff")
    store, log = reopen_and_check(data_dir, batches, 30, caplog)
    assert len(recovery_lines(caplog)) == 1
    store.close()


def test_a_crash_without_close_recovers_everything_silently(tmp_path, caplog):
    data_dir = tmp_path / "data"
    store, log = open_log(data_dir)
    batches = fill(log, 200)
    assert log.segments[-1].index.pending > 0
    crash(store)  # unpersisted index entries are re-derived from the log
    store, log = reopen_and_check(data_dir, batches, 200, caplog)
    assert recovery_lines(caplog) == []
    assert read_header(log.find_offset_by_timestamp(1150)).base_offset == 300
    assert log.max_timestamp() == (5002, 405)
    store.close()


def test_damage_in_an_older_segment_keeps_the_later_segments(crashed, caplog):
    data_dir, batches, _path = crashed
    store, log = open_log(data_dir)
    first, second = log.segments[0], log.segments[1]
    first_count = sum(1 for b in batches if read_header(b).base_offset < second.base_offset)
    path = seg_path(log, first.base_offset)
    store.close()
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) - 3)
        f.write(b"\x00\x00\x01")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.storage"):
        store, log = open_log(data_dir)
    [line] = recovery_lines(caplog)
    assert "00000000000000000000.log" in line.getMessage()
    assert log.log_end_offset == 120
    chunks = log.read(0, 1 << 30)
    offsets = [h.base_offset for c in chunks for _, h in iter_batches(c)]
    assert offsets == [2 * i for i in range(60) if i != first_count - 1]
    store.close()


def test_a_wholly_lost_last_segment_file_content_recovers_to_the_previous(crashed, caplog):
    data_dir, batches, path = crashed
    base = int(os.path.basename(path)[:20])
    os.truncate(path, 0)
    keep = sum(1 for b in batches if read_header(b).base_offset < base)
    store, log = reopen_and_check(data_dir, batches, keep, caplog)
    store.close()


# -- indexes ---------------------------------------------------------------------------


def test_missing_indexes_are_rebuilt(crashed, caplog):
    data_dir, batches, path = crashed
    os.remove(path.replace(".log", ".index"))
    first = os.path.join(os.path.dirname(path), "00000000000000000000.timeindex")
    os.remove(first)
    store, log = reopen_and_check(data_dir, batches, 60, caplog)
    [line] = recovery_lines(caplog)  # one line for the partition, naming both segments
    assert line.getMessage().count("rebuilt its indexes") == 2
    assert "00000000000000000000.log" in line.getMessage()
    assert os.path.getsize(first) > 0
    assert read_header(log.find_offset_by_timestamp(1010)).base_offset == 20
    store.close()


def test_an_index_out_of_order_is_rebuilt(crashed, caplog):
    data_dir, batches, path = crashed
    first = os.path.join(os.path.dirname(path), "00000000000000000000.index")
    entries = os.path.getsize(first) // 8
    assert entries >= 2
    with open(first, "wb") as f:  # positions inside the log, but going backwards
        for i in range(entries):
            f.write((40 - i).to_bytes(4, "big") + (2000 - 100 * i).to_bytes(4, "big"))
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    [line] = recovery_lines(caplog)
    assert "rebuilt" in line.getMessage() and "out of order" in line.getMessage()
    store.close()


def test_an_index_of_garbage_is_dropped_and_rederived(crashed, caplog):
    data_dir, batches, path = crashed
    first = os.path.join(os.path.dirname(path), "00000000000000000000.index")
    size = os.path.getsize(first)
    with open(first, "wb") as f:
        f.write(bytes(range(size)))  # positions far past the end of the log
    store, log = reopen_and_check(data_dir, batches, 60, caplog)
    assert len(recovery_lines(caplog)) == 1
    assert len(log.segments[0].index) > 0
    store.close()


def test_an_index_entry_pointing_at_the_wrong_batch_is_rebuilt(crashed, caplog):
    data_dir, batches, path = crashed
    first = os.path.join(os.path.dirname(path), "00000000000000000000.index")
    with open(first, "r+b") as f:
        data = f.read()
        f.seek(len(data) - 8)
        rel = int.from_bytes(data[-8:-4], "big")
        f.write((rel + 2).to_bytes(4, "big"))
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    [line] = recovery_lines(caplog)
    assert "does not match" in line.getMessage()
    store.close()


def test_a_partial_index_entry_is_trimmed_silently(crashed, caplog):
    data_dir, batches, path = crashed
    index = path.replace(".log", ".index")
    with open(index, "ab") as f:
        f.write(b"\x00\x00\x00")
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    assert recovery_lines(caplog) == []
    assert os.path.getsize(index) % 8 == 0
    store.close()


def test_a_time_index_longer_than_the_offset_index_is_cut_to_match(crashed, caplog):
    data_dir, batches, path = crashed
    index = path.replace(".log", ".index")
    entries = os.path.getsize(index) // 8
    assert entries >= 2
    os.truncate(index, (entries - 1) * 8)
    store, log = reopen_and_check(data_dir, batches, 60, caplog)
    assert recovery_lines(caplog) == []
    store.close()
    assert os.path.getsize(path.replace(".log", ".timeindex")) // 12 >= entries - 1


def test_index_entries_past_a_truncated_log_are_dropped(crashed, caplog):
    """The log lost its tail but the index kept entries for it."""
    data_dir, batches, path = crashed
    seg_bytes = os.path.getsize(path)
    os.truncate(path, seg_bytes - len(batches[-1]) - len(batches[-2]))
    store, _ = reopen_and_check(data_dir, batches, 58, caplog)
    [line] = recovery_lines(caplog)  # nothing was damaged, only cut
    assert "dropped 1 index entries past the end of the log" in line.getMessage()
    store.close()


# -- leftovers and checkpoints ------------------------------------------------------------------


def test_leftover_deleted_and_temporary_files_are_removed(crashed, caplog):
    data_dir, batches, path = crashed
    directory = os.path.dirname(path)
    for name in ("00000000000000000000.log.deleted", "log-start-offset.tmp",
                 "00000000000099999999.index"):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"junk")
    store, _ = reopen_and_check(data_dir, batches, 60, caplog)
    names = os.listdir(directory)
    assert not [n for n in names if n.endswith((".deleted", ".tmp")) or n.startswith("00000000000099999999")]
    store.close()


def test_the_log_start_offset_survives_a_crash(tmp_path, caplog):
    data_dir = tmp_path / "data"
    store, log = open_log(data_dir)
    batches = fill(log, 60)
    log.delete_records_before(51)
    crash(store)
    store, log = open_log(data_dir)
    assert (log.log_start_offset, log.log_end_offset) == (51, 120)
    assert joined(log.read(51, 1)) == batches[25]
    store.close()


def test_a_log_start_beyond_the_recovered_end_empties_the_log(tmp_path, caplog):
    data_dir = tmp_path / "data"
    store, log = open_log(data_dir, LogConfig())
    fill(log, 10)
    log.delete_records_before(15)
    path = seg_path(log)
    store.close()
    os.truncate(path, 100)  # the data that held offsets up to 15 is gone
    with caplog.at_level(logging.INFO, logger="kbroker.storage"):
        store, log = open_log(data_dir, LogConfig())
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes()) == (15, 15, 0)
    assert any("log start offset" in r.getMessage() for r in recovery_lines(caplog))
    store.close()
