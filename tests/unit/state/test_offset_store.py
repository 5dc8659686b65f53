"""The offsets store: every backend keeps the same facts; the journal survives torn tails, crashes and compaction."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kbroker.coordinator.offsets import (
    MAGIC,
    CommittedOffset,
    CorruptStoreError,
    FileOffsetStore,
    MemoryOffsetStore,
    StoredGroup,
    StoredMember,
)
from kbroker.state_log import encode_record

GROUP = StoredGroup(
    "g", 3, "consumer", "range", "m-1", 1234,
    (StoredMember("m-1", None, "c1", "/10.0.0.1", 30000, 10000, b"\x00sub", b"\x00assign"),
     StoredMember("m-2", "i-2", "c2", "/10.0.0.2", 30000, 10000, b"", b"\xff")),
)


def off(offset, seq=1, metadata=""):
    return CommittedOffset(offset, 5, metadata, 1000, None, seq)


@pytest.fixture(params=["memory", "file"])
def new_store(request, tmp_path):
    """A factory of stores; the file backend reopens the same journal, the memory one keeps one instance."""
    if request.param == "memory":
        store = MemoryOffsetStore()
        return lambda: store
    return lambda: FileOffsetStore(tmp_path / "offsets.journal", fsync=False)


# -- what every backend does ------------------------------------------------------------------------------------


def test_a_new_store_is_empty(new_store):
    snap = new_store().load()
    assert snap.groups == {} and snap.offsets == {} and snap.pending_txn_offsets == {}


def test_commits_overwrite_per_partition(new_store):
    store = new_store()
    store.commit_offsets("g", {("t", 0): off(1), ("t", 1): off(2)})
    store.commit_offsets("g", {("t", 0): off(10, seq=3)})
    assert store.load().offsets == {"g": {("t", 0): off(10, seq=3), ("t", 1): off(2)}}


def test_delete_offsets_also_drops_pending_transactional_ones(new_store):
    store = new_store()
    store.commit_offsets("g", {("t", 0): off(1), ("t", 1): off(2)})
    store.prepare_txn_offsets(7, "g", {("t", 0): off(5, seq=9)})
    store.delete_offsets("g", [("t", 0)])
    snap = store.load()
    assert snap.offsets == {"g": {("t", 1): off(2)}}
    assert snap.pending_txn_offsets == {}


def test_group_metadata_round_trips_and_delete_group_removes_everything(new_store):
    store = new_store()
    store.store_group(GROUP)
    store.commit_offsets("g", {("t", 0): off(1)})
    store.prepare_txn_offsets(7, "g", {("t", 1): off(5)})
    store.commit_offsets("other", {("t", 0): off(1)})
    assert store.load().groups == {"g": GROUP}
    store.delete_group("g")
    snap = store.load()
    assert snap.groups == {} and snap.pending_txn_offsets == {} and list(snap.offsets) == ["other"]


def test_txn_complete_moves_the_given_offsets(new_store):
    store = new_store()
    store.prepare_txn_offsets(7, "g", {("t", 0): off(5, seq=2), ("t", 1): off(6, seq=2)})
    store.prepare_txn_offsets(8, "g", {("t", 2): off(7, seq=3)})
    assert set(store.load().pending_txn_offsets) == {(7, "g"), (8, "g")}
    store.complete_txn_offsets(7, "g", {("t", 0): off(5, seq=2)})  # the coordinator decided (t,1) lost
    store.complete_txn_offsets(8, "g", {})  # aborted
    snap = store.load()
    assert snap.pending_txn_offsets == {}
    assert snap.offsets == {"g": {("t", 0): off(5, seq=2)}}


def test_load_returns_a_copy(new_store):
    store = new_store()
    store.commit_offsets("g", {("t", 0): off(1)})
    store.load().offsets["g"].clear()
    assert store.load().offsets == {"g": {("t", 0): off(1)}}


# -- the journal ------------------------------------------------------------------------------------------------


def _fill(store):
    store.store_group(GROUP)
    store.commit_offsets("g", {("t", 0): off(1, metadata="héllo"), ("t", 1): off(2)})
    store.commit_offsets("g", {("t", 0): off(3, seq=2)})
    store.prepare_txn_offsets(7, "g", {("u", 0): off(4, seq=3)})
    store.commit_offsets("h", {("t", 0): CommittedOffset(9, -1, "", 5, 86_400_000, 4)})
    store.delete_offsets("g", [("t", 1)])


def test_replay_restores_every_kind_of_record(tmp_path):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=True)
    _fill(store)
    expected = store.load()
    store.close()
    again = FileOffsetStore(path)
    assert again.load() == expected
    assert again.truncated_bytes == 0


def test_journal_starts_with_its_magic_and_version(tmp_path):
    path = tmp_path / "j"
    FileOffsetStore(path).close()
    assert path.read_bytes() == MAGIC + b"\x00\x01\x00\x00"


def test_a_torn_tail_is_truncated_at_every_cut(tmp_path):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=False)
    _fill(store)
    before_last = store.size_bytes
    before = store.load()
    store.commit_offsets("g", {("t", 0): off(100, seq=10)})
    store.close()
    whole = path.read_bytes()
    for cut in range(before_last, len(whole)):
        path.write_bytes(whole[:cut])
        torn = FileOffsetStore(path, fsync=False)
        assert torn.load() == before, cut
        assert torn.truncated_bytes == cut - before_last
        # Appends after the truncation land where the torn record was, and replay again.
        torn.commit_offsets("g", {("t", 0): off(200, seq=11)})
        torn.close()
        again = FileOffsetStore(path)
        assert again.truncated_bytes == 0
        assert again.load().offsets["g"][("t", 0)].offset == 200
        again.close()


def test_garbage_and_bad_crc_end_the_journal(tmp_path):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=False)
    _fill(store)
    good = store.load()
    store.close()
    valid = path.read_bytes()

    path.write_bytes(valid + b"\x00\x00\x00\x05garbage!")
    assert FileOffsetStore(path).load() == good
    assert path.read_bytes() == valid

    record = bytearray(encode_record({"op": "commit", "g": "g", "o": [["t", 0, 1, -1, "", 0, None, 99]]}))
    record[-2] ^= 0xFF  # flip a payload bit: the CRC no longer matches
    path.write_bytes(valid + bytes(record))
    assert FileOffsetStore(path).load() == good

    path.write_bytes(valid + b"\xff\xff\xff\xff\x00\x00\x00\x00")  # an absurd length
    assert FileOffsetStore(path).load() == good


def test_a_torn_header_starts_afresh_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(MAGIC[:5])
    assert FileOffsetStore(path).load().offsets == {}
    path.write_bytes(b"PK\x03\x04 not ours at all")
    with pytest.raises(CorruptStoreError):
        FileOffsetStore(path)
    path.write_bytes(MAGIC + b"\x00\x02\x00\x00")
    with pytest.raises(CorruptStoreError, match="version 2"):
        FileOffsetStore(path)


def test_a_valid_record_that_does_not_parse_is_an_error_not_a_tail(tmp_path):
    path = tmp_path / "j"
    FileOffsetStore(path).close()
    with open(path, "ab") as f:
        f.write(encode_record({"op": "no-such-op"}))
    with pytest.raises(CorruptStoreError):
        FileOffsetStore(path)


def test_a_failed_append_leaves_no_partial_record(tmp_path, monkeypatch):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=False)
    store.commit_offsets("g", {("t", 0): off(1)})
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError):
        store.commit_offsets("g", {("t", 0): off(2, seq=2)})
    monkeypatch.setattr(os, "write", real_write)
    assert store.load().offsets["g"][("t", 0)].offset == 1  # unchanged: the write was not durable
    store.commit_offsets("g", {("t", 1): off(3, seq=3)})
    store.close()
    reopened = FileOffsetStore(path)
    assert reopened.truncated_bytes == 0
    assert reopened.load().offsets == {"g": {("t", 0): off(1), ("t", 1): off(3, seq=3)}}


def test_compaction_bounds_the_journal_and_keeps_the_live_data(tmp_path):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=False, compact_ratio=3.0, compact_min_bytes=4096)
    store.store_group(GROUP)
    for i in range(2000):
        store.commit_offsets("g", {("t", i % 4): off(i, seq=i)})
    assert store.compactions > 0
    assert path.stat().st_size <= 3 * 4096
    assert not (tmp_path / "j.tmp").exists()
    expected = store.load()
    assert {tp: o.offset for tp, o in expected.offsets["g"].items()} == {
        ("t", 0): 1996, ("t", 1): 1997, ("t", 2): 1998, ("t", 3): 1999}
    store.commit_offsets("g", {("t", 0): off(5000, seq=5000)})  # appends after a compaction replay too
    store.close()
    again = FileOffsetStore(path).load()
    assert again.groups == {"g": GROUP}
    assert again.offsets["g"][("t", 0)].offset == 5000


def test_a_bloated_journal_is_compacted_at_start_up(tmp_path):
    path = tmp_path / "j"
    store = FileOffsetStore(path, fsync=False, compact_min_bytes=1 << 30)
    for i in range(500):
        store.commit_offsets("g", {("t", 0): off(i, seq=i)})
    store.prepare_txn_offsets(3, "g", {("t", 1): off(7)})
    big = path.stat().st_size
    store.close()
    small = FileOffsetStore(path, fsync=False, compact_min_bytes=1024)
    assert small.compactions == 1
    assert path.stat().st_size < big / 10
    assert small.load().offsets["g"][("t", 0)].offset == 499
    assert small.load().pending_txn_offsets == {(3, "g"): {("t", 1): off(7)}}


_CHILD = textwrap.dedent("""
    import sys
    from kbroker.coordinator.offsets import CommittedOffset, FileOffsetStore
    store = FileOffsetStore(sys.argv[1], fsync=True, compact_min_bytes=2048)
    i = 0
    while True:
        store.commit_offsets("g", {("t", i % 3): CommittedOffset(i, -1, "", 0, None, i)})
        print(i, flush=True)
        i += 1
""")


def test_acknowledged_commits_survive_kill_9(tmp_path):
    path = tmp_path / "j"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        acked = -1
        while acked < 300:  # enough to pass a few compactions
            line = child.stdout.readline()
            assert line, "child died"
            acked = int(line)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    offsets = FileOffsetStore(path).load().offsets["g"]
    # Every acknowledged commit is there; the last partition written may even hold an unacknowledged later one.
    for i in range(acked - 2, acked + 1):
        assert offsets[("t", i % 3)].offset >= i


def test_records_are_json_one_op_each(tmp_path):
    # The format is documented in offsets.py; this keeps the document honest.
    path = tmp_path / "j"
    store = FileOffsetStore(path)
    store.commit_offsets("g", {("t", 0): off(1)})
    store.close()
    data = path.read_bytes()[12:]
    length = int.from_bytes(data[:4], "big")
    assert json.loads(data[8:8 + length]) == {"op": "commit", "g": "g", "o": [["t", 0, 1, 5, "", 1000, None, 1]]}
