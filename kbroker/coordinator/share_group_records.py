"""A share group's records in ``__consumer_offsets``, in Kafka's key and value formats (KIP-932; Kafka's
group-coordinator ``common/message/ShareGroup*Key/Value.json``).

A key is ``int16 record type`` then the key struct (non-flexible: classic strings); a value is ``int16 version``
(0 for all six) then the value struct, which is flexible (compact strings and arrays, tagged-field sections).
A null value is a tombstone.

    type 10  ShareGroupMemberMetadataKey(group, member)        -> RackId, ClientId, ClientHost, SubscribedTopicNames
    type 11  ShareGroupMetadataKey(group)                      -> Epoch, MetadataHash
    type 12  ShareGroupTargetAssignmentMetadataKey(group)      -> AssignmentEpoch
    type 13  ShareGroupTargetAssignmentMemberKey(group, member) -> TopicPartitions [(topic id, partitions)]
    type 14  ShareGroupCurrentMemberAssignmentKey(group, member) -> MemberEpoch, PreviousMemberEpoch, State,
                                                                   AssignedPartitions
    type 15  ShareGroupStatePartitionMetadataKey(group)        -> InitializingTopics, InitializedTopics,
                                                                   DeletingTopics

The other record types of the partition are decoded in records.py; the TopicOffsetStore keeps these as they are
(``records_of_type``) for the ShareGroupManager, which replays them in the order written.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from ..wire import primitives as P

MEMBER_METADATA, GROUP_METADATA, TARGET_ASSIGNMENT_METADATA, TARGET_ASSIGNMENT_MEMBER, CURRENT_MEMBER_ASSIGNMENT, \
    STATE_PARTITION_METADATA = 10, 11, 12, 13, 14, 15
RECORD_TYPES = (MEMBER_METADATA, GROUP_METADATA, TARGET_ASSIGNMENT_METADATA, TARGET_ASSIGNMENT_MEMBER,
                CURRENT_MEMBER_ASSIGNMENT, STATE_PARTITION_METADATA)
_PER_MEMBER = (MEMBER_METADATA, TARGET_ASSIGNMENT_MEMBER, CURRENT_MEMBER_ASSIGNMENT)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_I8 = struct.Struct(">b")

Partitions = dict[uuid.UUID, frozenset[int]]


@dataclass(frozen=True, slots=True)
class ShareKey:
    record_type: int
    group_id: str
    member_id: str | None = None


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: int  # Kafka's MemberState: 0 STABLE (the only state a share member is in)
    assigned: Partitions


@dataclass(frozen=True, slots=True)
class StatePartitionMetadata:
    """Which share-partitions the share-partition state knows for the group: topic id -> (name, partitions)."""
    initializing: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)
    initialized: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)
    deleting: dict[uuid.UUID, str] = field(default_factory=dict)


# --- keys ----------------------------------------------------------------------------------------------------


def key(record_type: int, group_id: str, member_id: str | None = None) -> bytes:
    out = bytearray(_I16.pack(record_type))
    P.write_string(out, group_id)
    if record_type in _PER_MEMBER:
        P.write_string(out, member_id or "")
    return bytes(out)


def decode_key(raw: bytes) -> ShareKey:
    buf = memoryview(raw)
    (record_type,) = _I16.unpack_from(buf, 0)
    group_id, pos = P.read_string(buf, 2)
    member_id = None
    if record_type in _PER_MEMBER:
        member_id, pos = P.read_string(buf, pos)
    return ShareKey(record_type, group_id, member_id)


# --- values --------------------------------------------------------------------------------------------------


def _head() -> bytearray:
    return bytearray(_I16.pack(0))


def _end(out: bytearray) -> bytes:
    P.write_uvarint(out, 0)  # no tagged fields
    return bytes(out)


def _write_partitions(out: bytearray, partitions: Partitions) -> None:
    rows = [(t, ps) for t, ps in sorted(partitions.items(), key=lambda kv: str(kv[0])) if ps]
    P.write_uvarint(out, len(rows) + 1)
    for t, ps in rows:
        P.write_uuid(out, t)
        P.write_uvarint(out, len(ps) + 1)
        out += b"".join(_I32.pack(p) for p in sorted(ps))
        P.write_uvarint(out, 0)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, raw: bytes) -> None:
        self.buf = memoryview(raw)
        (version,) = _I16.unpack_from(self.buf, 0)
        if version != 0:
            raise ValueError(f"share group record value version {version}")
        self.pos = 2

    def fixed(self, s: struct.Struct) -> int:
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def string(self) -> str | None:
        s, self.pos = P.read_compact_nullable_string(self.buf, self.pos)
        return s

    def count(self) -> int:
        n, self.pos = P.read_compact_array_len(self.buf, self.pos)
        return max(n, 0)

    def uuid(self) -> uuid.UUID:
        u, self.pos = P.read_uuid(self.buf, self.pos)
        return u

    def int32s(self) -> frozenset[int]:
        return frozenset(self.fixed(_I32) for _ in range(self.count()))

    def tags(self) -> None:
        self.pos = P.skip_tagged_fields(self.buf, self.pos)

    def partitions(self) -> Partitions:
        out = {}
        for _ in range(self.count()):
            t = self.uuid()
            out[t] = self.int32s()
            self.tags()
        return out


def member_metadata_value(m: MemberMetadata) -> bytes:
    out = _head()
    P.write_compact_string(out, m.rack_id)
    P.write_compact_string(out, m.client_id)
    P.write_compact_string(out, m.client_host)
    P.write_uvarint(out, len(m.subscribed_topic_names) + 1)
    for name in m.subscribed_topic_names:
        P.write_compact_string(out, name)
    return _end(out)


def decode_member_metadata(raw: bytes) -> MemberMetadata:
    r = _Reader(raw)
    rack, client, host = r.string(), r.string() or "", r.string() or ""
    names = tuple(r.string() or "" for _ in range(r.count()))
    return MemberMetadata(rack, client, host, names)


def group_metadata_value(epoch: int, metadata_hash: int) -> bytes:
    return _end(_head() + _I32.pack(epoch) + _I64.pack(metadata_hash))


def decode_group_metadata(raw: bytes) -> tuple[int, int]:
    r = _Reader(raw)
    return r.fixed(_I32), r.fixed(_I64)


def target_assignment_metadata_value(assignment_epoch: int) -> bytes:
    return _end(_head() + _I32.pack(assignment_epoch))


def decode_target_assignment_metadata(raw: bytes) -> int:
    return _Reader(raw).fixed(_I32)


def target_assignment_member_value(partitions: Partitions) -> bytes:
    out = _head()
    _write_partitions(out, partitions)
    return _end(out)


def decode_target_assignment_member(raw: bytes) -> Partitions:
    return _Reader(raw).partitions()


def current_assignment_value(a: CurrentAssignment) -> bytes:
    out = _head() + _I32.pack(a.member_epoch) + _I32.pack(a.previous_member_epoch) + _I8.pack(a.state)
    _write_partitions(out, a.assigned)
    return _end(out)


def decode_current_assignment(raw: bytes) -> CurrentAssignment:
    r = _Reader(raw)
    epoch, previous, state = r.fixed(_I32), r.fixed(_I32), r.fixed(_I8)
    return CurrentAssignment(epoch, previous, state, r.partitions())


def _write_topics(out: bytearray, topics: dict[uuid.UUID, tuple[str, frozenset[int]]]) -> None:
    P.write_uvarint(out, len(topics) + 1)
    for t, (name, ps) in sorted(topics.items(), key=lambda kv: str(kv[0])):
        P.write_uuid(out, t)
        P.write_compact_string(out, name)
        P.write_uvarint(out, len(ps) + 1)
        out += b"".join(_I32.pack(p) for p in sorted(ps))
        P.write_uvarint(out, 0)


def _read_topics(r: _Reader) -> dict[uuid.UUID, tuple[str, frozenset[int]]]:
    out = {}
    for _ in range(r.count()):
        t, name = r.uuid(), r.string() or ""
        out[t] = (name, r.int32s())
        r.tags()
    return out


def state_partition_metadata_value(m: StatePartitionMetadata) -> bytes:
    out = _head()
    _write_topics(out, m.initializing)
    _write_topics(out, m.initialized)
    P.write_uvarint(out, len(m.deleting) + 1)
    for t, name in sorted(m.deleting.items(), key=lambda kv: str(kv[0])):
        P.write_uuid(out, t)
        P.write_compact_string(out, name)
        P.write_uvarint(out, 0)
    return _end(out)


def decode_state_partition_metadata(raw: bytes) -> StatePartitionMetadata:
    r = _Reader(raw)
    initializing, initialized = _read_topics(r), _read_topics(r)
    deleting = {}
    for _ in range(r.count()):
        t, name = r.uuid(), r.string() or ""
        deleting[t] = name
        r.tags()
    return StatePartitionMetadata(initializing, initialized, deleting)
