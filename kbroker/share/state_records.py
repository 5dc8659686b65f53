"""The records of ``__share_group_state``, in Kafka's share coordinator formats
(share-coordinator ``common/message/Share{Snapshot,Update}{Key,Value}.json``).

A key is ``int16 record type`` and the key struct (v0, not flexible): group id (string), topic id (uuid),
partition (int32). Record type 0 is ShareSnapshot, the whole state of a share-partition; type 1 is ShareUpdate,
a change to apply on top of the last snapshot. A value is ``int16 version`` (0) and the value struct, flexible:

    ShareSnapshotValue  snapshot epoch, state epoch, leader epoch, start offset, create and write timestamps,
                        state batches; tagged 0: DeliveryCompleteCount (default -1, not written)
    ShareUpdateValue    snapshot epoch, leader epoch, start offset, state batches; the same tagged field
    StateBatch          first offset, last offset, delivery state (int8), delivery count (int16)

kbroker writes them as Kafka's ShareCoordinatorShard does (share_coordinator.py): a ShareSnapshot first and then
every ``share.coordinator.snapshot.update.records.per.snapshot`` updates, a ShareUpdate with the changed batches
in between; both carry DeliveryCompleteCount. Replaying applies a snapshot whole and an update on top of the
state so far (``merge_update``). A null value (tombstone, under the ShareSnapshot key) deletes the key's state.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from ..wire import primitives as P

SHARE_SNAPSHOT, SHARE_UPDATE = 0, 1

_I8, _I16, _I32, _I64 = struct.Struct(">b"), struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
_BATCH = struct.Struct(">qqbh")


class UnknownShareRecord(ValueError):
    """A record type or value version this reader does not know: skipped, as Kafka's loader does."""


@dataclass
class ShareState:
    """A share-partition's written state."""

    start_offset: int
    state_epoch: int = 0
    leader_epoch: int = 0
    snapshot_epoch: int = 0
    state_batches: list[tuple[int, int, int, int]] = field(default_factory=list)
    create_timestamp_ms: int = 0
    write_timestamp_ms: int = 0


def share_key(record_type: int, group_id: str, topic_id: uuid.UUID, partition: int) -> bytes:
    out = bytearray(_I16.pack(record_type))
    P.write_string(out, group_id)
    out += topic_id.bytes + _I32.pack(partition)
    return bytes(out)


def decode_share_key(key: bytes) -> tuple[int, str, uuid.UUID, int]:
    view = memoryview(key)
    (record_type,) = _I16.unpack_from(view, 0)
    if record_type not in (SHARE_SNAPSHOT, SHARE_UPDATE):
        raise UnknownShareRecord(f"record type {record_type}")
    group_id, pos = P.read_string(view, 2)
    topic_id = uuid.UUID(bytes=bytes(view[pos:pos + 16]))
    (partition,) = _I32.unpack_from(view, pos + 16)
    return record_type, group_id, topic_id, partition


def _write_batches(out: bytearray, batches) -> None:
    P.write_uvarint(out, len(batches) + 1)
    for first, last, state, count in batches:
        out += _BATCH.pack(first, last, state, count)
        out.append(0)  # the batch's tagged fields: none


def _write_delivery_complete_count(out: bytearray, count: int) -> None:
    """The value's tagged fields: DeliveryCompleteCount (tag 0, KIP-1226), omitted at its default -1."""
    if count == -1:
        out.append(0)
        return
    P.write_uvarint(out, 1)
    P.write_uvarint(out, 0)
    P.write_uvarint(out, 4)
    out += _I32.pack(count)


def snapshot_value(s: ShareState) -> bytes:
    out = bytearray(_I16.pack(0))
    out += _I32.pack(s.snapshot_epoch) + _I32.pack(s.state_epoch) + _I32.pack(s.leader_epoch)
    out += _I64.pack(s.start_offset) + _I64.pack(s.create_timestamp_ms) + _I64.pack(s.write_timestamp_ms)
    _write_batches(out, s.state_batches)
    _write_delivery_complete_count(out, delivery_complete_count(s))
    return bytes(out)


def update_value(u: ShareState, delivery_complete: int = -1) -> bytes:
    """A ShareUpdateValue: the snapshot epoch it builds on, the leader epoch, the start offset and the changed
    batches of ``u``; ``delivery_complete`` the share-partition's DeliveryCompleteCount after it."""
    out = bytearray(_I16.pack(0))
    out += _I32.pack(u.snapshot_epoch) + _I32.pack(u.leader_epoch) + _I64.pack(u.start_offset)
    _write_batches(out, u.state_batches)
    _write_delivery_complete_count(out, delivery_complete)
    return bytes(out)


def _read_batches(view, pos: int) -> tuple[list[tuple[int, int, int, int]], int]:
    n, pos = P.read_uvarint(view, pos)
    batches = []
    for _ in range(n - 1):
        batches.append(_BATCH.unpack_from(view, pos))
        pos = P.skip_tagged_fields(view, pos + _BATCH.size)
    return batches, pos


def decode_share_value(record_type: int, value: bytes) -> ShareState:
    """A ShareSnapshotValue or ShareUpdateValue (an update has no state epoch nor timestamps: -1 and 0)."""
    view = memoryview(value)
    (version,) = _I16.unpack_from(view, 0)
    if version != 0:
        raise UnknownShareRecord(f"value version {version}")
    if record_type == SHARE_SNAPSHOT:
        snapshot_epoch, state_epoch, leader_epoch, start, created, written = struct.unpack_from(">iiiqqq", view, 2)
        batches, _ = _read_batches(view, 2 + 36)
        return ShareState(start, state_epoch, leader_epoch, snapshot_epoch, batches, created, written)
    snapshot_epoch, leader_epoch, start = struct.unpack_from(">iiq", view, 2)
    batches, _ = _read_batches(view, 2 + 16)
    return ShareState(start, -1, leader_epoch, snapshot_epoch, batches)


def merge_update(base: ShareState, update: ShareState) -> ShareState:
    """A ShareUpdate on top of the state so far: a new start offset (unless -1) and the update's batches
    replacing what the earlier ones said of the same offsets; batches before the start are dropped."""
    start = base.start_offset if update.start_offset < 0 else update.start_offset
    merged: list[tuple[int, int, int, int]] = []
    for first, last, state, count in base.state_batches:
        pieces = [(first, last)]
        for uf, ul, _s, _c in update.state_batches:
            nxt = []
            for a, b in pieces:
                if ul < a or uf > b:
                    nxt.append((a, b))
                    continue
                if a < uf:
                    nxt.append((a, uf - 1))
                if ul < b:
                    nxt.append((ul + 1, b))
            pieces = nxt
        merged += [(a, b, state, count) for a, b in pieces]
    merged += list(update.state_batches)
    kept = sorted((max(f, start), l, s, c) for f, l, s, c in merged if l >= start)
    return ShareState(start, base.state_epoch, update.leader_epoch, base.snapshot_epoch, kept,
                      base.create_timestamp_ms, base.write_timestamp_ms)


def per_offset(state: ShareState) -> dict[int, tuple[int, int]]:
    """offset -> (delivery state, delivery count) of every offset the state's batches say, from its start."""
    out: dict[int, tuple[int, int]] = {}
    for first, last, s, c in state.state_batches:
        for offset in range(max(first, state.start_offset), last + 1):
            out[offset] = (s, c)
    return out


def changed_batches(old: ShareState, new: ShareState) -> list[tuple[int, int, int, int]] | None:
    """The batches of ``new`` that differ from ``old`` (what a ShareUpdate from ``old`` to ``new`` carries), as
    runs of consecutive offsets with one state and count; None when an update cannot say it (``new`` drops an
    offset ``old`` has from ``new``'s start on)."""
    before, after = per_offset(old), per_offset(new)
    if any(o >= new.start_offset and o not in after for o in before):
        return None
    runs: list[list[int]] = []
    for offset in sorted(after):
        value = after[offset]
        if before.get(offset) == value:
            continue
        if runs and runs[-1][1] == offset - 1 and (runs[-1][2], runs[-1][3]) == value:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset, *value])
    return [tuple(r) for r in runs]  # type: ignore[misc]


def delivery_complete_count(state: ShareState) -> int:
    """The in-flight records from the start offset already acknowledged (2) or archived (4) (KIP-1226)."""
    return sum(last - max(first, state.start_offset) + 1 for first, last, s, _c in state.state_batches
               if s in (2, 4) and last >= state.start_offset)
