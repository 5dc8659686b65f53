"""A small durable journal of keyed JSON records, for coordinator state that must survive restarts.

Kafka keeps such state in compacted internal topics (``__transaction_state``): the latest record per key
wins and a tombstone deletes. This journal does the same in one file:

    header := magic[8] version:uint16 reserved:uint16
    record := length:uint32 crc32c(payload):uint32 payload     payload = UTF-8 JSON {"k": key, "v": value|null}

Every ``put`` is one write and, with ``fsync``, durable before it returns. Opening replays the file and
cuts a torn or corrupt tail (a record cut short or failing its CRC ends the journal, as Kafka's log recovery
does). When the file grows past ``compact_ratio`` times the live data it is rewritten to a temporary file
that replaces it by rename, so a crash leaves the old or the new file, never a mix.

Used from the event loop only; blocking file I/O, which is what a small broker wants.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import crc32c

from .storage.checkpoint import write_atomically

log = logging.getLogger("kbroker.journal")

_HEADER = struct.Struct(">8sHH")
_RECORD = struct.Struct(">II")
VERSION = 1


class KeyedJournal:
    def __init__(self, path: str | os.PathLike | None, magic: bytes, *, fsync: bool = True,
                 compact_ratio: float = 4.0, compact_min_bytes: int = 1 << 20):
        """``path`` None keeps everything in memory (``--storage memory``)."""
        assert len(magic) == 8
        self.path = Path(path) if path is not None else None
        self.magic = magic
        self.fsync = fsync
        self.compact_ratio = compact_ratio
        self.compact_min_bytes = compact_min_bytes
        self.state: dict[str, object] = {}
        self._fh = None
        self._size = 0
        self._live_size = 0
        if self.path is not None:
            self._open()

    # -- public --------------------------------------------------------------

    def put(self, key: str, value) -> None:
        """Record the latest value of ``key``; None deletes it."""
        if value is None:
            self.state.pop(key, None)
        else:
            self.state[key] = value
        if self._fh is not None:
            self._append(self._encode(key, value))
            if self._size > max(self.compact_min_bytes, self.compact_ratio * max(self._live_size, 1)):
                self._compact()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # -- file ----------------------------------------------------------------

    def _encode(self, key: str, value) -> bytes:
        payload = json.dumps({"k": key, "v": value}, separators=(",", ":")).encode()
        return _RECORD.pack(len(payload), crc32c.crc32c(payload)) + payload

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        if len(data) < _HEADER.size:
            self._write_file(_HEADER.pack(self.magic, VERSION, 0))
        else:
            magic, version, _ = _HEADER.unpack_from(data, 0)
            if magic != self.magic:
                raise RuntimeError(f"{self.path} is not a {self.magic!r} journal")
            if version > VERSION:
                raise RuntimeError(f"{self.path} was written by a newer kbroker (version {version})")
            end = self._replay(data)
            if end < len(data):
                log.warning("%s: cut a torn tail of %d bytes at %d", self.path, len(data) - end, end)
                with open(self.path, "r+b") as fh:
                    fh.truncate(end)
                    fh.flush()
                    os.fsync(fh.fileno())
        self._fh = open(self.path, "ab")
        self._size = self._fh.tell()
        self._live_size = self._size

    def _replay(self, data: bytes) -> int:
        pos = _HEADER.size
        while pos + _RECORD.size <= len(data):
            length, crc = _RECORD.unpack_from(data, pos)
            start = pos + _RECORD.size
            end = start + length
            if end > len(data) or crc32c.crc32c(data[start:end]) != crc:
                break
            try:
                rec = json.loads(data[start:end])
                key, value = rec["k"], rec["v"]
            except (ValueError, KeyError):
                break
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
            pos = end
        return pos

    def _append(self, record: bytes) -> None:
        before = self._size
        try:
            self._fh.write(record)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError:
            # Leave no partial record behind: cut back to where this one started.
            try:
                self._fh.truncate(before)
            except OSError:
                pass
            raise
        self._size += len(record)

    def _write_file(self, data: bytes) -> None:
        write_atomically(str(self.path), data)

    def _compact(self) -> None:
        data = bytearray(_HEADER.pack(self.magic, VERSION, 0))
        for key, value in self.state.items():
            data += self._encode(key, value)
        self._fh.close()
        self._write_file(bytes(data))
        self._fh = open(self.path, "ab")
        self._size = self._live_size = len(data)
