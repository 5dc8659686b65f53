"""Committed offsets (Kafka's OffsetMetadataManager): OffsetCommit, OffsetFetch, OffsetDelete, TxnOffsetCommit's
offsets and their completion by the transaction's marker, and offset expiry. Sans-IO.

Committed offsets are written to the `OffsetStore` before a commit is acknowledged. Transactional offsets stay pending
per producer until the transaction ends, and then win only over commits made before them (Kafka compares the
records' offsets in __consumer_offsets; here a commit sequence number). Offsets expire after
offsets.retention.minutes: all of an Empty group's, counted from when it became Empty; in a Stable consumer group,
those of topics it no longer subscribes to, counted from their commit; and an Empty group left with no offsets is
forgotten.

A group's offsets ride on its `ClassicGroup` (`offsets`, `pending_txn`), which the GroupMetadataManager owns; this
manager reads and changes only those two fields, and asks the GroupMetadataManager for groups, for member sessions
(a commit counts as a sign of life) and to forget a group. Concurrency: as the GroupMetadataManager's, the event
loop only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from ..clock import Clock
from ..errors import ErrorCode
from .classic_group import CONSUMER_PROTOCOL_TYPE, ClassicGroup, GroupState
from .consumer_group import ConsumerGroup
from .group_config import GroupConfig
from .group_metadata_manager import GroupMetadataManager
from .offsets import CommittedOffset, OffsetStore, StoreSnapshot, TopicPartition
from .results import NO_OFFSET, OffsetAndMetadata, OffsetDeleteResult, OffsetFetchResult

log = logging.getLogger("kbroker.coordinator.offsets")

_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE
_DEAD = GroupState.DEAD


class OffsetMetadataManager:
    def __init__(self, clock: Clock, config: GroupConfig, store: OffsetStore, groups: GroupMetadataManager) -> None:
        self._clock = clock
        self.config = config
        self._store = store
        self._groups = groups
        self._commit_seq = 0

    def load(self, snapshot: StoreSnapshot) -> None:
        """Committed and pending transactional offsets as stored (after the groups: offsets of a group with no
        stored metadata make an Empty group)."""
        seq = 0
        for group_id, offsets in snapshot.offsets.items():
            self._groups.get_or_create_group(group_id).offsets = dict(offsets)
            seq = max([seq, *(o.commit_seq for o in offsets.values())])
        for (producer_id, group_id), offsets in snapshot.pending_txn_offsets.items():
            self._groups.get_or_create_group(group_id).pending_txn[producer_id] = dict(offsets)
            seq = max([seq, *(o.commit_seq for o in offsets.values())])
        self._commit_seq = seq

    # -- OffsetCommit, OffsetFetch, OffsetDelete ------------------------------------------------------------------

    def _validate_offset_commit(
        self, group: ClassicGroup, generation_id: int, member_id: str, group_instance_id: str | None,
        transactional: bool,
    ) -> int:
        if group.state is _DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            err = group.validate_member(member_id, group_instance_id)
            if err == ErrorCode.NONE and generation_id != group.generation_id:
                err = ErrorCode.ILLEGAL_GENERATION
            return err
        if not transactional and group.state is not _EMPTY:
            # Only members commit to a group with members. Transactional commits are exempt: TxnOffsetCommit
            # before v3 carries no member id or generation.
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    @staticmethod
    def _validate_consumer_group_commit(
        group: ConsumerGroup, member_epoch: int, member_id: str, transactional: bool, api_version: int | None,
    ) -> int:
        """Kafka's ConsumerGroup.validateOffsetCommit: with no member epoch (an admin, a consumer outside the group)
        only while the group has no members; otherwise the member at its current epoch (STALE_MEMBER_EPOCH), and
        OffsetCommit from v9 (its members send member epochs, not generations)."""
        if member_epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member.classic is not None:
            # A classic member of a group being migrated commits with its generation, the member epoch.
            return ErrorCode.NONE if member_epoch == member.member_epoch else ErrorCode.ILLEGAL_GENERATION
        if not transactional and api_version is not None and api_version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def _offsets_to_store(
        self, offsets: Mapping[TopicPartition, tuple[int, int, str | None]], retention_time_ms: int,
        errors: dict[TopicPartition, int],
    ) -> dict[TopicPartition, CommittedOffset]:
        now = self._clock.now_ms()
        expire = now + retention_time_ms if retention_time_ms >= 0 else None
        valid = {}
        for tp, (offset, leader_epoch, metadata) in offsets.items():
            metadata = metadata or ""
            if len(metadata) > self.config.offset_metadata_max_bytes:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            self._commit_seq += 1
            valid[tp] = CommittedOffset(offset, leader_epoch, metadata, now, expire, self._commit_seq)
        return valid

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: Mapping[TopicPartition, tuple[int, int, str | None]],
        retention_time_ms: int = -1,
        api_version: int | None = None,
    ) -> dict[TopicPartition, int]:
        """OffsetCommit: per partition error codes. `offsets` maps (topic, partition) to (offset, leader_epoch,
        metadata). Generation -1 with no member id is a standalone ("simple") commit, allowed when the group has no
        members. `retention_time_ms` (v2-v4) >= 0 sets the offsets' own expiry. Whether the topic exists
        (UNKNOWN_TOPIC_OR_PARTITION) is for the handler to check, as Kafka's KafkaApis does."""
        def every(code: int) -> dict[TopicPartition, int]:
            return {tp: code for tp in offsets}

        group = self._groups.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return every(ErrorCode.ILLEGAL_GENERATION)  # a member of a generation this coordinator never had
            group = self._groups.get_or_create_group(group_id)
        if isinstance(group, ConsumerGroup):
            err = self._validate_consumer_group_commit(group, generation_id, member_id, False, api_version)
        else:
            err = self._validate_offset_commit(group, generation_id, member_id, group_instance_id, False)
            if err == ErrorCode.NONE and group.state is _COMPLETING:
                # The member has its join answer but not its assignment yet: it has nothing to commit for.
                err = ErrorCode.REBALANCE_IN_PROGRESS
        if err != ErrorCode.NONE:
            return every(err)
        if isinstance(group, ClassicGroup) and group.state in (_STABLE, _PREPARING):
            # Commits are accepted while preparing a rebalance: heartbeats tell the member to rejoin.
            self._groups.touch(group, group.members[member_id])
        errors: dict[TopicPartition, int] = {}
        valid = self._offsets_to_store(offsets, retention_time_ms, errors)
        if valid:
            try:
                self._store.commit_offsets(group_id, valid)
            except OSError:
                log.exception("group %s: could not store offsets", group_id)
                errors.update(dict.fromkeys(valid, ErrorCode.COORDINATOR_NOT_AVAILABLE))
            else:
                group.offsets.update(valid)
                errors.update(dict.fromkeys(valid, ErrorCode.NONE))
        return {tp: errors[tp] for tp in offsets}

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None, require_stable: bool = False,
        member_id: str | None = None, member_epoch: int = -1,
    ) -> OffsetFetchResult:
        """OffsetFetch. Partitions with no committed offset answer offset -1 (as Kafka); None asks for all committed
        ones. With `require_stable` (v7+, KIP-447) a partition with a pending transactional offset answers
        UNSTABLE_OFFSET_COMMIT, so the consumer retries after the transaction ends. A member of a consumer group
        (v9+: `member_id`, `member_epoch`) must be at its current epoch (Kafka's validateOffsetFetch)."""
        group = self._groups.groups.get(group_id)
        if isinstance(group, ConsumerGroup) and member_id is not None and member_epoch >= 0:
            member = group.members.get(member_id)
            if member is None:
                return OffsetFetchResult(ErrorCode.UNKNOWN_MEMBER_ID)
            if member.member_epoch != member_epoch:
                return OffsetFetchResult(ErrorCode.STALE_MEMBER_EPOCH)
        committed = group.offsets if group is not None else {}
        wanted = list(committed) if partitions is None else list(partitions)
        result = OffsetFetchResult(ErrorCode.NONE)
        for tp in wanted:
            if require_stable and group is not None and group.has_pending_txn(tp):
                result.offsets[tp] = NO_OFFSET
                result.partition_errors[tp] = ErrorCode.UNSTABLE_OFFSET_COMMIT
                continue
            o = committed.get(tp)
            result.offsets[tp] = NO_OFFSET if o is None else OffsetAndMetadata(o.offset, o.leader_epoch, o.metadata)
        return result

    def delete_offsets(self, group_id: str, partitions: Iterable[TopicPartition]) -> OffsetDeleteResult:
        """OffsetDelete (KIP-496): allowed for an Empty group, or for topics a consumer group does not subscribe to."""
        partitions = list(partitions)
        group = self._groups.groups.get(group_id)
        if group is None:
            return OffsetDeleteResult(ErrorCode.GROUP_ID_NOT_FOUND)
        result = OffsetDeleteResult(ErrorCode.NONE)
        if group.state is _EMPTY or (isinstance(group, ConsumerGroup) and not group.members):
            eligible = partitions
        elif group.protocol_type == CONSUMER_PROTOCOL_TYPE:
            subscribed = group.subscribed_topics
            eligible = []
            for tp in partitions:
                if subscribed is None or tp[0] in subscribed:  # unknown subscriptions count as subscribed
                    result.partition_errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    eligible.append(tp)
        else:
            return OffsetDeleteResult(ErrorCode.NON_EMPTY_GROUP)
        if eligible:
            try:
                self._store.delete_offsets(group_id, eligible)
            except OSError:
                log.exception("group %s: could not delete offsets", group_id)
                return OffsetDeleteResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            self._forget_offsets(group, eligible)
            result.partition_errors.update(dict.fromkeys(eligible, ErrorCode.NONE))
        return result

    @staticmethod
    def _forget_offsets(group: ClassicGroup, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            group.offsets.pop(tp, None)
            for pending in group.pending_txn.values():
                pending.pop(tp, None)
        for producer_id in [p for p, o in group.pending_txn.items() if not o]:
            del group.pending_txn[producer_id]

    # -- transactional offsets -----------------------------------------------------------------------------------

    def prepare_txn_offsets(
        self,
        producer_id: int,
        group_id: str,
        offsets: Mapping[TopicPartition, tuple[int, int, str | None]],
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
        api_version: int = 5,
    ) -> dict[TopicPartition, int]:
        """TxnOffsetCommit: stores offsets that fetch_offsets shows only after complete_txn_offsets(commit=True).
        The member fields (v3+, KIP-447) are checked when given. The transaction coordinator checks the producer.
        As Kafka's validateTransactionalOffsetCommit: a member-checked commit (generation >= 0) to an unknown
        group, and a stale member epoch, are GROUP_ID_NOT_FOUND and STALE_MEMBER_EPOCH from v6 (KIP-1319),
        ILLEGAL_GENERATION before."""
        def every(code: int) -> dict[TopicPartition, int]:
            return {tp: code for tp in offsets}

        if generation_id >= 0 and group_id not in self._groups.groups:
            return every(ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 6 else ErrorCode.ILLEGAL_GENERATION)
        group = self._groups.get_or_create_group(group_id)
        if isinstance(group, ConsumerGroup):
            err = self._validate_consumer_group_commit(group, generation_id, member_id, True, None)
            if err == ErrorCode.STALE_MEMBER_EPOCH and api_version < 6:
                err = ErrorCode.ILLEGAL_GENERATION
        else:
            err = self._validate_offset_commit(group, generation_id, member_id, group_instance_id, True)
        if err != ErrorCode.NONE:
            return every(err)
        errors: dict[TopicPartition, int] = {}
        valid = self._offsets_to_store(offsets, -1, errors)
        if valid:
            try:
                self._store.prepare_txn_offsets(producer_id, group_id, valid)
            except OSError:
                log.exception("group %s: could not store transactional offsets", group_id)
                errors.update(dict.fromkeys(valid, ErrorCode.COORDINATOR_NOT_AVAILABLE))
            else:
                group.pending_txn.setdefault(producer_id, {}).update(valid)
                errors.update(dict.fromkeys(valid, ErrorCode.NONE))
        return {tp: errors[tp] for tp in offsets}

    def complete_txn_offsets(self, producer_id: int, group_id: str, commit: bool) -> int:
        """Ends the producer's transaction for the group (its marker was written): on commit its offsets become
        committed, except where a plain commit came after them; on abort they are dropped."""
        group = self._groups.groups.get(group_id)
        if group is None or producer_id not in group.pending_txn:
            return ErrorCode.NONE
        pending = group.pending_txn[producer_id]
        winners = {}
        if commit:
            for tp, o in pending.items():
                current = group.offsets.get(tp)
                if current is None or current.commit_seq < o.commit_seq:
                    winners[tp] = o
        try:
            self._store.complete_txn_offsets(producer_id, group_id, winners)
        except OSError:
            log.exception("group %s: could not end transactional offsets of producer %d", group_id, producer_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        del group.pending_txn[producer_id]
        group.offsets.update(winners)
        return ErrorCode.NONE

    # -- offset expiry -------------------------------------------------------------------------------------------

    def expire_offsets(self) -> int:
        """Drops offsets past offsets.retention.minutes, and the Empty groups left with none. Runs every
        offsets.retention.check.interval.ms; returns how many offsets went."""
        now = self._clock.now_ms()
        retention_ms = self.config.offsets_retention_minutes * 60_000
        removed = 0
        for group in list(self._groups.groups.values()):
            if isinstance(group, ConsumerGroup):
                # Kafka's consumer groups: offsets of topics no member subscribes to, counted from their commit.
                base = lambda o: o.commit_timestamp_ms  # noqa: E731
                subscribed = group.subscribed_topics
            elif group.state is _EMPTY and group.protocol_type is not None:
                # Counted from when the last member left (KIP-211).
                base: Callable[[CommittedOffset], int] = lambda o, g=group: g.state_timestamp_ms  # noqa: E731
                subscribed: frozenset[str] = frozenset()
            elif group.state is _STABLE and group.protocol_type == CONSUMER_PROTOCOL_TYPE \
                    and group.subscribed_topics is not None:
                base = lambda o: o.commit_timestamp_ms  # noqa: E731
                subscribed = group.subscribed_topics
            elif group.protocol_type is None:  # standalone consumers: only commits, never members
                base = lambda o: o.commit_timestamp_ms  # noqa: E731
                subscribed = frozenset()
            else:
                continue
            expired = [
                tp for tp, o in group.offsets.items()
                if tp[0] not in subscribed and not group.has_pending_txn(tp) and (
                    now - base(o) >= retention_ms if o.expire_timestamp_ms is None else now >= o.expire_timestamp_ms)
            ]
            if expired:
                try:
                    self._store.delete_offsets(group.group_id, expired)
                except OSError:
                    log.exception("group %s: could not expire offsets", group.group_id)
                    continue
                self._forget_offsets(group, expired)
                removed += len(expired)
                log.info("group %s: expired %d offsets", group.group_id, len(expired))
            if isinstance(group, ConsumerGroup):
                if not group.members and not group.offsets and not group.pending_txn:
                    self._groups.delete_group(group)
            elif group.state is _EMPTY and not group.offsets and not group.pending_txn and not group.pending_members:
                self._groups.delete_group(group)
        return removed
