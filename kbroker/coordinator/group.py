"""The consumer-group coordinator the handlers call (Kafka's GroupCoordinatorService and GroupCoordinatorShard, for
classic groups): JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups,
ListGroups, DeleteGroups, and TxnOffsetCommit's offsets. Sans-IO.

Kafka's group coordinator is several classes, and so is this one:

    group.py                    GroupCoordinator: the API; is the coordinator loaded, is the group id valid; start-up
    group_metadata_manager.py   GroupMetadataManager: JoinGroup .. DeleteGroups, rebalances, member sessions
    consumer_group_manager.py   ConsumerGroupManager: ConsumerGroupHeartbeat, ConsumerGroupDescribe (KIP-848)
    consumer_group.py, assignors.py, current_assignment_builder.py   a consumer group, its server-side
                                assignors, a member's reconciliation
    share_group_manager.py      ShareGroupManager: ShareGroupHeartbeat, ShareGroupDescribe (KIP-932)
    share_group.py, share_group_records.py   a share group and its ShareGroup* records
    offset_metadata_manager.py  OffsetMetadataManager: commits, fetches, deletes, transactional offsets, expiry
    classic_group.py            ClassicGroup, ClassicGroupMember, GroupState: a group and its state machine
    offsets.py                  OffsetStore: offsets and group metadata as records of a state log
    results.py, group_config.py what the requests answer; the broker configs read

Life cycle: until `load()` has read the store every request is answered COORDINATOR_LOAD_IN_PROGRESS; after
`close()`, COORDINATOR_NOT_AVAILABLE (and waiting requests NOT_COORDINATOR), as Kafka answers while a coordinator's
partition loads or after it moves away.

Concurrency: called from the event loop only; see the managers. Timers come from the injected `Clock`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..clock import Clock, TimerHandle
from ..errors import ErrorCode
from .classic_group import CONSUMER_PROTOCOL_TYPE, ClassicGroup, ClassicGroupMember, GroupState
from .consumer_group import ConsumerGroup
from .consumer_group_manager import ConsumerGroupDescription, ConsumerGroupManager, HeartbeatResult, TopicImage
from .current_assignment_builder import Assignment
from .group_config import ConsumerGroupSettings, GroupConfig
from .group_metadata_manager import NEW_MEMBER_JOIN_TIMEOUT_MS, GroupMetadataManager
from .offset_metadata_manager import OffsetMetadataManager
from .offsets import CommittedOffset, MemoryOffsetStore, OffsetStore, StoredGroup, StoredMember, TopicPartition
from .share_group_listener import ShareGroupListener, ShareGroupSettings
from .share_group_manager import ShareGroupDescription, ShareGroupManager, ShareHeartbeatResult
from .results import (
    NO_OFFSET,
    DescribeResult,
    JoinMember,
    JoinResult,
    LeaveResult,
    LeavingMember,
    ListedGroup,
    ListGroupsResult,
    MemberDescription,
    MemberLeaveResult,
    OffsetAndMetadata,
    OffsetDeleteResult,
    OffsetFetchResult,
    Reply,
    SyncResult,
)

__all__ = [
    "CONSUMER_PROTOCOL_TYPE", "NEW_MEMBER_JOIN_TIMEOUT_MS", "NO_OFFSET", "ClassicGroup", "ClassicGroupMember",
    "CommittedOffset", "ConsumerGroupDescription",
    "DescribeResult", "HeartbeatResult", "GroupConfig", "GroupCoordinator", "GroupState", "JoinMember", "JoinResult",
    "LeaveResult", "LeavingMember", "ListGroupsResult", "ListedGroup", "MemberDescription", "MemberLeaveResult",
    "OffsetAndMetadata", "OffsetDeleteResult", "OffsetFetchResult", "Reply", "StoredGroup", "StoredMember",
    "SyncResult", "TopicPartition",
]

log = logging.getLogger("kbroker.coordinator.group")

_DEAD = GroupState.DEAD


class GroupCoordinator:
    def __init__(
        self,
        clock: Clock,
        config: GroupConfig | Mapping[str, Any] | None = None,
        offset_store: OffsetStore | None = None,
        on_change: Callable[[], None] | None = None,
        topics: TopicImage | None = None,
        share_listeners: list[ShareGroupListener] | None = None,
        share_settings: Callable[[str], ShareGroupSettings] | None = None,
        consumer_settings: Callable[[str], ConsumerGroupSettings] | None = None,
    ) -> None:
        """``on_change`` is called after a group changes state or loses a member, including from timers
        (the control plane's wait listens to it). ``topics``: the cluster's topics, which consumer-protocol
        and share groups subscribe to (none when not given). ``share_listeners``: told of share group members
        leaving (share_group_listener.py); ``share_settings(group_id)``: a share group's effective settings;
        ``consumer_settings(group_id)``: a consumer-protocol group's session timeout and heartbeat interval."""
        self._clock = clock
        if config is None:
            config = GroupConfig()
        elif not isinstance(config, GroupConfig):
            config = GroupConfig.from_mapping(config)
        self.config: GroupConfig = config
        self._store = offset_store if offset_store is not None else MemoryOffsetStore()
        self.group_manager = GroupMetadataManager(clock, config, self._store, on_change)
        self.consumer_manager = ConsumerGroupManager(clock, config, self._store, self.group_manager.groups, topics,
                                                     on_change, self.group_manager, consumer_settings)
        self.offset_manager = OffsetMetadataManager(clock, config, self._store, self.group_manager)
        self.share_manager = ShareGroupManager(clock, config, self._store, topics, on_change, share_listeners,
                                               share_settings, lambda gid: gid in self.group_manager.groups)
        self._loading = True
        self._closed = False
        # False for the stand-in of the groups whose partition this broker does not lead (coordinator/service.py):
        # every request is answered NOT_COORDINATOR, as Kafka's broker answers them.
        self.hosted = True
        self._retention_timer: TimerHandle | None = None

    # -- life cycle ----------------------------------------------------------------------------------------------

    @property
    def store(self) -> OffsetStore:
        """Where this coordinator's groups and offsets are kept."""
        return self._store

    @property
    def is_loading(self) -> bool:
        """True until `load()` has run: every request is answered COORDINATOR_LOAD_IN_PROGRESS meanwhile."""
        return self._loading

    def load(self) -> None:
        """Reads groups and offsets from the store (synchronously) and starts the offset-expiry timer."""
        if not self._loading:
            return
        snapshot = self._store.load()
        self.group_manager.load(snapshot)
        self.consumer_manager.load(snapshot)
        self.offset_manager.load(snapshot)
        self.share_manager.load()
        self._loading = False
        self._retention_timer = self._clock.call_later(
            self.config.offsets_retention_check_interval_ms, self._on_retention_check)
        log.debug("loaded %d groups", len(self.group_manager.groups))

    def close(self) -> None:
        """Stops timers and answers every waiting request NOT_COORDINATOR (as Kafka does when it unloads groups)."""
        self._closed = True
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None
        self.consumer_manager.close()
        self.share_manager.close()
        self.group_manager.close()

    def _on_retention_check(self) -> None:
        self._retention_timer = self._clock.call_later(
            self.config.offsets_retention_check_interval_ms, self._on_retention_check)
        self.expire_offsets()

    def _status(self) -> int:
        if not self.hosted:
            return ErrorCode.NOT_COORDINATOR
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def _consumer_group_with_members(self, group_id: str) -> ConsumerGroup | None:
        """A consumer-protocol group with members: the classic requests of its classic members (an online
        migration) go to the ConsumerGroupManager."""
        group = self.group_manager.groups.get(group_id)
        return group if isinstance(group, ConsumerGroup) and group.members else None

    def _check(self, group_id: str | None, *, allow_empty_id: bool = False) -> int:
        """Kafka's validateGroupStatus. OffsetCommit, OffsetFetch, DescribeGroups and DeleteGroups accept the
        empty group id, for compatibility with old clients."""
        if group_id is None or (not group_id and not allow_empty_id):
            return ErrorCode.INVALID_GROUP_ID
        return self._status()

    def _is_share_group(self, group_id: str | None) -> bool:
        """A share group's id is refused to the classic and consumer protocols and to offset commits (Kafka's
        ShareGroup.validateOffsetCommit); an OffsetFetch finds no offsets, as Kafka's."""
        return group_id in self.share_manager.groups

    def is_share_group(self, group_id: str) -> bool:
        """Whether the id names a share group (DescribeGroups v6 tells it is not a classic group)."""
        return self._status() == ErrorCode.NONE and self._is_share_group(group_id)

    # -- the group protocol --------------------------------------------------------------------------------------

    def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Iterable[tuple[str, bytes]],
        require_known_member_id: bool,
        reason: str | None = None,
        *,
        supports_skip_assignment: bool = True,
    ) -> Reply[JoinResult]:
        """JoinGroup. `require_known_member_id` is Kafka's `version >= 4 and group_instance_id is None`;
        `supports_skip_assignment` is `version >= 9` (a static leader rejoining a Stable group: from v9 it gets the
        member list with skip_assignment=True; before, the old leader id and no members, so it does not assign)."""
        err = self._check(group_id)
        if err == ErrorCode.NONE and self._is_share_group(group_id):
            return Reply.completed(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=""))
        if err != ErrorCode.NONE:
            return Reply.completed(JoinResult(err, member_id=member_id))
        group = self._consumer_group_with_members(group_id)
        if group is not None:
            return Reply.completed(self.consumer_manager.classic_join(
                group, member_id, group_instance_id, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                protocol_type, protocols, require_known_member_id))
        return self.group_manager.join_group(
            group_id, member_id, group_instance_id, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
            protocol_type, protocols, require_known_member_id, reason,
            supports_skip_assignment=supports_skip_assignment)

    def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: Mapping[str, bytes],
    ) -> Reply[SyncResult]:
        """SyncGroup. `protocol_type` / `protocol_name` are None before v5 (not checked). Assignments for members
        not in the group are ignored; members the leader left out get an empty assignment."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return Reply.completed(SyncResult(err))
        group = self._consumer_group_with_members(group_id)
        if group is not None:
            return Reply.completed(self.consumer_manager.classic_sync(group, generation_id, member_id,
                                                                      group_instance_id, protocol_name))
        return self.group_manager.sync_group(group_id, generation_id, member_id, group_instance_id, protocol_type,
                                             protocol_name, assignments)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> int:
        """Heartbeat: the error code. REBALANCE_IN_PROGRESS tells a member to rejoin."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return err
        group = self._consumer_group_with_members(group_id)
        if group is not None:
            return self.consumer_manager.classic_heartbeat(group, generation_id, member_id, group_instance_id)
        return self.group_manager.heartbeat(group_id, generation_id, member_id, group_instance_id)

    def leave_group(self, group_id: str, members: Iterable[tuple[str, str | None, str | None]]) -> LeaveResult:
        """LeaveGroup, batched as in v3+. For v0-2 (one member, no instance id) the handler answers the member's
        error as the top-level one. A member given by instance id alone (empty member id) is removed by an admin."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return LeaveResult(err)
        group = self._consumer_group_with_members(group_id)
        if group is not None:
            return self.consumer_manager.classic_leave(group, members)
        return self.group_manager.leave_group(group_id, members)

    def describe_group(self, group_id: str) -> DescribeResult:
        err = self._check(group_id, allow_empty_id=True)
        if err != ErrorCode.NONE:
            return DescribeResult(err, group_id or "", _DEAD.value)
        return self.group_manager.describe_group(group_id)

    def list_groups(
        self, states_filter: Iterable[str] | None = None, types_filter: Iterable[str] | None = None
    ) -> ListGroupsResult:
        """ListGroups. Filters (v4 states, v5 types) compare case-insensitively; empty or None means all."""
        err = self._status()
        if err != ErrorCode.NONE:
            return ListGroupsResult(err)
        res = self.group_manager.list_groups(states_filter, types_filter)
        states = {s.lower() for s in states_filter or ()}
        types = {t.lower() for t in types_filter or ()}
        for g in self.share_manager.groups.values():
            if (not states or g.state.value.lower() in states) and (not types or "share" in types):
                res.groups.append(ListedGroup(g.group_id, g.protocol_type, g.state.value, "share"))
        return res

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, int]:
        """DeleteGroups: per group, NONE, NON_EMPTY_GROUP or GROUP_ID_NOT_FOUND. Deleting removes the offsets."""
        results = {}
        for group_id in group_ids:
            err = self._check(group_id, allow_empty_id=True)
            if err == ErrorCode.NONE and self._is_share_group(group_id):
                results[group_id] = self.share_manager.delete(group_id)
                continue
            results[group_id] = err if err != ErrorCode.NONE else self.group_manager.delete_group_by_id(group_id)
        return results

    # -- the consumer group protocol (KIP-848) --------------------------------------------------------------------

    def consumer_group_heartbeat(
        self,
        version: int,
        group_id: str,
        member_id: str,
        member_epoch: int,
        instance_id: str | None,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed_topic_names: list[str] | None,
        subscribed_topic_regex: str | None,
        server_assignor: str | None,
        owned: Assignment | None,
        client_id: str = "",
        client_host: str = "",
    ) -> HeartbeatResult:
        """ConsumerGroupHeartbeat (see ConsumerGroupManager.heartbeat)."""
        err = self._status()
        if err != ErrorCode.NONE:
            return HeartbeatResult(err)
        if self._is_share_group(group_id):
            return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
        return self.consumer_manager.heartbeat(
            version, group_id, member_id, member_epoch, instance_id, rack_id, rebalance_timeout_ms,
            subscribed_topic_names, subscribed_topic_regex, server_assignor, owned, client_id, client_host)

    def consumer_group_describe(self, group_id: str) -> ConsumerGroupDescription:
        """One group of ConsumerGroupDescribe: GROUP_ID_NOT_FOUND unless it is a consumer-protocol group."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return ConsumerGroupDescription(err, group_id or "")
        return self.consumer_manager.describe(group_id)

    def remove_consumer_group_members(self, group_id: str, reason: str) -> None:
        """Fences every member of a consumer-protocol group (the control plane's reset; an admin's
        removeMembersFromConsumerGroup without a request of its own)."""
        if self._status() == ErrorCode.NONE:
            self.consumer_manager.remove_members(group_id, reason)

    # -- share groups (KIP-932) ----------------------------------------------------------------------------------

    def share_group_heartbeat(self, group_id: str, member_id: str, member_epoch: int, rack_id: str | None,
                              subscribed_topic_names: list[str] | None, client_id: str = "",
                              client_host: str = "") -> ShareHeartbeatResult:
        """ShareGroupHeartbeat (see ShareGroupManager.heartbeat)."""
        err = self._status()
        if err != ErrorCode.NONE:
            return ShareHeartbeatResult(err)
        return self.share_manager.heartbeat(group_id, member_id, member_epoch, rack_id, subscribed_topic_names,
                                            client_id, client_host)

    def share_group_describe(self, group_id: str) -> ShareGroupDescription:
        """One group of ShareGroupDescribe: GROUP_ID_NOT_FOUND unless it is a share group."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return ShareGroupDescription(err, group_id or "")
        return self.share_manager.describe(group_id)

    def share_group_assignment(self, group_id: str) -> dict[str, Assignment] | None:
        """Every member of the share group and its assigned partitions; None when not a share group here."""
        if self._status() != ErrorCode.NONE:
            return None
        return self.share_manager.assignment(group_id)

    def remove_share_group_members(self, group_id: str, reason: str) -> None:
        if self._status() == ErrorCode.NONE:
            self.share_manager.remove_members(group_id, reason)

    # -- offsets -------------------------------------------------------------------------------------------------

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
        """OffsetCommit: per partition error codes (see OffsetMetadataManager.commit_offsets)."""
        err = self._check(group_id, allow_empty_id=True)
        if err == ErrorCode.NONE and self._is_share_group(group_id):
            err = ErrorCode.GROUP_ID_NOT_FOUND
        if err != ErrorCode.NONE:
            return dict.fromkeys(offsets, err)
        return self.offset_manager.commit_offsets(group_id, generation_id, member_id, group_instance_id, offsets,
                                                  retention_time_ms, api_version)

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None, require_stable: bool = False,
        member_id: str | None = None, member_epoch: int = -1,
    ) -> OffsetFetchResult:
        """OffsetFetch (see OffsetMetadataManager.fetch_offsets)."""
        err = self._check(group_id, allow_empty_id=True)
        if err != ErrorCode.NONE:
            return OffsetFetchResult(err)
        return self.offset_manager.fetch_offsets(group_id, partitions, require_stable, member_id, member_epoch)

    def delete_offsets(self, group_id: str, partitions: Iterable[TopicPartition]) -> OffsetDeleteResult:
        """OffsetDelete (KIP-496; see OffsetMetadataManager.delete_offsets)."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return OffsetDeleteResult(err)
        return self.offset_manager.delete_offsets(group_id, partitions)

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
        """TxnOffsetCommit (see OffsetMetadataManager.prepare_txn_offsets)."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return dict.fromkeys(offsets, err)
        return self.offset_manager.prepare_txn_offsets(producer_id, group_id, offsets, generation_id=generation_id,
                                                       member_id=member_id, group_instance_id=group_instance_id,
                                                       api_version=api_version)

    def complete_txn_offsets(self, producer_id: int, group_id: str, commit: bool) -> int:
        """Ends the producer's transaction for the group (its marker was written); see OffsetMetadataManager."""
        err = self._status()
        if err != ErrorCode.NONE:
            return err
        return self.offset_manager.complete_txn_offsets(producer_id, group_id, commit)

    def expire_offsets(self) -> int:
        """Drops offsets past offsets.retention.minutes (see OffsetMetadataManager.expire_offsets)."""
        return self.offset_manager.expire_offsets()

    # -- for tests and admin tools -------------------------------------------------------------------------------

    def group_state(self, group_id: str) -> str | None:
        return self.group_manager.group_state(group_id)

    def generation_id(self, group_id: str) -> int | None:
        return self.group_manager.generation_id(group_id)

    def member_count(self, group_id: str) -> int:
        """How many members the group has, of either kind of group (0 for an unknown group)."""
        group = self.group_manager.groups.get(group_id) or self.share_manager.groups.get(group_id)
        return len(group.members) if group is not None else 0
