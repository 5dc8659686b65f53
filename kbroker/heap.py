"""The C allocator beneath Python's, and the memory it keeps after Python has freed it.

Python returns its own small-object arenas to the system once they are empty, but larger objects come from
the C library's malloc. glibc serves a request of 128 KiB or more with a mapping of its own, unmapped when
freed, until such a mapping is freed: it then raises that threshold to the freed size (up to 32 MiB on 64-bit)
and its trim threshold to twice that (mallopt(3), the dynamic M_MMAP_THRESHOLD). From then on buffers of a
megabyte come from the heap, which gives back only a large free top: freed among small long-lived objects
they leave holes that stay resident (issue 16's soak crept up by a megabyte a minute so). kbroker keeps its
large buffers in pools instead of allocating them per request (wire/buffer_pool.py), writes a TLS answer in
pieces below 128 KiB (server.py), and when it lets go of many buffers at once (a burst of large fetches or of
connections is over) asks glibc to return the heap's free pages with ``trim`` (malloc_trim(3), which also
releases whole free pages inside the heap, not only at its top).

Pinning M_MMAP_THRESHOLD at 128 KiB was measured too (issue 16): it keeps RSS lowest, but every transient
megabyte (a TLS write's encrypted output, asyncio's joined writes) then costs a fresh mapping and its page
faults: a TLS consumer of 100 KiB records cost the broker 45 % more CPU per megabyte.

ctypes is loaded at the first trim, not at start-up: it costs about 0.5 MB of RSS, which an idle broker need
not pay. On other C libraries (musl, macOS) ``trim`` does nothing.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def _glibc():
    """The C library's symbols when it is glibc, else None."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or not a name this platform knows
        return None
    if not version or not version.startswith("glibc"):
        return None
    import ctypes

    return ctypes.CDLL(None)  # the process's own symbols, glibc's among them (no ldconfig run to find it)


def trim() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
