"""Large buffers used again instead of allocated per request: a megabyte freshly allocated costs page faults
(or a memset) every time, one taken from here nothing. One pool per listener serves every connection, so the
memory it keeps is bounded by its size, not by the number of connections.

A buffer handed back may still be viewed by someone (the event loop holding the view it received into until
its callback returns, a transport that has not sent it yet, a handler that kept a slice). Whether it is, the
bytearray itself says when it is next looked at: it refuses to resize while any view of it is alive. Such a
buffer stays in the pool and is handed out once nothing views it any more: a chunk of stored batches queued
for a slow reader (server.py ``_pump``) comes back when the reader has taken it, instead of the next chunk
needing a fresh megabyte from the C allocator (issue 16's soak: fresh 1 MiB chunks, freed at different times
among small long-lived objects, made the heap creep up by a megabyte a minute). Only when the pool is full are
the buffers still viewed forgotten, to make room: one viewed for good (a handler keeping a slice) then stops
holding a place.
"""

from __future__ import annotations

DEFAULT_POOL_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BUFFER_BYTES = 8 * 1024 * 1024


class BufferPool:
    __slots__ = ("max_bytes", "max_buffer_bytes", "_free", "_kept", "_taken")

    def __init__(self, max_bytes: int = DEFAULT_POOL_BYTES, max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES):
        self.max_bytes = max_bytes  # kept in all
        self.max_buffer_bytes = max_buffer_bytes  # larger buffers are not kept
        self._free: list[bytearray] = []
        self._kept = 0
        self._taken = False  # since the last release_unused

    @property
    def kept_bytes(self) -> int:
        return self._kept

    def take(self, size: int, capacity: int | None = None) -> bytearray:
        """The smallest kept buffer of at least ``size`` bytes that nothing views (its contents are whatever
        it held); a new one of ``capacity`` (default ``size``) bytes when there is none. Smallest, so that a
        request's buffer does not take the one a larger chunk needs next."""
        self._taken = True
        free = self._free
        best = -1
        best_len = 0
        for i, buf in enumerate(free):
            n = len(buf)
            if n < size or (best >= 0 and n >= best_len) or _viewed(buf):
                continue
            best, best_len = i, n
            if n == size:
                break
        if best < 0:
            return bytearray(max(size, capacity or 0))
        self._kept -= best_len
        return free.pop(best)

    def give(self, buf: bytearray) -> None:
        """``buf`` may be handed out again (once nothing views it)."""
        n = len(buf)
        if n > self.max_buffer_bytes:
            return
        if self._kept + n > self.max_bytes:
            self._forget_viewed()
            if self._kept + n > self.max_bytes:
                return
        self._free.append(buf)
        self._kept += n

    def release_unused(self) -> int:
        """Let go of every kept buffer if none was asked for since the last call (the server calls this
        every few seconds): a burst of large requests or slow readers costs memory while it lasts, not
        after. Returns the bytes let go of."""
        if self._taken:
            self._taken = False
            return 0
        released = self._kept
        self._free = []
        self._kept = 0
        return released

    def _forget_viewed(self) -> None:
        kept = [buf for buf in self._free if not _viewed(buf)]
        self._free = kept
        self._kept = sum(len(buf) for buf in kept)


def _viewed(buf: bytearray) -> bool:
    """Whether anything still views ``buf``: a bytearray with exports refuses to resize (checked before it
    changes anything). Shrinking by its last byte and putting it back moves nothing and allocates nothing."""
    if not buf:
        return False  # nothing in it to overwrite
    last = buf[-1]
    try:
        del buf[-1]
    except BufferError:
        return True
    buf.append(last)
    return False
