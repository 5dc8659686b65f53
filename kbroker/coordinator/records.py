"""The records of the coordinators' internal topics, in Kafka's own key and value formats.

A coordinator record is a Kafka record whose key is ``int16 record type`` followed by the key struct, and whose
value is ``int16 version`` followed by the value struct at that version (null: a tombstone, deleting the key).
The structs are Kafka's (group-coordinator and transaction-coordinator ``common/message/*.json``):

    __consumer_offsets   type 0/1 OffsetCommitKey (group, topic, partition) -> OffsetCommitValue v1 or v3
                         type 2   GroupMetadataKey (group)                  -> GroupMetadataValue v3
    __transaction_state  type 0   TransactionLogKey (transactional id)      -> TransactionLogValue v0 or v1

kbroker adds two record types of its own, JSON after a version: ``CONSUMER_GROUP_STATE`` (0x4B43, "KC"), a
KIP-848 consumer-protocol group's whole state keyed by group (Kafka splits it into ConsumerGroup*Key/Value
records; kbroker's consumer groups keep one document), and ``PENDING_TXN_OFFSETS`` (0x4B50, "KP"): the offsets a
transaction
has committed for a group and that count only once it commits, keyed by (group, producer id), deleted by a
tombstone when the transaction ends. Kafka writes those as OffsetCommit records inside the producer's own
transaction on the partition; a separate key keeps them from replacing the committed offsets that compaction
would otherwise drop. Kafka's readers skip a record type they do not know, and so do ours.

The codec is written by hand, not generated: tools/gen.py knows request and response messages, and these six
structs are short. Non-flexible versions are used where Kafka still writes them (OffsetCommitValue v3,
GroupMetadataValue v3, TransactionLogValue v0); TransactionLogValue v1 (flexible) when one of its tagged fields
must be kept: the previous producer id (0), the next one (1), the client's transaction version (2, KIP-890).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from ..wire import primitives as P
from .offsets import StoredGroup, StoredMember

OFFSET_COMMIT_LEGACY, OFFSET_COMMIT, GROUP_METADATA = 0, 1, 2
TRANSACTION_LOG = 0
PENDING_TXN_OFFSETS = 0x4B50
CONSUMER_GROUP_STATE = 0x4B43

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_I8 = struct.Struct(">b")


class UnknownRecordType(ValueError):
    """A record type this reader does not know (a newer or foreign writer's): skipped, as Kafka's loader does."""


# --- primitives ------------------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = memoryview(buf), pos

    def _fixed(self, s: struct.Struct) -> int:
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def i8(self) -> int:
        return self._fixed(_I8)

    def i16(self) -> int:
        return self._fixed(_I16)

    def i32(self) -> int:
        return self._fixed(_I32)

    def i64(self) -> int:
        return self._fixed(_I64)

    def string(self) -> str:
        s, self.pos = P.read_string(self.buf, self.pos)
        return s

    def nullable_string(self) -> str | None:
        s, self.pos = P.read_nullable_string(self.buf, self.pos)
        return s

    def bytes_(self) -> bytes:
        b, self.pos = P.read_bytes(self.buf, self.pos)
        return bytes(b)

    def compact_string(self) -> str:
        s, self.pos = P.read_compact_string(self.buf, self.pos)
        return s

    def uvarint(self) -> int:
        v, self.pos = P.read_uvarint(self.buf, self.pos)
        return v


def _string(out: bytearray, s: str | None) -> None:
    P.write_string(out, s)


def record_type_prefix(record_type: int) -> bytes:
    """The first bytes of every key of a record type."""
    return _I16.pack(record_type)


def _key(record_type: int, *strings: str) -> bytearray:
    out = bytearray(_I16.pack(record_type))
    for s in strings:
        _string(out, s)
    return out


# --- __consumer_offsets ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int | None


def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    out = _key(OFFSET_COMMIT, group, topic)
    out += _I32.pack(partition)
    return bytes(out)


def offset_commit_value(v: OffsetValue) -> bytes:
    """v3 (with the leader epoch), or v1 when the commit has its own expiry (OffsetCommit v1-v4), as Kafka."""
    if v.expire_timestamp_ms is not None:
        out = bytearray(_I16.pack(1) + _I64.pack(v.offset))
        _string(out, v.metadata)
        out += _I64.pack(v.commit_timestamp_ms) + _I64.pack(v.expire_timestamp_ms)
        return bytes(out)
    out = bytearray(_I16.pack(3) + _I64.pack(v.offset) + _I32.pack(v.leader_epoch))
    _string(out, v.metadata)
    out += _I64.pack(v.commit_timestamp_ms)
    return bytes(out)


def _versioned(value: bytes, name: str, newest: int) -> tuple[_Reader, int]:
    r = _Reader(value)
    version = r.i16()
    if version > newest:
        raise UnknownRecordType(f"{name} version {version}")
    return r, version


def decode_offset_value(value: bytes) -> OffsetValue:
    r, version = _versioned(value, "OffsetCommitValue", 4)
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.compact_string() if version >= 4 else r.string()
    commit_ms = r.i64()
    expire_ms = r.i64() if version == 1 else None
    return OffsetValue(offset, leader_epoch, metadata, commit_ms, None if expire_ms == -1 else expire_ms)


def group_metadata_key(group: str) -> bytes:
    return bytes(_key(GROUP_METADATA, group))


def group_metadata_value(g: StoredGroup) -> bytes:
    """GroupMetadataValue v3: the newest non-flexible version (static membership's group instance id). A group
    without a protocol type is written with an empty one, as Kafka does."""
    out = bytearray(_I16.pack(3))
    _string(out, g.protocol_type or "")
    out += _I32.pack(g.generation_id)
    _string(out, g.protocol_name)
    _string(out, g.leader_id)
    out += _I64.pack(g.state_timestamp_ms)
    out += _I32.pack(len(g.members))
    for m in g.members:
        _string(out, m.member_id)
        _string(out, m.group_instance_id)
        _string(out, m.client_id)
        _string(out, m.client_host)
        out += _I32.pack(m.rebalance_timeout_ms) + _I32.pack(m.session_timeout_ms)
        P.write_bytes(out, m.subscription)
        P.write_bytes(out, m.assignment)
    return bytes(out)


def decode_group_value(group_id: str, value: bytes) -> StoredGroup:
    r, version = _versioned(value, "GroupMetadataValue (flexible versions are not read)", 3)
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ms = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.i32()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_ms = r.i32() if version >= 1 else -1
        session_ms = r.i32()
        members.append(StoredMember(member_id, instance_id, client_id, client_host,
                                    session_ms if rebalance_ms < 0 else rebalance_ms, session_ms,
                                    r.bytes_(), r.bytes_()))
    return StoredGroup(group_id, generation, protocol_type or None, protocol, leader, state_ms, tuple(members))


def pending_txn_offsets_key(group: str, producer_id: int) -> bytes:
    out = _key(PENDING_TXN_OFFSETS, group)
    out += _I64.pack(producer_id)
    return bytes(out)


def pending_txn_offsets_value(rows: list[list]) -> bytes:
    """kbroker's own: version 0, then the offsets as JSON rows [topic, partition, offset, leader epoch, metadata,
    commit ms]."""
    return _I16.pack(0) + json.dumps(rows, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class OffsetsKey:
    """A decoded __consumer_offsets key: ``kind`` is OFFSET_COMMIT, GROUP_METADATA or PENDING_TXN_OFFSETS."""
    kind: int
    group: str
    topic: str = ""
    partition: int = -1
    producer_id: int = -1


def decode_offsets_key(key: bytes) -> OffsetsKey:
    r = _Reader(key)
    kind = r.i16()
    if kind in (OFFSET_COMMIT_LEGACY, OFFSET_COMMIT):
        return OffsetsKey(OFFSET_COMMIT, r.string(), r.string(), r.i32())
    if kind == GROUP_METADATA:
        return OffsetsKey(GROUP_METADATA, r.string())
    if kind == PENDING_TXN_OFFSETS:
        group = r.string()
        return OffsetsKey(PENDING_TXN_OFFSETS, group, producer_id=r.i64())
    if kind == CONSUMER_GROUP_STATE:
        return OffsetsKey(CONSUMER_GROUP_STATE, r.string())
    raise UnknownRecordType(f"__consumer_offsets record type {kind}")


def consumer_group_state_key(group: str) -> bytes:
    return bytes(_key(CONSUMER_GROUP_STATE, group))


def json_value(value) -> bytes:
    """kbroker's own records' values: version 0, then JSON."""
    return _I16.pack(0) + json.dumps(value, separators=(",", ":")).encode()


def decode_json_value(value: bytes):
    (version,) = _I16.unpack_from(value)
    if version != 0:
        raise UnknownRecordType(f"kbroker record value version {version}")
    return json.loads(bytes(value[2:]))


def decode_pending_txn_offsets(value: bytes) -> list[list]:
    (version,) = _I16.unpack_from(value)
    if version != 0:
        raise UnknownRecordType(f"pending transactional offsets version {version}")
    rows = json.loads(bytes(value[2:]))
    if not isinstance(rows, list):
        raise TypeError("pending transactional offsets are a list")
    return rows


# --- __transaction_state -----------------------------------------------------------------------------------------

# Kafka's TransactionState ids, as TransactionLogValue.TransactionStatus stores them.
TXN_STATUS = {"Empty": 0, "Ongoing": 1, "PrepareCommit": 2, "PrepareAbort": 3, "CompleteCommit": 4,
              "CompleteAbort": 5, "Dead": 6, "PrepareEpochFence": 7}
TXN_STATUS_NAMES = {v: k for k, v in TXN_STATUS.items()}


@dataclass(frozen=True, slots=True)
class TxnValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: str
    partitions: tuple[tuple[str, int], ...]
    last_update_ms: int
    start_ms: int
    previous_producer_id: int = -1
    next_producer_id: int = -1  # tag 1: the id a TV2 transaction moves to once its markers are written
    client_transaction_version: int = 0  # tag 2: the transaction version of the producer's last request (KIP-890)


def transaction_log_key(transactional_id: str) -> bytes:
    return bytes(_key(TRANSACTION_LOG, transactional_id))


def decode_transaction_log_key(key: bytes) -> str:
    r = _Reader(key)
    kind = r.i16()
    if kind != TRANSACTION_LOG:
        raise UnknownRecordType(f"__transaction_state record type {kind}")
    return r.string()


def _by_topic(partitions) -> list[tuple[str, list[int]]]:
    topics: dict[str, list[int]] = {}
    for t, p in sorted(partitions):
        topics.setdefault(t, []).append(p)
    return list(topics.items())


def transaction_log_value(v: TxnValue) -> bytes:
    """v0, or v1 (flexible) when a tagged field has more than its default to keep: the previous producer id
    (tag 0), the next one (tag 1), the client's transaction version (tag 2)."""
    topics = _by_topic(v.partitions)
    tagged = [(tag, value) for tag, value, default in (
        (0, _I64.pack(v.previous_producer_id), v.previous_producer_id < 0),
        (1, _I64.pack(v.next_producer_id), v.next_producer_id < 0),
        (2, _I16.pack(v.client_transaction_version), v.client_transaction_version == 0)) if not default]
    if not tagged:
        out = bytearray(_I16.pack(0) + _I64.pack(v.producer_id) + _I16.pack(v.producer_epoch)
                        + _I32.pack(v.timeout_ms) + _I8.pack(TXN_STATUS[v.status]) + _I32.pack(len(topics)))
        for topic, ids in topics:
            _string(out, topic)
            out += _I32.pack(len(ids)) + b"".join(_I32.pack(i) for i in ids)
        out += _I64.pack(v.last_update_ms) + _I64.pack(v.start_ms)
        return bytes(out)
    out = bytearray(_I16.pack(1) + _I64.pack(v.producer_id) + _I16.pack(v.producer_epoch)
                    + _I32.pack(v.timeout_ms) + _I8.pack(TXN_STATUS[v.status]))
    P.write_uvarint(out, len(topics) + 1)
    for topic, ids in topics:
        P.write_compact_string(out, topic)
        P.write_uvarint(out, len(ids) + 1)
        out += b"".join(_I32.pack(i) for i in ids)
        P.write_uvarint(out, 0)  # the topic's tagged fields
    out += _I64.pack(v.last_update_ms) + _I64.pack(v.start_ms)
    P.write_tagged(out, tagged)
    return bytes(out)


def decode_transaction_log_value(value: bytes) -> TxnValue:
    r, version = _versioned(value, "TransactionLogValue", 1)
    flexible = version >= 1
    producer_id, epoch, timeout_ms, status = r.i64(), r.i16(), r.i32(), r.i8()
    partitions: list[tuple[str, int]] = []
    count = r.uvarint() - 1 if flexible else r.i32()
    for _ in range(max(count, 0)):
        topic = r.compact_string() if flexible else r.string()
        n = r.uvarint() - 1 if flexible else r.i32()
        partitions += [(topic, r.i32()) for _ in range(n)]
        if flexible:
            r.pos = P.skip_tagged_fields(r.buf, r.pos)
    last_update_ms, start_ms = r.i64(), r.i64()
    previous = following = -1
    client_version = 0
    if flexible:
        for _ in range(r.uvarint()):
            tag, size = r.uvarint(), r.uvarint()
            if tag == 0:
                previous = _I64.unpack_from(r.buf, r.pos)[0]
            elif tag == 1:
                following = _I64.unpack_from(r.buf, r.pos)[0]
            elif tag == 2:
                client_version = _I16.unpack_from(r.buf, r.pos)[0]
            r.pos += size
    return TxnValue(producer_id, epoch, timeout_ms, TXN_STATUS_NAMES[status], tuple(partitions), last_update_ms,
                    start_ms, previous, following, client_version)
