"""Index files whose entries lie (issue 16): an entry in order but pointing into the middle of a batch, or at
the wrong batch, and a batch in the body of a segment whose header was damaged. A Fetch answer carries whole
batches only, or an error for that partition; the connection and the other partitions are unaffected; the
lying index is rebuilt from its segment."""

from __future__ import annotations

import glob
import os
import struct

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.records.builder import simple_batch
from test_hostile_fetch import _batches, _client, _create, _fetch, _produce, _still_serves


def _index_path(data_dir, topic):
    (path,) = glob.glob(os.path.join(str(data_dir), f"{topic}-0", "*.index"))
    return path


def _corrupt_index(path, entry: int, shift: int) -> None:
    """Move one entry's position by ``shift`` bytes, keeping the entries in order."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        rel, pos = struct.unpack_from(">ii", data, entry * 8)
        struct.pack_into(">ii", data, entry * 8, rel, pos + shift)
        f.seek(0)
        f.write(data)


@pytest.mark.parametrize("shift", [7, 61, -1])
def test_an_index_entry_pointing_into_a_batch_is_rebuilt(tmp_path, topic_name, shift):
    data_dir = tmp_path / "data"
    small = [b"v" * 300] * 3
    with Broker(port=0, data_dir=data_dir) as b:
        c = _client(b)
        _create(c, topic_name, configs={"index.interval.bytes": "1"})
        for i in range(40):
            _produce(c, topic_name, simple_batch(*small))
    index = _index_path(data_dir, topic_name)
    assert os.path.getsize(index) >= 8 * 10
    _corrupt_index(index, 5, shift)  # in order, but not where a batch starts
    with Broker(port=0, data_dir=data_dir) as b:
        c = _client(b)
        for offset in (0, 20, 22, 60, 119):
            resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, offset),), max_bytes=1 << 20))
            p = resp.responses[0].partitions[0]
            assert p.error_code == 0
            got = _batches(p.records)
            assert got[0][0] <= offset <= got[0][1], (offset, got[:2])
            assert got[-1][1] == 119




def _batch_positions(log_path) -> list[tuple[int, int]]:
    """(position, base offset) of each batch of a segment file."""
    with open(log_path, "rb") as f:
        data = f.read()
    out = []
    pos = 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((pos, base))
        pos += 12 + length
    return out


@pytest.mark.parametrize("length", [0x7FFFFFFF, -5, 3])
def test_a_damaged_batch_in_the_body_of_a_segment_is_never_sent(tmp_path, topic_name, length):
    """A batch before the last index entry is not scanned at start-up; its length field is damaged. Fetches
    get the whole batches before it, an error for it (KAFKA_STORAGE_ERROR), and the other partition of the
    same request its records."""
    data_dir = tmp_path / "data"
    with Broker(port=0, data_dir=data_dir) as b:
        c = _client(b)
        _create(c, topic_name, partitions=2, configs={"index.interval.bytes": "1"})
        for i in range(40):
            _produce(c, topic_name, simple_batch(b"v" * 300))
        _produce(c, topic_name, simple_batch(b"other"), partition=1)
    (log_path,) = glob.glob(os.path.join(str(data_dir), f"{topic_name}-0", "*.log"))
    positions = _batch_positions(log_path)
    bad_pos, bad_base = positions[10]
    with open(log_path, "r+b") as f:
        f.seek(bad_pos + 8)
        f.write(struct.pack(">i", length))
    with Broker(port=0, data_dir=data_dir) as b:
        c = _client(b)
        resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, 0), (1, 0)), max_bytes=1 << 20))
        p0, p1 = resp.responses[0].partitions
        assert p0.error_code == 0
        assert _batches(p0.records) == [(i, i) for i in range(bad_base)]
        assert _batches(p1.records) == [(0, 0)]
        resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, bad_base), (1, 0)), max_bytes=1 << 20))
        p0, p1 = resp.responses[0].partitions
        assert p0.error_code == ErrorCode.KAFKA_STORAGE_ERROR and len(p0.records) == 0
        assert _batches(p1.records) == [(0, 0)]
        resp = c.request(1, 11, _fetch(topic=topic_name, parts=((0, 30),), max_bytes=1 << 20))
        p = resp.responses[0].partitions[0]
        assert _batches(p.records)[0][0] == 30, p
        _still_serves(c)
