"""The frame reader fed whole, one byte at a time, and with trailing bytes; sizes it refuses."""

from __future__ import annotations

import struct

import pytest

from kbroker.wire.framing import FrameError, FrameReader
from kbroker.wire.header import body_offset, peek_header


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


FRAMES = [b"", b"a", b"hello world", bytes(range(256)) * 40]


def _drain(reader):
    out = []
    while (f := reader.next_frame()) is not None:
        out.append(f)
    return out


def test_whole():
    r = FrameReader()
    r.feed(b"".join(_frame(p) for p in FRAMES))
    assert _drain(r) == FRAMES
    assert r.buffered == 0


def test_byte_by_byte():
    r = FrameReader()
    data = b"".join(_frame(p) for p in FRAMES)
    got = []
    for i in range(len(data)):
        r.feed(data[i:i + 1])
        got += _drain(r)
    assert got == FRAMES


def test_trailing_partial_frame_waits():
    r = FrameReader()
    r.feed(_frame(b"one") + _frame(b"two")[:5])
    assert _drain(r) == [b"one"]
    assert r.buffered == 5
    r.feed(_frame(b"two")[5:])
    assert _drain(r) == [b"two"]


@pytest.mark.parametrize("size", [-1, -2**31, 101])
def test_refused_sizes(size):
    r = FrameReader(max_frame_bytes=100)
    with pytest.raises(FrameError):
        r.feed(struct.pack(">i", size))


def test_frames_larger_than_the_scratch_buffer():
    r = FrameReader(scratch_bytes=64)
    frames = [b"s" * 10, b"L" * 1000, b"t" * 60, b"M" * 61, b"", b"x" * 5000]
    data = b"".join(_frame(p) for p in frames)
    got = []
    for i in range(0, len(data), 7):
        r.feed(data[i:i + 7])
        got += _drain(r)
    assert got == frames
    assert all(isinstance(f, bytearray) for f in got)


def test_largest_allowed_size():
    r = FrameReader(max_frame_bytes=100)
    r.feed(_frame(b"x" * 100))
    assert _drain(r) == [b"x" * 100]


def test_header_v1_and_v2():
    frame = struct.pack(">hhih", 3, 12, 7, 3) + b"cid" + b"\x00" + b"BODY"
    h = peek_header(frame)
    assert (h.api_key, h.api_version, h.correlation_id, h.client_id) == (3, 12, 7, "cid")
    assert frame[body_offset(frame, flexible=True):] == b"BODY"
    assert frame[body_offset(frame, flexible=False):] == b"\x00BODY"
    null_client = struct.pack(">hhih", 18, 0, 1, -1)
    assert peek_header(null_client).client_id is None
