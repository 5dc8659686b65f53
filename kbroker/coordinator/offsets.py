"""The durable part of the group coordinator: committed offsets and group metadata, as records of a state log.

Kafka keeps these in the compacted `__consumer_offsets` topic: one record per (group, partition) offset, one per group's
metadata, tombstones for deletions, and transactional offsets that count only once the transaction's marker says commit.
kbroker keeps the same facts in an `OffsetStore` over a `StateLog` (kbroker/state_log.py, which owns durability, torn
tails, corruption and compaction): `FileOffsetStore` in `.kbroker/consumer-offsets.journal`, `MemoryOffsetStore` for
`--storage memory`. Every operation is one record, appended before the live state changes, so an acknowledged commit
survives kill -9 (and power loss with `fsync=True`).

Records (state log magic b"KBOFFSET"), UTF-8 JSON objects, bytes in base64:

    {"op": "commit", "g": group, "o": [[topic, partition, offset, leader_epoch, metadata, commit_ms, expire_ms, seq]]}
    {"op": "delete_offsets", "g": group, "p": [[topic, partition]]}
    {"op": "group", "g": group, "v": {generation_id, protocol_type, protocol_name, leader_id, state_timestamp_ms,
                                       members: [[id, instance_id, client_id, host, rebalance_ms, session_ms,
                                                  subscription, assignment]]}}
    {"op": "delete_group", "g": group}
    {"op": "consumer_group", "g": group, "v": {...}}   a consumer-protocol group's state (consumer_group.py)
    {"op": "drop_consumer_group", "g": group}         the group went back to the classic protocol
    {"op": "txn_prepare" | "txn_complete", "pid": producer_id, "g": group, "o": [offset rows as in commit]}
    {"op": "records", "r": [[key, value or null]]}    records of other types (share groups' ShareGroup* records)

The store holds its own copy of the live state (it needs one to compact) and, like the coordinator, is used from the
event loop only.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from ..state_log import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COMPACT_RATIO,
    CorruptStateError,
    FileStateLog,
    MemoryStateLog,
    StateLog,
)

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
    # group id -> a consumer-protocol group's state (KIP-848), as ConsumerGroup.to_stored writes it.
    consumer_groups: dict[str, dict] = field(default_factory=dict)
    # Records of other types (share groups'), key -> latest value, as `OffsetStore.append_records` wrote them.
    other: dict[bytes, bytes] = field(default_factory=dict)


# The store's corruption error is the state log's.
CorruptStoreError = CorruptStateError


class LiveState:
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

    def consumer_group(self, group_id: str, value: dict) -> None:
        self.snapshot.consumer_groups[group_id] = value

    def drop_consumer_group(self, group_id: str) -> None:
        self.snapshot.consumer_groups.pop(group_id, None)

    def delete_group(self, group_id: str) -> None:
        self.snapshot.groups.pop(group_id, None)
        self.snapshot.consumer_groups.pop(group_id, None)
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
            consumer_groups=dict(s.consumer_groups),
            other=dict(s.other),
        )

    def records(self, records: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            if value is None:
                self.snapshot.other.pop(key, None)
            else:
                self.snapshot.other[key] = value


# --- records -----------------------------------------------------------------------------------------------------

MAGIC = b"KBOFFSET"


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


def _replay_commit(state: LiveState, r: dict) -> None:
    state.commit(r["g"], _dec_offsets(r["o"]))


def _replay_delete_offsets(state: LiveState, r: dict) -> None:
    state.delete_offsets(r["g"], [(t, p) for t, p in r["p"]])


def _replay_group(state: LiveState, r: dict) -> None:
    state.group(_dec_group(r["g"], r["v"]))


def _replay_delete_group(state: LiveState, r: dict) -> None:
    state.delete_group(r["g"])


def _replay_consumer_group(state: LiveState, r: dict) -> None:
    state.consumer_group(r["g"], r["v"])


def _replay_drop_consumer_group(state: LiveState, r: dict) -> None:
    state.drop_consumer_group(r["g"])


def _replay_txn_prepare(state: LiveState, r: dict) -> None:
    state.txn_prepare(r["pid"], r["g"], _dec_offsets(r["o"]))


def _replay_txn_complete(state: LiveState, r: dict) -> None:
    state.txn_complete(r["pid"], r["g"], _dec_offsets(r["o"]))


def _replay_records(state: LiveState, r: dict) -> None:
    state.records([(_unb64(k), None if v is None else _unb64(v)) for k, v in r["r"]])


_OPS = {
    "records": _replay_records,
    "commit": _replay_commit,
    "delete_offsets": _replay_delete_offsets,
    "group": _replay_group,
    "delete_group": _replay_delete_group,
    "consumer_group": _replay_consumer_group,
    "drop_consumer_group": _replay_drop_consumer_group,
    "txn_prepare": _replay_txn_prepare,
    "txn_complete": _replay_txn_complete,
}


def _snapshot_records(snapshot: StoreSnapshot) -> list[dict]:
    out = [{"op": "group", "g": g.group_id, "v": _enc_group(g)} for g in snapshot.groups.values()]
    out += [{"op": "consumer_group", "g": gid, "v": v} for gid, v in snapshot.consumer_groups.items()]
    out += [{"op": "commit", "g": gid, "o": _enc_offsets(o)} for gid, o in snapshot.offsets.items()]
    out += [
        {"op": "txn_prepare", "pid": pid, "g": gid, "o": _enc_offsets(o)}
        for (pid, gid), o in snapshot.pending_txn_offsets.items()
    ]
    if snapshot.other:
        out.append({"op": "records", "r": [[_b64(k), _b64(v)] for k, v in snapshot.other.items()]})
    return out


# --- the store ------------------------------------------------------------------------------------------------


class OffsetStore:
    """Where the group coordinator keeps what must outlive the process, over a `StateLog`. A method returns once
    the change is durable (as the log defines it) and raises OSError if it could not be made so; then nothing
    changed. Each operation appends its record first and changes the live state only once the record is durable."""

    def __init__(self, state_log: StateLog | None = None) -> None:
        self._log: StateLog = state_log if state_log is not None else MemoryStateLog()
        self._state = LiveState()
        self._log.replay(self._apply)
        self._log.compact_if_due(self._live_records)

    def _apply(self, record: dict) -> None:
        _OPS[record["op"]](self._state, record)

    def _live_records(self) -> list[dict]:
        return _snapshot_records(self._state.snapshot)

    def _write(self, record: dict, change: Callable[[], None]) -> None:
        """Appends the record; once it is durable, makes the same change to the live state (from the caller's
        objects: decoding the record again would cost more than the change)."""
        self._log.append(record)
        change()
        self._log.compact_if_due(self._live_records)

    def load(self) -> StoreSnapshot:
        """Everything stored, for the coordinator's start-up."""
        return self._state.copy()

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        offsets = dict(offsets)
        self._write({"op": "commit", "g": group_id, "o": _enc_offsets(offsets)},
                    lambda: self._state.commit(group_id, offsets))

    def delete_offsets(self, group_id: str, partitions: Collection[TopicPartition]) -> None:
        """Removes committed offsets (OffsetDelete, retention) and the group's pending transactional ones for them."""
        partitions = list(partitions)
        self._write({"op": "delete_offsets", "g": group_id, "p": [[t, p] for t, p in partitions]},
                    lambda: self._state.delete_offsets(group_id, partitions))

    def store_group(self, group: StoredGroup) -> None:
        self._write({"op": "group", "g": group.group_id, "v": _enc_group(group)}, lambda: self._state.group(group))

    def store_consumer_group(self, group_id: str, value: dict) -> None:
        """A consumer-protocol group's state (the whole group: the latest record per group is what counts)."""
        self._write({"op": "consumer_group", "g": group_id, "v": value},
                    lambda: self._state.consumer_group(group_id, value))

    def drop_consumer_group(self, group_id: str) -> None:
        """Forgets a consumer-protocol group's state, keeping its offsets (it became a classic group again)."""
        self._write({"op": "drop_consumer_group", "g": group_id}, lambda: self._state.drop_consumer_group(group_id))

    def delete_group(self, group_id: str) -> None:
        """Removes the group's metadata, committed offsets and pending transactional offsets."""
        self._write({"op": "delete_group", "g": group_id}, lambda: self._state.delete_group(group_id))

    def prepare_txn_offsets(
        self, producer_id: int, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        offsets = dict(offsets)
        self._write({"op": "txn_prepare", "pid": producer_id, "g": group_id, "o": _enc_offsets(offsets)},
                    lambda: self._state.txn_prepare(producer_id, group_id, offsets))

    def complete_txn_offsets(
        self, producer_id: int, group_id: str, committed: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        """Ends the producer's transaction for the group: its pending offsets go, and `committed` (empty on abort;
        only the offsets that win over later plain commits on commit) become committed offsets, all at once."""
        committed = dict(committed)
        self._write({"op": "txn_complete", "pid": producer_id, "g": group_id, "o": _enc_offsets(committed)},
                    lambda: self._state.txn_complete(producer_id, group_id, committed))

    def records_of_type(self, record_type: int) -> dict[bytes, bytes]:
        """The latest value of every key of ``record_type`` (a key's first two bytes) written with
        `append_records`, in the order written (as TopicOffsetStore.records_of_type)."""
        prefix = record_type.to_bytes(2, "big", signed=True)
        return {k: v for k, v in self._state.snapshot.other.items() if k[:2] == prefix}

    def append_records(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Records of other types (share groups' ShareGroup* records) as one change; None values delete."""
        records = list(records)
        self._write({"op": "records", "r": [[_b64(k), None if v is None else _b64(v)] for k, v in records]},
                    lambda: self._state.records(records))

    def pending_groups(self, producer_id: int) -> list[str]:
        """The groups holding offsets of the producer's open transaction."""
        return sorted(g for pid, g in self._state.snapshot.pending_txn_offsets if pid == producer_id)

    def wait_written(self) -> Awaitable[None]:
        """Completes once the last change is replicated; a state log's append was durable already."""
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def close(self) -> None:
        self._log.close()


class MemoryOffsetStore(OffsetStore):
    """Nothing survives the process."""

    def __init__(self) -> None:
        super().__init__(MemoryStateLog())


class FileOffsetStore(OffsetStore):
    """The file backend (``.kbroker/consumer-offsets.journal``). Opening it replays the file, creating it if absent."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fsync: bool = True,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    ) -> None:
        self.file = FileStateLog(path, MAGIC, fsync=fsync, compact_ratio=compact_ratio,
                                 compact_min_bytes=compact_min_bytes)
        super().__init__(self.file)

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def truncated_bytes(self) -> int:
        return self.file.truncated_bytes

    @property
    def compactions(self) -> int:
        return self.file.compactions

    @property
    def size_bytes(self) -> int:
        return self.file.size_bytes
