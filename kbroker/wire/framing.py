"""Size-prefixed frames: every Kafka request and response is an int32 length and that many bytes.

Sans-IO, in the style of h11: ``feed(data)`` buffers bytes and ``next_frame()`` returns a complete frame or
None when more bytes are needed. A size above the limit (Kafka's ``socket.request.max.bytes``, 100 MiB by
default) or below zero is a protocol violation: :class:`FrameError`, and the connection is closed, as Kafka's
NetworkReceive does with InvalidReceiveException.
"""

from __future__ import annotations

import struct

DEFAULT_MAX_FRAME_BYTES = 104857600  # socket.request.max.bytes
_SIZE = struct.Struct(">i")


class FrameError(Exception):
    """The peer sent a frame size we will not read."""


class FrameReader:
    __slots__ = ("_buf", "_pos", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self._buf = bytearray()
        self._pos = 0
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 4:
            return None
        (size,) = _SIZE.unpack_from(buf, pos)
        if size < 0 or size > self.max_frame_bytes:
            raise FrameError(f"frame size {size} is outside 0..{self.max_frame_bytes}")
        if avail < 4 + size:
            return None
        start = pos + 4
        end = start + size
        with memoryview(buf) as view:
            frame = bytes(view[start:end])  # one copy; the view is released before the buffer changes
        if end == len(buf):
            buf.clear()
            self._pos = 0
        elif end > 1 << 20:
            del buf[:end]
            self._pos = 0
        else:
            self._pos = end
        return frame

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos
