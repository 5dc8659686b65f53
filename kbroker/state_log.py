"""The state log: where the coordinators and the security stores keep what must outlive the process.

Kafka keeps this state as records in compacted internal topics (``__consumer_offsets`` for committed offsets and
group metadata, ``__transaction_state`` for transactions) and SCRAM credentials and ACLs in the cluster metadata.
kbroker keeps each kind in a `StateLog`: an ordered log of JSON records that an owner replays at start-up to
rebuild its state, appends to before it changes that state, and from time to time replaces by its live records
(compaction). The owner decides what a record means; the log decides how it is kept:

* `FileStateLog`: one file in the data directory (``.kbroker/<name>.journal``).
* `MemoryStateLog`: a list in the process, for ``--storage memory`` and tests.

A broker of a cluster can back the same interface with a partition of an internal topic (records appended to
the partition's leader, replayed when it becomes the leader), which is why the interface is records in, records
out, and nothing about files.

The rules every owner relies on:

1. ``append`` returns only once the record is durable (as the log defines it: fsynced for a file log opened with
   ``fsync=True``, in the page cache without, in memory for the memory log) and raises OSError if it could not be
   made so, leaving no part of the record behind. Owners append first and change their in-memory state after, so
   a failed write changes nothing.
2. At start-up a short record or one failing its CRC at the end of the file is a torn write (a crash during an
   append): it is cut off and the log carries on from there, as Kafka's log recovery does. A record that passes
   its CRC but does not parse, or that its owner cannot apply, cannot come from tearing: it is corruption (a bug or
   a foreign writer) and raises `CorruptStateError`, so nothing is silently dropped.
3. Compaction rewrites the file atomically through `storage.checkpoint.write_atomically` (temporary file, fsync,
   rename, fsync of the directory): a crash leaves the old or the new log, never a mix.

File format, version 1 (the format both of kbroker's earlier journals used; data directories they wrote load
unchanged):

    header  := magic[8] version:uint16 reserved:uint16        (12 bytes, big-endian; the magic names the owner)
    record  := length:uint32 crc32c(payload):uint32 payload[length]
    payload := UTF-8 JSON object, compact separators

Migration rule: a reader refuses a log of a newer version; a new version must read the old ones (and may rewrite
them on compaction).

Concurrency: used from the event loop only; blocking file I/O on that loop, which is what a small broker wants.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Callable, Iterable
from typing import Protocol

import crc32c

from .storage.checkpoint import write_atomically

log = logging.getLogger("kbroker.state_log")

VERSION = 1
_HEADER = struct.Struct(">8sHH")
_RECORD_HEADER = struct.Struct(">II")
HEADER_BYTES = _HEADER.size
# A length above this is a torn or garbage header, not a record: no real record comes near it.
MAX_RECORD_BYTES = 256 * 1024 * 1024
# Kafka's log.cleaner.min.cleanable.ratio is 0.5 (half the log dirty); a log rewritten at 4x its live size does
# the same job with fewer rewrites, as Redis's auto-aof-rewrite-percentage (100) does for its AOF.
DEFAULT_COMPACT_RATIO = 4.0
DEFAULT_COMPACT_MIN_BYTES = 1024 * 1024

Record = dict


class CorruptStateError(Exception):
    """A state log cannot be read: not a log of this owner, a newer version, or a record that passes its CRC but
    does not parse or apply."""


class StateLog(Protocol):
    """An ordered log of JSON-object records (see the module's rules)."""

    def replay(self, apply: Callable[[Record], None]) -> None:
        """Calls ``apply`` with every stored record, in order; once, at start-up. Raises CorruptStateError when a
        record does not parse or ``apply`` raises ValueError, KeyError, TypeError or IndexError on it."""

    def append(self, record: Record) -> None:
        """Stores ``record`` durably after the others, or raises OSError and stores nothing."""

    def compact_if_due(self, live: Callable[[], Iterable[Record]]) -> None:
        """Replaces the log by ``live()`` (records that rebuild the current state) when it has grown enough since
        the last time. Called by the owner after each append and after replay; a failure is logged, not raised:
        the log is still whole."""

    def close(self) -> None: ...


def encode_record(record: Record) -> bytes:
    """One framed record, as the file log writes it."""
    payload = json.dumps(record, separators=(",", ":")).encode()
    return _RECORD_HEADER.pack(len(payload), crc32c.crc32c(payload)) + payload


_APPLY_ERRORS = (ValueError, KeyError, TypeError, IndexError)


class FileStateLog:
    """A state log in one file. Opening it checks the header, cuts a torn tail, and keeps the valid records for
    `replay` (creating the file if absent)."""

    def __init__(
        self,
        path: str | os.PathLike,
        magic: bytes,
        *,
        fsync: bool = True,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    ) -> None:
        if len(magic) != 8:
            raise ValueError("a state log's magic is 8 bytes")
        self.path = os.fspath(path)
        self.magic = magic
        self.fsync = fsync
        self.compact_ratio = compact_ratio
        self.compact_min_bytes = compact_min_bytes
        self._fd: int | None = None
        self._size = 0  # bytes in the file
        self._live_bytes: int | None = None  # its size after the last rewrite; None until the owner has replayed
        self._pending: list[tuple[int, memoryview]] | None = []  # (position, payload) of the records to replay
        self.truncated_bytes = 0  # torn tail dropped at start-up, for tests and logs
        self.compactions = 0
        self._open()

    @property
    def size_bytes(self) -> int:
        return self._size

    # -- start-up ------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        if data is None or (len(data) < _HEADER.size and self.magic.startswith(data[: len(self.magic)])):
            # New, or torn while its header was being written: nothing in it was ever acknowledged.
            write_atomically(self.path, _HEADER.pack(self.magic, VERSION, 0))
            self._size = _HEADER.size
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            return
        magic, version, _ = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0, 0)
        if magic != self.magic:
            raise CorruptStateError(f"{self.path} is not a {self.magic!r} state log")
        if version > VERSION:
            raise CorruptStateError(f"{self.path} has state log version {version}; this kbroker reads up to {VERSION}")
        end = self._scan(data)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if end < len(data):
            self.truncated_bytes = len(data) - end
            log.warning("%s: dropping a torn tail of %d bytes at position %d", self.path, self.truncated_bytes, end)
            os.ftruncate(self._fd, end)
            if self.fsync:
                os.fsync(self._fd)
        self._size = end

    def _scan(self, data: bytes) -> int:
        """Collects every whole, CRC-valid record; returns where they end (the rest is a torn tail)."""
        pos = _HEADER.size
        view = memoryview(data)
        assert self._pending is not None
        while pos + _RECORD_HEADER.size <= len(data):
            length, crc = _RECORD_HEADER.unpack_from(data, pos)
            start = pos + _RECORD_HEADER.size
            end = start + length
            if length > MAX_RECORD_BYTES or end > len(data):
                break
            payload = view[start:end]
            if crc32c.crc32c(payload) != crc:
                break
            self._pending.append((pos, payload))
            pos = end
        return pos

    def replay(self, apply: Callable[[Record], None]) -> None:
        if self._pending is None:
            raise RuntimeError(f"{self.path}: replayed twice")
        pending, self._pending = self._pending, None
        for pos, payload in pending:
            try:
                record = json.loads(bytes(payload))
                if not isinstance(record, dict):
                    raise TypeError(f"a record is a JSON object, not {type(record).__name__}")
                apply(record)
            except _APPLY_ERRORS as e:
                # Tearing cannot produce a record with a valid CRC: this is a bug or a foreign writer. Stop loudly.
                raise CorruptStateError(f"{self.path}: bad record at position {pos}: {e!r}") from e

    # -- writing -------------------------------------------------------------------------------------------------

    def append(self, record: Record) -> None:
        if self._fd is None:
            raise OSError(f"{self.path}: state log is closed")
        data = encode_record(record)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Leave no partial record behind: later appends would be lost behind it at the next start-up.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                log.exception("%s: could not cut back a failed append", self.path)
            raise
        self._size += len(data)

    def compact_if_due(self, live: Callable[[], Iterable[Record]]) -> None:
        records = None
        if self._live_bytes is None:
            # Right after start-up: what a rewrite would weigh decides whether the file is bloated already.
            records = [encode_record(r) for r in live()]
            self._live_bytes = _HEADER.size + sum(map(len, records))
        if self._size <= max(self.compact_min_bytes, self.compact_ratio * self._live_bytes):
            return
        try:
            if records is None:
                records = [encode_record(r) for r in live()]
            data = b"".join([_HEADER.pack(self.magic, VERSION, 0), *records])
            write_atomically(self.path, data)
        except OSError:
            # The old file is still whole; try again after the next append.
            log.exception("%s: compaction failed", self.path)
            return
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = self._live_bytes = len(data)
        self.compactions += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MemoryStateLog:
    """A state log that lives as long as the process (``--storage memory``). Records are kept (a new owner over
    the same log replays them, as over a file) and compacted by count on the file log's rule."""

    def __init__(self, *, compact_ratio: float = DEFAULT_COMPACT_RATIO, compact_min_records: int = 1024) -> None:
        self.compact_ratio = compact_ratio
        self.compact_min_records = compact_min_records
        self._records: list[Record] = []
        self._live_records = 0
        self._closed = False
        self.compactions = 0

    def replay(self, apply: Callable[[Record], None]) -> None:
        for pos, record in enumerate(self._records):
            try:
                apply(record)
            except _APPLY_ERRORS as e:
                raise CorruptStateError(f"memory state log: bad record {pos}: {e!r}") from e

    def append(self, record: Record) -> None:
        if self._closed:
            raise OSError("memory state log is closed")
        self._records.append(record)

    def compact_if_due(self, live: Callable[[], Iterable[Record]]) -> None:
        if len(self._records) > max(self.compact_min_records, self.compact_ratio * self._live_records):
            self._records = list(live())
            self._live_records = len(self._records)
            self.compactions += 1

    def close(self) -> None:
        self._closed = True


class KeyedState:
    """The latest value per key, over a state log: records ``{"k": key, "v": value}``, a null value deletes the
    key (a tombstone, as in a compacted Kafka topic). Transactions, SCRAM credentials and ACLs live in these.

    ``state`` is the live map; read it freely, change it only through `put`."""

    def __init__(self, state_log: StateLog) -> None:
        self.log = state_log
        self.state: dict[str, object] = {}
        state_log.replay(self._apply)
        state_log.compact_if_due(self._live)

    def _apply(self, record: Record) -> None:
        key, value = record["k"], record["v"]
        if not isinstance(key, str):
            raise TypeError(f"a key is a string, not {type(key).__name__}")
        if value is None:
            self.state.pop(key, None)
        else:
            self.state[key] = value

    def _live(self) -> list[Record]:
        return [{"k": k, "v": v} for k, v in self.state.items()]

    def put(self, key: str, value) -> None:
        """Records the latest value of ``key`` (None deletes it), durably, then changes ``state``; raises OSError
        and changes nothing when the write fails."""
        record = {"k": key, "v": value}
        self.log.append(record)
        self._apply(record)
        self.log.compact_if_due(self._live)

    def close(self) -> None:
        self.log.close()


def keyed_state(path: str | os.PathLike | None, magic: bytes, *, fsync: bool = True) -> KeyedState:
    """A KeyedState in the file at ``path``, or in memory when ``path`` is None."""
    return KeyedState(MemoryStateLog() if path is None else FileStateLog(path, magic, fsync=fsync))
