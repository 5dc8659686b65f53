"""The durable part of the group coordinator: committed offsets and group metadata.

Kafka keeps these in the compacted `__consumer_offsets` topic: one record per (group, partition) offset, one per group's
metadata, tombstones for deletions, and transactional offsets that count only once the transaction's marker says commit.
kbroker keeps the same facts behind a small domain interface, `OffsetStore`, with two backends:

* `MemoryOffsetStore`: nothing survives the process.
* `FileOffsetStore`: an append-only journal. Every operation is one record, appended with a single write and, with
  `fsync=True`, flushed to disk before the call returns, so an acknowledged commit survives kill -9 and power loss (with
  `fsync=False` it survives kill -9 only: the bytes are in the page cache). Start-up replays the journal and truncates
  a torn tail: a record cut short or failing its CRC32C ends the journal, like Kafka's log recovery. When the file grows
  past `compact_ratio` times the size of the live data as of the last rewrite (Redis rewrites its AOF on the same rule),
  the live state is written to a temporary file that replaces the journal by rename, so a crash leaves the old or the new
  journal, never a mix.

Journal format, version 1:

    header  := b"KBOFFSET" version:uint16 reserved:uint16            (12 bytes, big-endian)
    record  := length:uint32 crc32c(payload):uint32 payload[length]
    payload := UTF-8 JSON object {"op": ..., ...}, bytes in base64

The ops are `commit`, `delete_offsets`, `group`, `delete_group`, `txn_prepare` and `txn_complete` (see `_OPS`).
Migration rule: a reader refuses a journal of a newer version; a new version must read the old ones (and may rewrite
them on compaction).

The store holds its own copy of the live state (it needs one to compact) and is not thread-safe: like the coordinator,
it is used from the event loop only. Writes are blocking file I/O on that loop, which is what a small CI broker wants.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import crc32c

log = logging.getLogger("kbroker.coordinator.offsets")

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """One committed offset, as Kafka's OffsetCommitValue."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = 0
    # Only OffsetCommit v1-v4 can set it (retention_time_ms); otherwise offsets.retention.minutes applies.
    expire_timestamp_ms: int | None = None
    # The commit's place in the order of all commits; Kafka uses the record's offset in __consumer_offsets. A
    # transaction's offsets replace a partition's committed offset only if they were written after it.
    commit_seq: int = 0


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes  # the member's metadata for the group's protocol
    assignment: bytes


@dataclass(frozen=True, slots=True)
class StoredGroup:
    """A group's metadata as of its last generation, as Kafka's GroupMetadataValue."""

    group_id: str
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int
    members: tuple[StoredMember, ...] = ()


@dataclass
class StoreSnapshot:
    groups: dict[str, StoredGroup] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, CommittedOffset]] = field(default_factory=dict)
    # (producer_id, group_id) -> offsets written by a transaction that has not ended yet.
    pending_txn_offsets: dict[tuple[int, str], dict[TopicPartition, CommittedOffset]] = field(default_factory=dict)


class CorruptStoreError(Exception):
    """The journal cannot be read: not a journal, a newer version, or a record that passes its CRC but is malformed."""


class OffsetStore(ABC):
    """Where the group coordinator keeps what must outlive the process. A method returns once the change is durable
    (as the backend defines it) and raises OSError if it could not be made so; then nothing changed."""

    @abstractmethod
    def load(self) -> StoreSnapshot:
        """Everything stored, for the coordinator's start-up."""

    @abstractmethod
    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None: ...

    @abstractmethod
    def delete_offsets(self, group_id: str, partitions: Collection[TopicPartition]) -> None:
        """Removes committed offsets (OffsetDelete, retention) and the group's pending transactional ones for them."""

    @abstractmethod
    def store_group(self, group: StoredGroup) -> None: ...

    @abstractmethod
    def delete_group(self, group_id: str) -> None:
        """Removes the group's metadata, committed offsets and pending transactional offsets."""

    @abstractmethod
    def prepare_txn_offsets(
        self, producer_id: int, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]
    ) -> None: ...

    @abstractmethod
    def complete_txn_offsets(
        self, producer_id: int, group_id: str, committed: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        """Ends the producer's transaction for the group: its pending offsets go, and `committed` (empty on abort;
        only the offsets that win over later plain commits on commit) become committed offsets, all at once."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass


class _LiveState:
    """The state every backend keeps; each method is one journal op."""

    def __init__(self) -> None:
        self.snapshot = StoreSnapshot()

    def commit(self, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        if offsets:
            self.snapshot.offsets.setdefault(group_id, {}).update(offsets)

    def delete_offsets(self, group_id: str, partitions: Collection[TopicPartition]) -> None:
        committed = self.snapshot.offsets.get(group_id)
        if committed is not None:
            for tp in partitions:
                committed.pop(tp, None)
            if not committed:
                del self.snapshot.offsets[group_id]
        for key in [k for k in self.snapshot.pending_txn_offsets if k[1] == group_id]:
            pending = self.snapshot.pending_txn_offsets[key]
            for tp in partitions:
                pending.pop(tp, None)
            if not pending:
                del self.snapshot.pending_txn_offsets[key]

    def group(self, group: StoredGroup) -> None:
        self.snapshot.groups[group.group_id] = group

    def delete_group(self, group_id: str) -> None:
        self.snapshot.groups.pop(group_id, None)
        self.snapshot.offsets.pop(group_id, None)
        for key in [k for k in self.snapshot.pending_txn_offsets if k[1] == group_id]:
            del self.snapshot.pending_txn_offsets[key]

    def txn_prepare(self, producer_id: int, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        if offsets:
            self.snapshot.pending_txn_offsets.setdefault((producer_id, group_id), {}).update(offsets)

    def txn_complete(
        self, producer_id: int, group_id: str, committed: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        self.snapshot.pending_txn_offsets.pop((producer_id, group_id), None)
        self.commit(group_id, committed)

    def copy(self) -> StoreSnapshot:
        s = self.snapshot
        return StoreSnapshot(
            groups=dict(s.groups),
            offsets={g: dict(o) for g, o in s.offsets.items()},
            pending_txn_offsets={k: dict(o) for k, o in s.pending_txn_offsets.items()},
        )


class MemoryOffsetStore(OffsetStore):
    def __init__(self) -> None:
        self._state = _LiveState()

    def load(self) -> StoreSnapshot:
        return self._state.copy()

    def commit_offsets(self, group_id, offsets):
        self._state.commit(group_id, dict(offsets))

    def delete_offsets(self, group_id, partitions):
        self._state.delete_offsets(group_id, list(partitions))

    def store_group(self, group):
        self._state.group(group)

    def delete_group(self, group_id):
        self._state.delete_group(group_id)

    def prepare_txn_offsets(self, producer_id, group_id, offsets):
        self._state.txn_prepare(producer_id, group_id, dict(offsets))

    def complete_txn_offsets(self, producer_id, group_id, committed):
        self._state.txn_complete(producer_id, group_id, dict(committed))


# --- journal encoding -------------------------------------------------------------------------------------------

MAGIC = b"KBOFFSET"
VERSION = 1
_HEADER = struct.Struct(">8sHH")
_RECORD_HEADER = struct.Struct(">II")
# A length above this is a torn or garbage header, not a record: no real record comes near it.
MAX_RECORD_BYTES = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _enc_offsets(offsets: Mapping[TopicPartition, CommittedOffset]) -> list[list]:
    return [
        [t, p, o.offset, o.leader_epoch, o.metadata, o.commit_timestamp_ms, o.expire_timestamp_ms, o.commit_seq]
        for (t, p), o in offsets.items()
    ]


def _dec_offsets(rows: list[list]) -> dict[TopicPartition, CommittedOffset]:
    return {(r[0], r[1]): CommittedOffset(r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows}


def _enc_group(g: StoredGroup) -> dict:
    return {
        "generation_id": g.generation_id,
        "protocol_type": g.protocol_type,
        "protocol_name": g.protocol_name,
        "leader_id": g.leader_id,
        "state_timestamp_ms": g.state_timestamp_ms,
        "members": [
            [m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
             m.session_timeout_ms, _b64(m.subscription), _b64(m.assignment)]
            for m in g.members
        ],
    }


def _dec_group(group_id: str, d: dict) -> StoredGroup:
    members = tuple(
        StoredMember(m[0], m[1], m[2], m[3], m[4], m[5], _unb64(m[6]), _unb64(m[7])) for m in d["members"]
    )
    return StoredGroup(
        group_id, d["generation_id"], d["protocol_type"], d["protocol_name"], d["leader_id"],
        d["state_timestamp_ms"], members,
    )


def _replay_commit(state: _LiveState, r: dict) -> None:
    state.commit(r["g"], _dec_offsets(r["o"]))


def _replay_delete_offsets(state: _LiveState, r: dict) -> None:
    state.delete_offsets(r["g"], [(t, p) for t, p in r["p"]])


def _replay_group(state: _LiveState, r: dict) -> None:
    state.group(_dec_group(r["g"], r["v"]))


def _replay_delete_group(state: _LiveState, r: dict) -> None:
    state.delete_group(r["g"])


def _replay_txn_prepare(state: _LiveState, r: dict) -> None:
    state.txn_prepare(r["pid"], r["g"], _dec_offsets(r["o"]))


def _replay_txn_complete(state: _LiveState, r: dict) -> None:
    state.txn_complete(r["pid"], r["g"], _dec_offsets(r["o"]))


_OPS = {
    "commit": _replay_commit,
    "delete_offsets": _replay_delete_offsets,
    "group": _replay_group,
    "delete_group": _replay_delete_group,
    "txn_prepare": _replay_txn_prepare,
    "txn_complete": _replay_txn_complete,
}


def encode_record(record: dict) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return _RECORD_HEADER.pack(len(payload), crc32c.crc32c(payload)) + payload


def _snapshot_records(snapshot: StoreSnapshot) -> list[bytes]:
    out = [encode_record({"op": "group", "g": g.group_id, "v": _enc_group(g)}) for g in snapshot.groups.values()]
    out += [encode_record({"op": "commit", "g": gid, "o": _enc_offsets(o)}) for gid, o in snapshot.offsets.items()]
    out += [
        encode_record({"op": "txn_prepare", "pid": pid, "g": gid, "o": _enc_offsets(o)})
        for (pid, gid), o in snapshot.pending_txn_offsets.items()
    ]
    return out


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileOffsetStore(OffsetStore):
    """The journal backend. Opening it replays the file (creating it if absent)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fsync: bool = True,
        compact_ratio: float = 4.0,
        compact_min_bytes: int = 1024 * 1024,
    ) -> None:
        self.path = os.fspath(path)
        self.fsync = fsync
        self.compact_ratio = compact_ratio
        self.compact_min_bytes = compact_min_bytes
        self._state = _LiveState()
        self._fd: int | None = None
        self._size = 0  # bytes in the journal file
        self._live_bytes = 0  # its size after the last rewrite (or the size a rewrite would have at start-up)
        self.truncated_bytes = 0  # torn tail dropped at start-up, for tests and logs
        self.compactions = 0
        self._open()

    # -- start-up ------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        if data is None or (len(data) < _HEADER.size and MAGIC.startswith(data[: len(MAGIC)])):
            # New, or torn while its header was being written: nothing in it was ever acknowledged.
            self._write_file(_HEADER.pack(MAGIC, VERSION, 0))
            self._size = self._live_bytes = _HEADER.size
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            return
        magic, version, _ = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0, 0)
        if magic != MAGIC:
            raise CorruptStoreError(f"{self.path} is not a kbroker offsets journal")
        if version > VERSION:
            raise CorruptStoreError(f"{self.path} has journal version {version}; this kbroker reads up to {VERSION}")
        end = self._replay(data)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if end < len(data):
            self.truncated_bytes = len(data) - end
            log.warning("%s: dropping a torn tail of %d bytes at position %d", self.path, self.truncated_bytes, end)
            os.ftruncate(self._fd, end)
            if self.fsync:
                os.fsync(self._fd)
        self._size = end
        records = _snapshot_records(self._state.snapshot)
        self._live_bytes = _HEADER.size + sum(map(len, records))
        if self._should_compact():
            self._compact(records)

    def _replay(self, data: bytes) -> int:
        """Applies every whole, CRC-valid record; returns where the valid journal ends."""
        pos = _HEADER.size
        view = memoryview(data)
        while pos + _RECORD_HEADER.size <= len(data):
            length, crc = _RECORD_HEADER.unpack_from(data, pos)
            start = pos + _RECORD_HEADER.size
            end = start + length
            if length > MAX_RECORD_BYTES or end > len(data):
                break
            payload = view[start:end]
            if crc32c.crc32c(payload) != crc:
                break
            try:
                record = json.loads(bytes(payload))
                _OPS[record["op"]](self._state, record)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                # Tearing cannot produce a record with a valid CRC: this is a bug or a foreign writer. Stop loudly.
                raise CorruptStoreError(f"{self.path}: bad record at position {pos}: {e!r}") from e
            pos = end
        return pos

    # -- writing -------------------------------------------------------------------------------------------------

    def _write_file(self, data: bytes) -> None:
        """Writes a whole new journal to `path` atomically (temp file, fsync, rename, fsync of the directory)."""
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if self.fsync:
            _fsync_dir(self.path)

    def _append(self, record: dict) -> None:
        if self._fd is None:
            raise OSError("offset store is closed")
        data = encode_record(record)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Leave no partial record behind: later appends would be lost behind it at the next replay.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                log.exception("%s: could not cut back a failed append", self.path)
            raise
        self._size += len(data)

    def _should_compact(self) -> bool:
        return self._size > max(self.compact_min_bytes, self.compact_ratio * self._live_bytes)

    def _maybe_compact(self) -> None:
        if self._should_compact():
            try:
                self._compact(_snapshot_records(self._state.snapshot))
            except OSError:
                # The journal is still whole; try again after the next append.
                log.exception("%s: compaction failed", self.path)

    def _compact(self, records: list[bytes]) -> None:
        data = b"".join([_HEADER.pack(MAGIC, VERSION, 0), *records])
        self._write_file(data)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = self._live_bytes = len(data)
        self.compactions += 1

    # -- OffsetStore ---------------------------------------------------------------------------------------------
    # Each operation writes its record first and changes the live state only once the record is durable.

    def load(self) -> StoreSnapshot:
        return self._state.copy()

    def commit_offsets(self, group_id, offsets):
        offsets = dict(offsets)
        self._append({"op": "commit", "g": group_id, "o": _enc_offsets(offsets)})
        self._state.commit(group_id, offsets)
        self._maybe_compact()

    def delete_offsets(self, group_id, partitions):
        partitions = list(partitions)
        self._append({"op": "delete_offsets", "g": group_id, "p": [[t, p] for t, p in partitions]})
        self._state.delete_offsets(group_id, partitions)
        self._maybe_compact()

    def store_group(self, group):
        self._append({"op": "group", "g": group.group_id, "v": _enc_group(group)})
        self._state.group(group)
        self._maybe_compact()

    def delete_group(self, group_id):
        self._append({"op": "delete_group", "g": group_id})
        self._state.delete_group(group_id)
        self._maybe_compact()

    def prepare_txn_offsets(self, producer_id, group_id, offsets):
        offsets = dict(offsets)
        self._append({"op": "txn_prepare", "pid": producer_id, "g": group_id, "o": _enc_offsets(offsets)})
        self._state.txn_prepare(producer_id, group_id, offsets)
        self._maybe_compact()

    def complete_txn_offsets(self, producer_id, group_id, committed):
        committed = dict(committed)
        self._append({"op": "txn_complete", "pid": producer_id, "g": group_id, "o": _enc_offsets(committed)})
        self._state.txn_complete(producer_id, group_id, committed)
        self._maybe_compact()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def size_bytes(self) -> int:
        return self._size
