"""A byte range of an open segment file: stored batches on their way to a socket without passing through
Python (``os.sendfile`` on plaintext connections, server.py), or read into memory when they must be
(TLS, a socket that would block, an encoder writing into a plain buffer).

A region is only valid while its file descriptor is: it is made while a Fetch response is built and
sent in the same turn of the event loop, before anything can close, truncate or delete the segment
(those happen on the loop thread too). Segments only grow at their end, so the bytes of a region do not
change under it.
"""

from __future__ import annotations

import os

from kbroker.storage.base import StorageError


class FileRegion:
    __slots__ = ("fd", "position", "size", "last_offset")

    def __init__(self, fd: int, position: int, size: int, last_offset: int):
        self.fd = fd
        self.position = position
        self.size = size
        self.last_offset = last_offset  # of the last batch in the region (read_committed needs it)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"FileRegion(fd={self.fd}, position={self.position}, size={self.size})"

    def read(self) -> bytes:
        data = os.pread(self.fd, self.size, self.position)
        if len(data) != self.size:
            raise StorageError(f"read {len(data)} of {self.size} bytes at {self.position} (fd {self.fd})")
        return data

    __bytes__ = read

    def tail(self, skip: int) -> FileRegion:
        """The region without its first ``skip`` bytes (what a partial sendfile left)."""
        return FileRegion(self.fd, self.position + skip, self.size - skip, self.last_offset)
