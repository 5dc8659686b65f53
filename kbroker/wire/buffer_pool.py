"""Large buffers used again instead of allocated per request: a megabyte freshly allocated costs page faults
(or a memset) every time, one taken from here nothing. One pool per listener serves every connection, so the
memory it keeps is bounded by its size, not by the number of connections.

A buffer handed back may still be viewed by someone (the event loop holding the view it received into until
its callback returns, a transport that has not sent it yet, a handler that kept a slice). Whether it is, the
bytearray itself says when it is next taken: it refuses to resize while any view of it is alive, and such a
buffer is left to whoever holds it and forgotten here.
"""

from __future__ import annotations

DEFAULT_POOL_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BUFFER_BYTES = 8 * 1024 * 1024


class BufferPool:
    __slots__ = ("max_bytes", "max_buffer_bytes", "_free", "_kept")

    def __init__(self, max_bytes: int = DEFAULT_POOL_BYTES, max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES):
        self.max_bytes = max_bytes  # kept in all
        self.max_buffer_bytes = max_buffer_bytes  # larger buffers are not kept
        self._free: list[bytearray] = []
        self._kept = 0

    @property
    def kept_bytes(self) -> int:
        return self._kept

    def take(self, size: int, capacity: int | None = None) -> bytearray:
        """A buffer of at least ``size`` bytes (its contents are whatever it held); a new one of
        ``capacity`` (default ``size``) bytes when none is free."""
        free = self._free
        i = 0
        while i < len(free):
            buf = free[i]
            if len(buf) < size:
                i += 1
                continue
            del free[i]
            self._kept -= len(buf)
            try:
                buf.append(0)
                del buf[-1]
            except BufferError:
                continue  # still viewed: not ours any more
            return buf
        return bytearray(max(size, capacity or 0))

    def give(self, buf: bytearray) -> None:
        """``buf`` may be handed out again (once nothing views it)."""
        if len(buf) <= self.max_buffer_bytes and self._kept + len(buf) <= self.max_bytes:
            self._free.append(buf)
            self._kept += len(buf)
