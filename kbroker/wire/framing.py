"""Size-prefixed frames: every Kafka request and response is an int32 length and that many bytes.

Sans-IO, in the style of h11, shaped for asyncio's ``BufferedProtocol``: ``get_buffer()`` hands out the
memory the next bytes should be received into, ``buffer_updated(n)`` says how many arrived, and complete
frames come out of ``next_frame()`` as writable buffers the caller owns until it hands them back with
``recycle(frame)`` (mutable: Produce writes offsets into the record batches of the request in place).
``feed(data)`` does the same from a bytes object.

Copies: small frames are received into a scratch buffer and copied out once (a ``bytearray``); a frame too
large for the scratch buffer is received straight into a buffer of its own (a ``memoryview``), taken from a
``BufferPool`` (buffer_pool.py; the server shares one among its connections). Recycling the frame hands
the buffer back for the next large frame, which takes it once nothing views it any more: a handler that
kept a slice of a request (instead of copying it) keeps that buffer. Frames above ``RECYCLE_MAX_BYTES``
get a buffer that is not pooled.

An idle connection holds no buffer: the scratch buffer is taken (from ``scratch_pool`` when there is one)
when bytes are about to arrive and handed back as soon as it holds no partial frame, so thousands of idle
connections cost their objects, not 64 KiB each.

A size above the limit (Kafka's ``socket.request.max.bytes``, 100 MiB by default) or below zero is a
protocol violation: :class:`FrameError`, and the connection is closed, as Kafka's NetworkReceive does with
InvalidReceiveException.
"""

from __future__ import annotations

import collections
import struct

from .buffer_pool import BufferPool

DEFAULT_MAX_FRAME_BYTES = 104857600  # socket.request.max.bytes
SCRATCH_BYTES = 64 * 1024  # per connection; larger frames get a buffer of their own
RECYCLE_MAX_BYTES = 2 * 1024 * 1024  # large-frame buffers up to this size are pooled (clients send <= ~1 MiB)
_SIZE = struct.Struct(">i")


class ScratchPool(BufferPool):
    """Receive buffers for connections with bytes arriving. A connection that holds none receives its next
    read into the landing buffer, shared by all, and keeps it only if bytes arrive: thousands of idle
    connections that close (a read that finds the end of the stream) allocate nothing. Sharing is safe
    because asyncio asks for the buffer, receives into it and reports the bytes in one callback."""

    def __init__(self, max_bytes: int, scratch_bytes: int = SCRATCH_BYTES):
        super().__init__(max_bytes, scratch_bytes)
        self._landing: bytearray | None = None

    def landing(self, size: int) -> bytearray:
        if self._landing is None:
            self._landing = self.take(size)
        return self._landing

    def keep(self) -> None:
        """Bytes arrived in the landing buffer: its borrower keeps it; the next read gets another."""
        self._landing = None


class FrameError(Exception):
    """The peer sent a frame size we will not read."""


class FrameReader:
    __slots__ = ("max_frame_bytes", "_scratch_bytes", "_scratch", "_view", "_start", "_end", "_big", "_big_filled",
                 "_frames", "_pool", "_scratch_pool", "_borrowed", "_recycle_max_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, scratch_bytes: int = SCRATCH_BYTES,
                 pool: BufferPool | None = None, scratch_pool: ScratchPool | None = None,
                 recycle_max_bytes: int = RECYCLE_MAX_BYTES):
        """``recycle_max_bytes``: frames up to this size are received into buffers from ``pool``."""
        self.max_frame_bytes = max_frame_bytes
        self._recycle_max_bytes = recycle_max_bytes
        self._scratch_bytes = scratch_bytes
        self._scratch: bytearray | None = None  # taken when bytes arrive, handed back when empty
        self._view: memoryview | None = None
        self._scratch_pool = scratch_pool
        self._borrowed = False  # _scratch is the scratch pool's landing buffer
        self._start = 0  # first byte not yet consumed
        self._end = 0  # end of the bytes received into the scratch buffer
        self._big: memoryview | None = None  # a frame larger than the scratch buffer, being received
        self._big_filled = 0
        self._frames: collections.deque = collections.deque()
        self._pool = pool if pool is not None else BufferPool(2 * recycle_max_bytes, recycle_max_bytes)

    # -- receiving -----------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        if self._big is not None:
            return self._big[self._big_filled:]
        if self._borrowed:  # lent for a read that brought nothing: it may be someone else's by now
            self._scratch, self._view, self._borrowed = None, None, False
        if self._scratch is None:
            pool = self._scratch_pool
            if pool is not None:
                self._scratch, self._borrowed = pool.landing(self._scratch_bytes), True
            else:
                self._scratch = bytearray(self._scratch_bytes)
            self._view = memoryview(self._scratch)
        if self._end == len(self._scratch):
            self._compact()
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled == len(self._big):
                self._frames.append(self._big)
                self._big = None
            return
        if self._borrowed:
            self._borrowed = False
            self._scratch_pool.keep()
        self._end += nbytes
        self._split()

    def feed(self, data) -> None:
        """Receive ``data`` as if it had been read from the socket into our buffers."""
        data = memoryview(data)
        while len(data):
            buf = self.get_buffer()
            n = min(len(buf), len(data))
            buf[:n] = data[:n]
            self.buffer_updated(n)
            data = data[n:]

    def next_frame(self):
        return self._frames.popleft() if self._frames else None

    def recycle(self, frame) -> None:
        """The caller is done with ``frame``: its buffer may take the next large frame."""
        if type(frame) is not memoryview:
            return  # a small frame, copied out of the scratch buffer
        base = frame.obj
        try:
            frame.release()
        except BufferError:  # something still holds the frame itself: leave the buffer to it
            return
        self._pool.give(base)  # the pool keeps it if it is not too large

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a returned frame."""
        pending = sum(len(f) + 4 for f in self._frames)
        if self._big is not None:
            return pending + 4 + self._big_filled
        return pending + self._end - self._start

    # -- internals -----------------------------------------------------------

    def _split(self) -> None:
        view, start, end = self._view, self._start, self._end
        while end - start >= 4:
            (size,) = _SIZE.unpack_from(view, start)
            if size < 0 or size > self.max_frame_bytes:
                raise FrameError(f"frame size {size} is outside 0..{self.max_frame_bytes}")
            have = end - start - 4
            if have >= size:
                self._frames.append(bytearray(view[start + 4:start + 4 + size]))
                start += 4 + size
                continue
            if 4 + size > self._scratch_bytes:
                # Too large for the scratch buffer: give the frame its own buffer and receive into it.
                big = self._large_buffer(size)
                big[:have] = view[start + 4:end]
                self._big, self._big_filled = big, have
                start = end = 0
            break
        if start == end:
            start = end = 0
            self._release_scratch()
        self._start, self._end = start, end

    def close(self) -> None:
        """The connection is gone: its receive buffer goes back to the pool (a read that found the end of
        the stream took one and never filled it)."""
        self._start = self._end = 0
        self._frames.clear()
        self._big = None
        if self._borrowed:
            self._scratch, self._view, self._borrowed = None, None, False
        self._release_scratch()

    def _release_scratch(self) -> None:
        """Nothing partial is buffered: the scratch buffer goes back to the pool (or to the allocator)."""
        scratch, self._scratch, self._view = self._scratch, None, None
        if scratch is not None and self._scratch_pool is not None:
            self._scratch_pool.give(scratch)

    def _large_buffer(self, size: int) -> memoryview:
        if size > self._recycle_max_bytes:
            return memoryview(bytearray(size))
        # A new buffer gets room for the next frames, which are seldom exactly as large as this one.
        buf = self._pool.take(size, capacity=min(self._recycle_max_bytes, size + size // 4))
        return memoryview(buf)[:size]

    def _compact(self) -> None:
        pending = bytes(self._view[self._start:self._end])
        self._view[:len(pending)] = pending
        self._start, self._end = 0, len(pending)
