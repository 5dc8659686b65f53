"""The frame reader fed whole, one byte at a time, and with trailing bytes; sizes it refuses."""

from __future__ import annotations

import struct

import pytest

from kbroker.wire.buffer_pool import BufferPool
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
    assert all(isinstance(f, (bytearray, memoryview)) for f in got)
    assert all(not memoryview(f).readonly for f in got)  # Produce writes offsets into the request in place


def _one_large(r, payload):
    r.feed(_frame(payload))
    (f,) = _drain(r)
    return f


def test_a_recycled_large_frame_buffer_takes_the_next_large_frame():
    r = FrameReader(scratch_bytes=64)
    first = _one_large(r, b"A" * 1000)
    base = first.obj
    r.recycle(first)
    second = _one_large(r, b"B" * 900)
    assert second.obj is base and bytes(second) == b"B" * 900  # same memory, only the new bytes
    r.recycle(second)
    third = _one_large(r, b"C" * 2000)  # larger than the spare: a new buffer
    assert third.obj is not base and bytes(third) == b"C" * 2000


def test_a_buffer_someone_still_views_is_never_reused():
    r = FrameReader(scratch_bytes=64)
    first = _one_large(r, b"A" * 1000)
    kept = memoryview(first)[10:20]  # a handler that kept a slice of the request instead of copying it
    r.recycle(first)
    second = _one_large(r, b"B" * 1000)
    assert second.obj is not kept.obj
    assert bytes(kept) == b"A" * 10


def test_small_frames_are_not_recycled():
    r = FrameReader(scratch_bytes=64)
    r.feed(_frame(b"x" * 10))
    (f,) = _drain(r)
    r.recycle(f)
    assert bytes(f) == b"x" * 10


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


def test_a_pool_is_bounded_and_never_hands_out_a_viewed_buffer():
    pool = BufferPool(max_bytes=3000, max_buffer_bytes=2000)
    a, b, c = bytearray(1000), bytearray(1500), bytearray(2500)
    pool.give(a)
    pool.give(b)
    pool.give(c)  # larger than any buffer it keeps
    pool.give(bytearray(1000))  # would take it past 3000 bytes kept
    assert pool.kept_bytes == 2500
    kept = memoryview(a)[:10]  # someone still views a
    assert pool.take(900) is b  # a is skipped (and kept), b is free
    assert pool.kept_bytes == 1000
    fresh = pool.take(900, capacity=1200)
    assert fresh is not a and len(fresh) == 1200
    del kept
    assert pool.take(900) is a  # nothing views it any more: handed out again
    assert pool.kept_bytes == 0 and len(a) == 1000


def test_a_pool_hands_out_the_smallest_free_buffer_that_fits():
    pool = BufferPool(max_bytes=10_000, max_buffer_bytes=5000)
    big, small, middle = bytearray(4000), bytearray(1000), bytearray(2000)
    for buf in (big, small, middle):
        pool.give(buf)
    assert pool.take(1500) is middle  # not the first that fits: the 4000 stays for a larger request
    assert pool.take(3000) is big
    assert pool.take(500) is small


def test_a_full_pool_forgets_the_buffers_still_viewed_to_keep_a_free_one():
    pool = BufferPool(max_bytes=2000, max_buffer_bytes=2000)
    held, free = bytearray(1000), bytearray(1000)
    pool.give(held)
    pool.give(free)
    view = memoryview(held)  # viewed for good, say
    newcomer = bytearray(1000)
    pool.give(newcomer)  # full: the viewed one makes room
    assert pool.kept_bytes == 2000
    assert {id(pool.take(1000)), id(pool.take(1000))} == {id(free), id(newcomer)}
    assert pool.take(1000) is not held
    view.release()


def test_looking_at_a_buffer_neither_changes_nor_grows_it():
    import sys

    pool = BufferPool()
    buf = bytearray(b"x" * 100_000)
    size = sys.getsizeof(buf)
    view = memoryview(buf)
    pool.give(buf)
    assert pool.take(10) is not buf  # viewed: passed over, untouched
    view.release()
    assert pool.take(10) is buf
    assert buf == b"x" * 100_000 and sys.getsizeof(buf) == size


def test_frame_readers_sharing_a_pool_take_each_others_buffers():
    pool = BufferPool()
    r1, r2 = FrameReader(scratch_bytes=64, pool=pool), FrameReader(scratch_bytes=64, pool=pool)
    f = _one_large(r1, b"A" * 1000)
    base = f.obj
    r1.recycle(f)
    g = _one_large(r2, b"B" * 800)
    assert g.obj is base and bytes(g) == b"B" * 800


def test_an_idle_reader_holds_no_buffer_and_a_read_that_brings_nothing_allocates_nothing():
    from kbroker.wire.framing import ScratchPool

    pool = ScratchPool(1 << 20, scratch_bytes=64)
    readers = [FrameReader(scratch_bytes=64, scratch_pool=pool) for _ in range(100)]
    landing = None
    for r in readers:  # each is asked for a buffer and then gets the end of the stream
        buf = r.get_buffer()
        landing = landing or buf.obj
        assert buf.obj is landing  # the one landing buffer, lent again and again
        r.close()
    r = readers[0]
    buf = r.get_buffer()
    frame = struct.pack(">i", 3) + b"abc"
    buf[:len(frame)] = frame
    r.buffer_updated(len(frame))
    assert bytes(r.next_frame()) == b"abc"
    assert pool.kept_bytes == 64  # kept by the reader while the bytes came, then back to the pool: none partial
    half = struct.pack(">i", 10) + b"abc"  # a partial frame keeps its buffer until the rest arrives
    b2 = readers[1].get_buffer()
    b2[:len(half)] = half
    readers[1].buffer_updated(len(half))
    assert readers[1].get_buffer().obj is b2.obj


def test_a_pool_lets_go_of_its_buffers_once_none_was_taken_for_a_whole_period():
    pool = BufferPool()
    pool.give(bytearray(1000))
    pool.give(pool.take(500))  # taken in this period: kept
    assert pool.release_unused() == 0 and pool.kept_bytes == 1000
    assert pool.release_unused() == 1000  # a period without a take: let go of
    assert pool.kept_bytes == 0 and len(pool.take(10)) == 10
