"""The group coordinator's store over one partition of ``__consumer_offsets``, in Kafka's record formats.

`TopicOffsetStore` is an `OffsetStore` (offsets.py: the interface the group managers write through) whose
changes are records of its partition (coordinator/records.py), one batch per change:

    commit_offsets       OffsetCommitKey(group, topic, partition) -> OffsetCommitValue, one per partition
    delete_offsets       a tombstone per partition (and the group's pending transactional offsets rewritten)
    store_group          GroupMetadataKey(group) -> GroupMetadataValue
    store_consumer_group kbroker's CONSUMER_GROUP_STATE(group) -> a KIP-848 group's state (a tombstone to drop it)
    delete_group         tombstones for the group's metadata, every committed offset and pending offsets
    prepare_txn_offsets  kbroker's PENDING_TXN_OFFSETS(group, producer id) -> every offset the transaction holds
    complete_txn_offsets its tombstone, and the offsets that win as OffsetCommit records, in one batch

Tombstones keep the compacted partition bounded: what is deleted goes with the next cleaning. Loading reads
the partition from its start (``CoordinatorLog.replay``); a record's offset in the partition is the commit's
place in the order of commits (``CommittedOffset.commit_seq``), as Kafka orders a transaction's offsets
against plain commits by their offsets in ``__consumer_offsets``.

Other record types (KIP-848's consumer-group records, say) are kept as they are, the latest value per key
(``records_of_type``), and written with ``append_records``: a group type that persists its own records reads
and writes them through the same store and partition, keyed by its own record types.

Concurrency: the event loop only, like the coordinator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping

from ..errors import KafkaError
from . import records as R
from .offsets import (
    CommittedOffset,
    LiveState,
    OffsetStore,
    StoredGroup,
    StoreSnapshot,
    TopicPartition,
)
from .runtime import CoordinatorLog

def _offset_value(o: CommittedOffset) -> bytes:
    return R.offset_commit_value(R.OffsetValue(o.offset, o.leader_epoch, o.metadata, o.commit_timestamp_ms,
                                               o.expire_timestamp_ms))


def _pending_rows(offsets: Mapping[TopicPartition, CommittedOffset]) -> list[list]:
    return [[t, p, o.offset, o.leader_epoch, o.metadata, o.commit_timestamp_ms]
            for (t, p), o in sorted(offsets.items())]


class TopicOffsetStore(OffsetStore):
    """An OffsetStore over a partition of __consumer_offsets (see the module docstring). Constructing it reads
    the partition."""

    def __init__(self, coordinator_log: CoordinatorLog) -> None:  # noqa: D107 -- no state log: the partition is
        self.log = coordinator_log
        self._state = LiveState()
        self._other: dict[bytes, bytes] = {}  # key -> latest value, for the record types read elsewhere
        coordinator_log.replay(self._replay)

    # -- loading -----------------------------------------------------------------------------------------------

    def _replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        try:
            k = R.decode_offsets_key(key)
        except R.UnknownRecordType:
            self._keep(key, value)
            return
        s = self._state.snapshot
        if k.kind == R.OFFSET_COMMIT:
            tp = (k.topic, k.partition)
            if value is None:
                committed = s.offsets.get(k.group)
                if committed is not None:
                    committed.pop(tp, None)
                    if not committed:
                        del s.offsets[k.group]
                return
            v = R.decode_offset_value(value)
            self._state.commit(k.group, {tp: CommittedOffset(v.offset, v.leader_epoch, v.metadata,
                                                            v.commit_timestamp_ms, v.expire_timestamp_ms,
                                                            offset + 1)})
        elif k.kind == R.GROUP_METADATA:
            if value is None:
                s.groups.pop(k.group, None)
            else:
                self._state.group(R.decode_group_value(k.group, value))
        elif k.kind == R.CONSUMER_GROUP_STATE:
            if value is None:
                s.consumer_groups.pop(k.group, None)
            else:
                self._state.consumer_group(k.group, R.decode_json_value(value))
        else:  # PENDING_TXN_OFFSETS
            s.pending_txn_offsets.pop((k.producer_id, k.group), None)
            if value is not None:
                rows = R.decode_pending_txn_offsets(value)
                self._state.txn_prepare(k.producer_id, k.group, {
                    (r[0], r[1]): CommittedOffset(r[2], r[3], r[4], r[5], None, offset + 1) for r in rows})

    def _name(self) -> str:
        p = self.log.partition
        return f"{p.topic.name}-{p.index}"

    # -- writing -----------------------------------------------------------------------------------------------

    def _append(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Appends one change; an error of the partition (no longer led here, a storage error) is an OSError, as
        the OffsetStore interface promises: nothing was written and the coordinator answers accordingly."""
        if records:
            try:
                self.log.append(records)
            except KafkaError as e:
                raise OSError(f"{self._name()}: {e.message}") from e

    def load(self) -> StoreSnapshot:
        return self._state.copy()

    # -- record types kept for other group types ----------------------------------------------------------------

    def _keep(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._other.pop(key, None)
        else:
            self._other[key] = value

    def records_of_type(self, record_type: int) -> dict[bytes, bytes]:
        """The latest value of every key of ``record_type`` (a key's first two bytes) this store does not
        interpret itself, in the order they were written."""
        prefix = R.record_type_prefix(record_type)
        return {k: v for k, v in self._other.items() if k[:2] == prefix}

    def append_records(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Appends records of other record types as one change (None values are tombstones); raises OSError
        and changes nothing when the write fails."""
        self._append(records)
        for key, value in records:
            self._keep(key, value)

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        offsets = dict(offsets)
        self._append([(R.offset_commit_key(group_id, t, p), _offset_value(o)) for (t, p), o in offsets.items()])
        self._state.commit(group_id, offsets)

    def _pending_after_delete(self, group_id: str, partitions: Collection[TopicPartition]) -> list:
        """The group's pending transactional records as they are once ``partitions`` are gone."""
        out = []
        for (pid, gid), pending in self._state.snapshot.pending_txn_offsets.items():
            if gid != group_id or not any(tp in pending for tp in partitions):
                continue
            rest = {tp: o for tp, o in pending.items() if tp not in partitions}
            out.append((R.pending_txn_offsets_key(group_id, pid),
                        R.pending_txn_offsets_value(_pending_rows(rest)) if rest else None))
        return out

    def delete_offsets(self, group_id: str, partitions: Collection[TopicPartition]) -> None:
        partitions = list(partitions)
        records = [(R.offset_commit_key(group_id, t, p), None) for t, p in partitions]
        self._append(records + self._pending_after_delete(group_id, set(partitions)))
        self._state.delete_offsets(group_id, partitions)

    def store_group(self, group: StoredGroup) -> None:
        self._append([(R.group_metadata_key(group.group_id), R.group_metadata_value(group))])
        self._state.group(group)

    def store_consumer_group(self, group_id: str, value: dict) -> None:
        self._append([(R.consumer_group_state_key(group_id), R.json_value(value))])
        self._state.consumer_group(group_id, value)

    def drop_consumer_group(self, group_id: str) -> None:
        self._append([(R.consumer_group_state_key(group_id), None)])
        self._state.drop_consumer_group(group_id)

    def delete_group(self, group_id: str) -> None:
        s = self._state.snapshot
        records = [(R.group_metadata_key(group_id), None), (R.consumer_group_state_key(group_id), None)]
        records += [(R.offset_commit_key(group_id, t, p), None) for t, p in s.offsets.get(group_id, {})]
        records += [(R.pending_txn_offsets_key(group_id, pid), None)
                    for pid, gid in s.pending_txn_offsets if gid == group_id]
        self._append(records)
        self._state.delete_group(group_id)

    def prepare_txn_offsets(
        self, producer_id: int, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        offsets = dict(offsets)
        held = {**self._state.snapshot.pending_txn_offsets.get((producer_id, group_id), {}), **offsets}
        self._append([(R.pending_txn_offsets_key(group_id, producer_id),
                       R.pending_txn_offsets_value(_pending_rows(held)))])
        self._state.txn_prepare(producer_id, group_id, offsets)

    def complete_txn_offsets(
        self, producer_id: int, group_id: str, committed: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        committed = dict(committed)
        records = [(R.pending_txn_offsets_key(group_id, producer_id), None)]
        records += [(R.offset_commit_key(group_id, t, p), _offset_value(o)) for (t, p), o in committed.items()]
        self._append(records)
        self._state.txn_complete(producer_id, group_id, committed)

    def wait_written(self) -> Awaitable[None]:
        return self.log.wait_replicated()

    def close(self) -> None:
        pass  # the partition is the topic's, not the store's
