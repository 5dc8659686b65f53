"""The log store conformance suite: every scenario runs against every backend.

A scenario reads as a sentence about a partition log; backend-specific facts
(files on disk) sit at the end.  A model-based test replays random operations
against both backends and a plain list of batches.
"""

from __future__ import annotations

import os
import random
import uuid

import pytest

from kbroker.records import HEADER_SIZE, iter_batches, read_header, simple_batch
from kbroker.storage.base import LogConfig, OffsetOutOfRangeError, StorageError
from kbroker.storage.memory import MemoryLogStore
from kbroker.storage.segment import SegmentLogStore

TOPIC_ID = uuid.UUID(int=0x1234)


class Harness:
    """A store of one backend, its open log, and a way to reopen it."""

    def __init__(self, kind: str, data_dir):
        self.kind = kind
        self.data_dir = data_dir
        self.store = self._new_store()
        self.config = LogConfig()
        self.log = None

    def _new_store(self):
        return MemoryLogStore() if self.kind == "memory" else SegmentLogStore(self.data_dir)

    def open(self, **config):
        self.config = LogConfig(**config)
        self.log = self.store.open_log("orders", TOPIC_ID, 0, self.config)
        return self.log

    def restart(self):
        """Close everything and open the log again (a new store for files)."""
        self.store.close()
        if self.kind != "memory":
            self.store = self._new_store()
        self.log = self.store.open_log("orders", TOPIC_ID, 0, self.config)
        return self.log


@pytest.fixture(params=["memory", "segment"])
def harness(request, tmp_path):
    h = Harness(request.param, tmp_path / "data")
    yield h
    h.store.close()


def append(log, *values, timestamp_ms=1000, size=None):
    """Append one batch of ``values`` (or ``size`` bytes, padding one value) at the log end."""
    base = log.log_end_offset
    keys = None
    if size is not None:
        key, value = _padding_for(size)
        keys, values = [key], (value,)
    batch = simple_batch(*values, base_offset=base, timestamp_ms=timestamp_ms, keys=keys)
    if size is not None:
        assert len(batch) == size, (len(batch), size)
    last = base + len(values) - 1
    log.append(batch, base, last, len(values))
    return bytes(batch)


def _padding_for(size: int) -> tuple[bytes, bytes]:
    """Key and value making a one-record batch exactly ``size`` bytes (varints vary in width)."""
    for n in range(max(size - 80, 0), size):
        for k in range(3):
            if len(simple_batch(b"p" * n, keys=[b"k" * k])) == size:
                return b"k" * k, b"p" * n
    raise ValueError(f"no one-record batch is {size} bytes")


def joined(chunks) -> bytes:
    return b"".join(bytes(c) for c in chunks)


def base_offsets(chunks) -> list[int]:
    return [h.base_offset for c in chunks for _, h in iter_batches(c)]


# -- scenarios -----------------------------------------------------------------------


def test_a_new_log_is_empty(harness):
    log = harness.open()
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes()) == (0, 0, 0)
    assert log.read(0, 1 << 20) == []
    assert log.max_timestamp() == (-1, -1)
    assert log.find_offset_by_timestamp(0) is None


def test_appended_batches_read_back_byte_for_byte(harness):
    log = harness.open()
    batches = [append(log, b"a"), append(log, b"b", b"c"), append(log, b"d", timestamp_ms=2000)]
    assert log.log_end_offset == 4
    assert log.size_bytes() == sum(map(len, batches))
    assert joined(log.read(0, 1 << 20)) == b"".join(batches)


def test_an_offset_inside_a_batch_returns_the_whole_batch(harness):
    log = harness.open()
    append(log, b"a", b"b", b"c")
    second = append(log, b"d", b"e", b"f")
    assert joined(log.read(4, len(second))) == second
    assert joined(log.read(5, len(second))) == second


def test_reading_at_or_past_the_log_end_returns_nothing(harness):
    log = harness.open()
    append(log, b"a")
    assert log.read(1, 1 << 20) == []
    assert log.read(100, 1 << 20) == []


def test_reading_below_the_log_start_is_out_of_range(harness):
    log = harness.open()
    append(log, b"a")
    append(log, b"b")
    log.delete_records_before(1)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 1 << 20)


def test_reads_stop_before_max_bytes_but_return_at_least_one_batch(harness):
    log = harness.open()
    sizes = [300, 200, 200, 1000]
    batches = [append(log, size=s) for s in sizes]
    assert joined(log.read(0, 700)) == b"".join(batches[:3])
    assert joined(log.read(0, 699)) == b"".join(batches[:2])
    assert joined(log.read(0, 10)) == batches[0]            # KIP-74: one batch even if too big
    assert joined(log.read(3, 10)) == batches[3]
    assert log.read(0, 10, min_one_batch=False) == []
    assert joined(log.read(0, 10_000)) == b"".join(batches)


def test_one_append_may_carry_several_batches(harness):
    log = harness.open()
    append(log, b"first", timestamp_ms=1)
    a = simple_batch(b"x", b"y", base_offset=1, timestamp_ms=5)
    b = simple_batch(b"z", base_offset=3, timestamp_ms=9)
    log.append(a + b, 1, 3, 3)
    assert log.log_end_offset == 4
    assert joined(log.read(3, 1 << 20)) == bytes(b)
    assert base_offsets(log.read(1, 1 << 20)) == [1, 3]
    assert log.max_timestamp() == (9, 3)


def test_appends_must_not_go_backwards_or_contradict_headers(harness):
    log = harness.open()
    append(log, b"a", b"b")
    with pytest.raises(StorageError):
        log.append(simple_batch(b"c", base_offset=1), 1, 1, 1)
    with pytest.raises(StorageError):
        log.append(simple_batch(b"c", base_offset=2), 2, 3, 1)
    assert log.log_end_offset == 2


def test_rolling_segments_keeps_every_batch_reachable(harness):
    log = harness.open(segment_bytes=1000, index_interval_bytes=100)
    batches = [append(log, size=150 + 37 * (i % 5), timestamp_ms=i) for i in range(60)]
    assert joined(log.read(0, 1 << 30)) == b"".join(batches)
    for offset in range(60):
        assert joined(log.read(offset, 1)) == batches[offset]
    # A read spanning segments is one run of batches.
    assert base_offsets(log.read(10, 2000)) == list(range(10, 10 + len(base_offsets(log.read(10, 2000)))))
    assert len(joined(log.read(10, 2000))) <= 2000
    if harness.kind == "segment":
        logs = sorted(n for n in os.listdir(log.directory) if n.endswith(".log"))
        assert len(logs) > 5
        assert all(len(n) == 24 and n[:20].isdigit() for n in logs)
        for name in logs:
            assert os.path.getsize(os.path.join(log.directory, name)) <= 1000


def test_a_batch_bigger_than_a_segment_gets_a_segment_of_its_own(harness):
    log = harness.open(segment_bytes=500)
    small = append(log, size=200)
    big = append(log, size=1500)
    after = append(log, size=200)
    assert joined(log.read(1, 1)) == big
    assert joined(log.read(0, 1 << 20)) == small + big + after


def test_find_offset_by_timestamp_returns_the_first_batch_reaching_it(harness):
    log = harness.open(segment_bytes=600, index_interval_bytes=50)
    timestamps = [100, 300, 200, 300, 500, 400, 700]
    for ts in timestamps:
        append(log, b"v" * 40, timestamp_ms=ts)

    def found(ts):
        batch = log.find_offset_by_timestamp(ts)
        return None if batch is None else read_header(batch).base_offset

    assert [found(t) for t in (0, 100, 101, 250, 300, 450, 500, 501, 700)] == [0, 0, 1, 1, 1, 4, 4, 6, 6]
    assert found(701) is None
    log.delete_records_before(2)
    assert found(250) == 3  # batch 1 is below the log start; batch 2 (200) is too early
    assert found(100) == 2


def test_max_timestamp_names_the_first_batch_holding_it(harness):
    log = harness.open(segment_bytes=400)
    for ts in [5, 90, 40, 90, 10]:
        append(log, b"a", b"b", timestamp_ms=ts)
    assert log.max_timestamp() == (90, 3)  # last offset of the batch at offsets 2..3
    assert base_offsets(log.read(3, 1)) == [2]


def test_delete_records_before_moves_the_log_start(harness):
    log = harness.open(segment_bytes=700, index_interval_bytes=100)
    batches = [append(log, size=200) for _ in range(20)]
    before = log.size_bytes()
    log.delete_records_before(9)
    assert log.log_start_offset == 9
    assert joined(log.read(9, 1)) == batches[9]
    assert log.size_bytes() < before
    log.delete_records_before(5)  # never backwards
    assert log.log_start_offset == 9
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(21)


def test_delete_records_inside_a_batch_keeps_the_batch(harness):
    log = harness.open()
    append(log, b"a", b"b")
    second = append(log, b"c", b"d", b"e")
    log.delete_records_before(3)
    assert log.log_start_offset == 3
    assert joined(log.read(3, 1)) == second


def test_deleting_everything_leaves_an_empty_log_that_continues(harness):
    log = harness.open(segment_bytes=500)
    for _ in range(5):
        append(log, size=200)
    log.delete_records_before(5)
    assert (log.log_start_offset, log.log_end_offset) == (5, 5)
    assert log.size_bytes() == 0
    assert log.read(5, 100) == []
    assert log.max_timestamp() == (-1, -1)
    nxt = append(log, b"again")
    assert joined(log.read(5, 1 << 20)) == nxt


def test_truncate_drops_the_batch_holding_the_offset_and_everything_after(harness):
    log = harness.open(segment_bytes=400, index_interval_bytes=50)
    batches = [append(log, b"x" * 50, b"y", timestamp_ms=10 * i) for i in range(10)]
    log.truncate_to(9)  # inside the batch 8..9
    assert log.log_end_offset == 8
    assert joined(log.read(0, 1 << 20)) == b"".join(batches[:4])
    assert log.max_timestamp() == (30, 7)
    log.truncate_to(100)  # beyond the end: nothing happens
    assert log.log_end_offset == 8
    again = append(log, b"new", timestamp_ms=5)
    assert joined(log.read(8, 1)) == again


def test_truncate_below_the_log_start_empties_the_log(harness):
    log = harness.open()
    for _ in range(3):
        append(log, b"a")
    log.delete_records_before(2)
    log.truncate_to(1)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes()) == (1, 1, 0)
    append(log, b"b")
    assert log.log_end_offset == 2


def test_truncate_fully_and_start_at_an_offset_past_the_end(harness):
    """A follower whose log ends before its leader's log start drops everything and starts there."""
    log = harness.open(segment_bytes=400)
    for _ in range(6):
        append(log, b"x" * 60)
    log.truncate_fully_and_start_at(20)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes(), log.read(20, 1 << 20)) == (20, 20, 0, [])
    nxt = append(log, b"from the leader")
    assert joined(log.read(20, 1 << 20)) == nxt
    log = harness.restart()
    assert (log.log_start_offset, log.log_end_offset) == (20, 21)
    assert joined(log.read(20, 1 << 20)) == nxt


def test_restart_keeps_data_and_the_log_start_offset(harness):
    log = harness.open(segment_bytes=800, index_interval_bytes=100)
    batches = [append(log, size=130 + i, timestamp_ms=1000 - i) for i in range(30)]
    log.delete_records_before(12)
    log = harness.restart()
    assert (log.log_start_offset, log.log_end_offset) == (12, 30)
    assert joined(log.read(12, 1 << 20)) == b"".join(batches[12:])
    assert log.max_timestamp()[0] >= 1000 - 12  # segments may keep batches below the start
    assert read_header(log.find_offset_by_timestamp(980)).base_offset == 12
    nxt = append(log, b"after restart")
    log = harness.restart()
    assert joined(log.read(30, 1)) == nxt


def test_restart_after_truncating_everything_keeps_the_offsets(harness):
    log = harness.open()
    for _ in range(4):
        append(log, b"a")
    log.delete_records_before(4)
    log = harness.restart()
    assert (log.log_start_offset, log.log_end_offset) == (4, 4)


def test_flush_messages_flushes_without_changing_anything(harness):
    log = harness.open(flush_messages=2)
    batches = [append(log, b"a", b"b") for _ in range(3)]
    log.flush()
    assert joined(log.read(0, 1 << 20)) == b"".join(batches)


def test_deleted_logs_come_back_empty(harness):
    log = harness.open()
    append(log, b"a")
    harness.store.delete_log("orders", TOPIC_ID, 0)
    log = harness.open()
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes()) == (0, 0, 0)


def test_opening_an_open_log_returns_it(harness):
    log = harness.open()
    assert harness.store.open_log("orders", TOPIC_ID, 0, LogConfig()) is log


def test_returned_chunks_survive_later_changes(harness):
    log = harness.open(segment_bytes=300)
    first = append(log, size=200)
    chunks = log.read(0, 1 << 20)
    append(log, size=200)
    log.truncate_to(0)
    assert joined(chunks) == first


# -- segments: what retention and compaction work with ---------------------------------------


def test_segment_infos_describe_every_segment_oldest_first(harness):
    log = harness.open(segment_bytes=400)
    for i in range(7):
        append(log, size=150, timestamp_ms=100 + i)
    infos = log.segment_infos()
    assert [s.base_offset for s in infos] == [0, 2, 4, 6]
    assert [s.next_offset for s in infos] == [2, 4, 6, 7]
    assert [s.size_bytes for s in infos] == [300, 300, 300, 150]
    assert [s.max_timestamp for s in infos] == [101, 103, 105, 106]
    assert [s.active for s in infos] == [False, False, False, True]
    assert len({s.uid for s in infos}) == 4


def test_roll_closes_the_active_segment_only_if_it_has_data(harness):
    log = harness.open()
    assert not log.roll()
    append(log, b"a")
    assert log.roll()
    assert not log.roll()
    infos = log.segment_infos()
    assert [(s.base_offset, s.active) for s in infos] == [(0, False), (1, True)]
    append(log, b"b")
    assert base_offsets(log.read(0, 1 << 20)) == [0, 1]


def test_maybe_roll_rolls_an_active_segment_older_than_segment_ms(harness):
    log = harness.open(segment_ms=60000)
    append(log, b"a")
    born = log.segment_infos()[-1].rolling_base_ms
    assert not log.maybe_roll(born + 60000)
    assert log.maybe_roll(born + 60001)
    assert not log.maybe_roll(born + 10**9)  # the new active segment is empty


def test_compacted_topics_roll_by_max_compaction_lag_too(harness):
    log = harness.open(segment_ms=60000, cleanup_policy="compact", max_compaction_lag_ms=1000)
    append(log, b"a")
    born = log.segment_infos()[-1].rolling_base_ms
    assert log.maybe_roll(born + 1001)


def test_deleting_the_oldest_segments_moves_the_log_start_and_spares_the_active_one(harness):
    log = harness.open(segment_bytes=400, file_delete_delay_ms=0)
    for _ in range(7):
        append(log, size=150)
    assert log.delete_oldest_segments(2) == 600
    assert log.log_start_offset == 4
    assert [s.base_offset for s in log.segment_infos()] == [4, 6]
    assert base_offsets(log.read(4, 1 << 20)) == [4, 5, 6]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 1 << 20)
    assert log.delete_oldest_segments(10) == 300  # never the active segment
    assert [s.base_offset for s in log.segment_infos()] == [6]
    assert (log.log_start_offset, log.log_end_offset) == (6, 7)
    log = harness.restart()
    assert (log.log_start_offset, log.log_end_offset) == (6, 7)


def test_replacing_segments_keeps_offsets_and_survives_a_restart(harness):
    log = harness.open(segment_bytes=400, file_delete_delay_ms=0)
    batches = [append(log, size=150) for _ in range(7)]
    first, second = log.segment_infos()[:2]
    writer = log.cleaned_writer(first.base_offset)
    writer.append(batches[1])
    writer.append(batches[3])
    writer.finish()
    assert log.replace_segments([([first.uid, second.uid], writer)]) == [True]
    assert [s.base_offset for s in log.segment_infos()] == [0, 4, 6]
    assert base_offsets(log.read(0, 1 << 20)) == [1, 3, 4, 5, 6]
    assert joined(log.read(2, 1)) == batches[3]  # an offset that went reads the next batch
    assert log.size_bytes() == 5 * 150
    log = harness.restart()
    assert base_offsets(log.read(0, 1 << 20)) == [1, 3, 4, 5, 6]
    assert log.log_end_offset == 7


def test_replacing_refuses_segments_that_changed(harness):
    log = harness.open(segment_bytes=400, file_delete_delay_ms=0)
    for _ in range(7):
        append(log, size=150)
    first, second = log.segment_infos()[:2]
    active = log.segment_infos()[-1]
    writer = log.cleaned_writer(first.base_offset)
    writer.finish()
    assert log.replace_segments([([active.uid], log.cleaned_writer(active.base_offset))]) == [False]
    log.delete_oldest_segments(1)
    assert log.replace_segments([([first.uid, second.uid], writer)]) == [False]
    assert base_offsets(log.read(2, 1 << 20)) == [2, 3, 4, 5, 6]


def test_snapshots_read_closed_segments_batch_by_batch(harness):
    log = harness.open(segment_bytes=400)
    batches = [append(log, size=150) for _ in range(5)]
    snap = log.snapshot_segment(log.segment_infos()[1])
    got = [(h.base_offset, bytes(data)) for h, data in snap.batches()]
    snap.close()
    assert got == [(2, batches[2]), (3, batches[3])]
    with pytest.raises(StorageError):
        log.snapshot_segment(log.segment_infos()[-1])  # the active segment is not for cleaning


def test_the_cleaner_checkpoint_survives_a_restart(harness):
    log = harness.open()
    assert log.cleaner_checkpoint == 0
    append(log, b"a", b"b")
    log.set_cleaner_checkpoint(2)
    log = harness.restart()
    assert log.cleaner_checkpoint == 2


# -- the model: random operations against both backends and a list ----------------------


class Model:
    def __init__(self):
        self.batches: list[tuple[int, int, int, bytes]] = []  # base, last, max ts, bytes
        self.start = 0
        self.end = 0

    def read(self, offset, max_bytes):
        out, total = [], 0
        for base, last, _ts, data in self.batches:
            if last < offset:
                continue
            if total + len(data) > max_bytes and out:
                break
            out.append(data)
            total += len(data)
        return b"".join(out)

    def by_timestamp(self, ts):
        for base, last, max_ts, data in self.batches:
            if max_ts >= ts and last >= self.start:
                return data
        return None


def test_random_operations_match_a_model(harness):
    rng = random.Random(99)
    log = harness.open(segment_bytes=1500, index_interval_bytes=120)
    model = Model()
    for step in range(600):
        op = rng.random()
        if op < 0.55:
            n = rng.randrange(1, 4)
            ts = rng.randrange(0, 5000)
            base = log.log_end_offset
            batch = bytes(simple_batch(*[bytes(rng.randrange(200)) for _ in range(n)],
                                       base_offset=base, timestamp_ms=ts))
            log.append(batch, base, base + n - 1, n)
            model.batches.append((base, base + n - 1, ts, batch))
            model.end = base + n
        elif op < 0.80 and model.end > model.start:
            offset = rng.randrange(model.start, model.end)
            max_bytes = rng.randrange(1, 2500)
            assert joined(log.read(offset, max_bytes)) == model.read(offset, max_bytes), step
        elif op < 0.87:
            ts = rng.randrange(0, 5200)
            got = log.find_offset_by_timestamp(ts)
            assert (None if got is None else bytes(got)) == model.by_timestamp(ts), step
        elif op < 0.91 and model.end > model.start:
            offset = rng.randrange(model.start, model.end + 1)
            log.delete_records_before(offset)
            model.start = offset
            model.batches = [b for b in model.batches if b[1] >= offset]
        elif op < 0.95 and model.end > model.start:
            offset = rng.randrange(model.start + 1, model.end + 1)
            log.truncate_to(offset)
            kept = [b for b in model.batches if b[1] < offset]
            dropped = [b for b in model.batches if b[1] >= offset]
            model.end = min(offset, dropped[0][0]) if dropped else offset
            model.batches = kept
        elif op < 0.955:
            log.roll()
        elif op < 0.965:
            infos = log.segment_infos()
            count = rng.randrange(0, len(infos))
            log.delete_oldest_segments(count)
            if count:
                model.start = max(model.start, infos[count].base_offset)
                model.batches = [b for b in model.batches if b[1] >= model.start]
        elif op < 0.975:
            # Compaction's swap: a run of closed segments for a subset of their batches.
            closed = log.segment_infos()[:-1]
            if closed:
                i = rng.randrange(len(closed))
                run = closed[i:i + rng.randrange(1, 3)]
                lo, hi = run[0].base_offset, run[-1].next_offset
                doomed = {b[0] for b in model.batches if lo <= b[0] < hi and rng.random() < 0.5}
                writer = log.cleaned_writer(lo)
                for b in model.batches:
                    if lo <= b[0] < hi and b[0] not in doomed:
                        writer.append(b[3])
                writer.finish()
                assert log.replace_segments([([r.uid for r in run], writer)]) == [True]
                model.batches = [b for b in model.batches if b[0] not in doomed]
        elif op < 0.985:
            log = harness.restart()
        assert (log.log_start_offset, log.log_end_offset) == (model.start, model.end), step
        assert log.size_bytes() >= sum(len(b[3]) for b in model.batches)
        if harness.kind == "memory":
            assert log.size_bytes() == sum(len(b[3]) for b in model.batches)
    assert joined(log.read(model.start, 1 << 30)) == model.read(model.start, 1 << 30)
    best = max((b[2] for b in model.batches), default=-1)
    assert log.max_timestamp()[0] >= best


# -- the segment backend's files ---------------------------------------------------------------


@pytest.fixture
def segment_harness(tmp_path):
    h = Harness("segment", tmp_path / "data")
    yield h
    h.store.close()


def test_segment_files_follow_kafkas_layout(segment_harness):
    log = segment_harness.open(segment_bytes=600, index_interval_bytes=100)
    for i in range(12):
        append(log, size=150, timestamp_ms=i)
    log.flush()
    names = set(os.listdir(log.directory))
    assert os.path.basename(log.directory) == "orders-0"
    assert {"00000000000000000000.log", "00000000000000000000.index",
            "00000000000000000000.timeindex", "partition.metadata"} <= names
    with open(os.path.join(log.directory, "partition.metadata")) as f:
        assert f.read().startswith("version: 0\ntopic_id: ")
    # The first sealed segment has index entries: (relative offset, position), 8 bytes each.
    index = open(os.path.join(log.directory, "00000000000000000000.index"), "rb").read()
    assert len(index) % 8 == 0 and len(index) >= 8
    assert int.from_bytes(index[4:8], "big") % 150 == 0


def test_deleted_segments_are_renamed_then_removed_after_the_delay(segment_harness):
    log = segment_harness.open(segment_bytes=400, file_delete_delay_ms=60000)
    for _ in range(10):
        append(log, size=150)
    log.delete_records_before(8)
    names = os.listdir(log.directory)
    assert "log-start-offset" in names
    deleted = [n for n in names if n.endswith(".deleted")]
    assert "00000000000000000000.log.deleted" in deleted
    assert min(int(n[:20]) for n in names if n.endswith(".log")) <= 8
    # Not yet due: nothing removed.  Due: all gone.
    assert log.purge_deleted(0) is not None
    assert [n for n in os.listdir(log.directory) if n.endswith(".deleted")] == deleted
    assert log.purge_deleted(2**62) is None
    assert not [n for n in os.listdir(log.directory) if n.endswith(".deleted")]


def test_deleted_segments_leave_no_files_without_a_delay(segment_harness):
    log = segment_harness.open(segment_bytes=400, file_delete_delay_ms=0)
    for _ in range(10):
        append(log, size=150)
    log.delete_records_before(8)
    assert not [n for n in os.listdir(log.directory) if n.endswith(".deleted")]


def test_closing_removes_files_waiting_for_deletion(segment_harness):
    log = segment_harness.open(segment_bytes=400, file_delete_delay_ms=60000)
    for _ in range(10):
        append(log, size=150)
    log.delete_records_before(8)
    directory = log.directory
    segment_harness.store.close()
    assert not [n for n in os.listdir(directory) if n.endswith(".deleted")]


def test_a_new_topic_with_an_old_name_starts_empty(segment_harness, caplog):
    log = segment_harness.open()
    append(log, b"old")
    segment_harness.store.close()
    store = SegmentLogStore(segment_harness.data_dir)
    segment_harness.store = store
    log = store.open_log("orders", uuid.UUID(int=0x9999), 0, LogConfig())
    assert log.log_end_offset == 0
    assert "earlier topic" in caplog.text


def test_read_does_not_load_segments(segment_harness):
    """Only the batches asked for (plus a bounded window) are read from disk."""
    log = segment_harness.open(index_interval_bytes=1000)
    for i in range(400):
        append(log, size=1000, timestamp_ms=i)
    got = log.read(350, 1)
    assert len(joined(got)) == 1000
    assert all(len(c.obj) < 200_000 for c in got if isinstance(c, memoryview))
    assert HEADER_SIZE == 61
