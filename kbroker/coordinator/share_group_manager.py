"""Share groups' request handling in the group coordinator (KIP-932; Kafka's GroupMetadataManager for share
groups): ShareGroupHeartbeat, ShareGroupDescribe, member sessions, and the share groups' part of ListGroups,
DescribeGroups and DeleteGroups. Sans-IO.

Theory of operation
-------------------
A heartbeat (1) finds or creates the member (its id is made up by the client, KIP-1082; epoch 0 joins, -1
leaves); (2) applies what changed in its subscription; (3) bumps the group epoch when a subscription or the
subscribed topics' metadata changed; (4) when the group epoch passed the assignment epoch, computes a new target
assignment of every member with the share assignor (assignors.simple_assign: a partition may go to several
members); (5) moves this member to its target at once (no revocation: Kafka's ShareGroupAssignmentBuilder);
(6) answers with the member's epoch and, when it joined, sent its subscription or got a new assignment, its
assignment. Partitions assigned for the first time are recorded as initialised (ShareGroupStatePartitionMetadata).

A member's session ends `group.share.session.timeout.ms` (or the group's `share.session.timeout.ms`) after its
last heartbeat: it is fenced (removed, the group epoch bumped) and the listeners are told
(share_group_listener.py), as they are when it leaves.

Every change is written as Kafka's ShareGroup* records (share_group_records.py) through the OffsetStore
(`append_records`) before the heartbeat is answered; on load the groups are rebuilt from those records and
their members' sessions start again.

Concurrency: the event loop only. Share groups live in their own dict, but their ids share the namespace of
classic and consumer groups: the GroupCoordinator refuses a share group id to the other protocols and this
manager refuses the others' ids.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..clock import Clock
from ..errors import ErrorCode
from . import share_group_records as S
from .assignors import SHARE_ASSIGNORS, MemberSpec
from .consumer_group_manager import (
    ConsumerGroupDescription,
    HeartbeatResult,
    MemberSessions,
    TopicImage,
    _EmptyImage,
    _Refused,
    subscription_metadata,
    topic_rows,
)
from .group_config import GroupConfig, share_group_settings
from .offsets import OffsetStore
from .share_group import Assignment, ShareGroup, ShareGroupMember, ShareGroupState
from .share_group_listener import ShareGroupListener, ShareGroupSettings

log = logging.getLogger("kbroker.coordinator.share_group")

LEAVE_GROUP_MEMBER_EPOCH = -1


# A share heartbeat answers what a consumer-protocol one does; a described share group is a consumer group's
# description whose members are DescribedShareMembers.
ShareHeartbeatResult = HeartbeatResult
ShareGroupDescription = ConsumerGroupDescription


@dataclass(slots=True)
class DescribedShareMember:
    member_id: str
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    assignment: list[tuple[uuid.UUID, str, list[int]]]


def _metadata_hash(metadata: Mapping[str, tuple[uuid.UUID, int]]) -> int:
    """A 64-bit digest of the subscribed topics' ids and partition counts (Kafka's MetadataHash field; its value
    is kbroker's own: only its changes matter)."""
    text = ";".join(f"{name}:{tid}:{n}" for name, (tid, n) in sorted(metadata.items()))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class ShareGroupManager(MemberSessions):
    SESSION_EXPIRED = "the member session expired"

    def __init__(
        self,
        clock: Clock,
        config: GroupConfig,
        store: OffsetStore,
        topics: TopicImage | None = None,
        on_change: Callable[[], None] | None = None,
        listeners: list[ShareGroupListener] | None = None,
        settings: Callable[[str], ShareGroupSettings] | None = None,
        other_group_exists: Callable[[str], bool] | None = None,
    ) -> None:
        """`listeners`: told of members leaving and groups emptied or deleted (a list the caller may add to
        later). `settings(group_id)`: the group's effective share settings (its GROUP configs); the broker
        defaults when not given. `other_group_exists(group_id)`: whether a classic or consumer group has the id."""
        self._clock = clock
        self.config = config
        self._store = store
        self.topics: TopicImage = topics if topics is not None else _EmptyImage()
        self._on_change = on_change
        self.listeners = listeners if listeners is not None else []
        self._settings = settings
        self._other_group_exists = other_group_exists or (lambda group_id: False)
        self.groups: dict[str, ShareGroup] = {}

    # -- life cycle ----------------------------------------------------------------------------------------------

    def load(self) -> None:
        """The share groups as their records in the store say; every member's session starts now."""
        records_of_type = getattr(self._store, "records_of_type", None)
        if records_of_type is None:
            return
        by_group: dict[str, dict[bytes, bytes]] = {}
        for record_type in S.RECORD_TYPES:
            for raw, value in records_of_type(record_type).items():
                by_group.setdefault(S.decode_key(raw).group_id, {})[raw] = value
        for group_id, records in by_group.items():
            if S.key(S.GROUP_METADATA, group_id) not in records:
                continue  # member records without their group: a deletion that was cut short
            group = self.groups[group_id] = ShareGroup.from_records(group_id, records)
            for member in group.members.values():
                self._touch(group, member)

    def close(self) -> None:
        for group in self.groups.values():
            for member in group.members.values():
                self._cancel_session(member)

    def settings(self, group_id: str) -> ShareGroupSettings:
        if self._settings is not None:
            return self._settings(group_id)
        return share_group_settings(self.config, {})

    # -- ShareGroupHeartbeat -------------------------------------------------------------------------------------

    def heartbeat(self, group_id: str, member_id: str, member_epoch: int, rack_id: str | None,
                  subscribed_topic_names: list[str] | None, client_id: str = "",
                  client_host: str = "") -> ShareHeartbeatResult:
        try:
            self._validate(group_id, member_id, member_epoch, rack_id, subscribed_topic_names)
            if member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
                return self._leave(group_id, member_id)
            return self._heartbeat(group_id, member_id, member_epoch, rack_id, subscribed_topic_names, client_id,
                                   client_host)
        except _Refused as e:
            return ShareHeartbeatResult(e.code, e.message)

    @staticmethod
    def _validate(group_id, member_id, member_epoch, rack_id, names) -> None:
        """Kafka's throwIfShareGroupHeartbeatRequestIsInvalid."""
        def invalid(message: str) -> _Refused:
            return _Refused(ErrorCode.INVALID_REQUEST, message)

        if not member_id:
            # Kafka 4.4 answers this one without a message (its conformance recording shows it).
            raise _Refused(ErrorCode.INVALID_REQUEST, None)
        if not group_id:
            raise invalid("GroupId can't be empty.")
        if rack_id == "":
            raise invalid("RackId can't be empty.")
        if member_epoch == 0:
            if not names:
                raise invalid("SubscribedTopicNames must be set in first request.")
        elif member_epoch < LEAVE_GROUP_MEMBER_EPOCH:
            raise invalid("MemberEpoch is invalid.")

    def _group(self, group_id: str, create: bool, taken: Callable[[str], bool]) -> ShareGroup:
        group = self.groups.get(group_id)
        if group is not None:
            return group
        if taken(group_id):
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
        if not create:
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Share group {group_id} not found.")
        return ShareGroup(group_id)

    def _heartbeat(self, group_id, member_id, member_epoch, rack_id, names, client_id, client_host,
                   ) -> ShareHeartbeatResult:
        group = self._group(group_id, member_epoch == 0, self._other_group_exists)
        max_size = self.config.group_share_max_size
        if len(group.members) >= max_size and member_id not in group.members:
            raise _Refused(ErrorCode.GROUP_MAX_SIZE_REACHED,
                           f"The share group has reached its maximum capacity of {max_size} members.")
        member = group.members.get(member_id)
        if member is None:
            if member_epoch != 0:
                raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID,
                               f"Member {member_id} is not a member of group {group_id}.")
            member = ShareGroupMember(member_id)
        elif member_epoch > member.member_epoch:
            raise _Refused(ErrorCode.FENCED_MEMBER_EPOCH,
                           f"The share group member has a greater member epoch ({member_epoch}) than the one known "
                           f"by the group coordinator ({member.member_epoch}). The member must abandon all its "
                           f"partitions and rejoin.")
        elif member_epoch < member.member_epoch and member_epoch != member.previous_member_epoch \
                and member_epoch != 0:
            raise _Refused(ErrorCode.FENCED_MEMBER_EPOCH,
                           f"The share group member has a smaller member epoch ({member_epoch}) than the one known "
                           f"by the group coordinator ({member.member_epoch}), and it does not match the previous "
                           f"member epoch ({member.previous_member_epoch}). The member must abandon all its "
                           f"partitions and rejoin.")
        is_new = member_id not in group.members
        old_names, old_assigned = member.subscribed_topic_names, member.assigned
        if rack_id is not None:
            member.rack_id = rack_id
        if names is not None:
            member.subscribed_topic_names = tuple(sorted(set(names)))
        member.client_id, member.client_host = client_id, client_host
        if is_new:
            if group_id not in self.groups:
                self.groups[group_id] = group
                log.info("group %s: share group created", group_id)
            group.members[member_id] = member
            log.info("group %s: member %s joins the share group", group_id, member_id)
        subscription_changed = is_new or member.subscribed_topic_names != old_names

        # The group epoch: up when a subscription or the subscribed topics' metadata changed.
        bump = subscription_changed
        if bump or group.metadata_version != self.topics.version:
            if self._refresh_metadata(group):
                bump = True
        if bump:
            group.group_epoch += 1
            log.info("group %s: group epoch %d", group_id, group.group_epoch)
        # The target assignment for the new group epoch, then this member moved to its target.
        if group.group_epoch > group.assignment_epoch:
            self._compute_target(group)
        if member.member_epoch != group.assignment_epoch or subscription_changed:
            target = self._subscribed_part(group, member, group.target.get(member_id, {}))
            if member.member_epoch != group.assignment_epoch:
                member.previous_member_epoch, member.member_epoch = member.member_epoch, group.assignment_epoch
            member.assigned = target
        self._touch(group, member)
        self._persist(group)
        full = member_epoch == 0 or names is not None
        return ShareHeartbeatResult(
            ErrorCode.NONE, None, member_id, member.member_epoch, self.settings(group_id).heartbeat_interval_ms,
            dict(member.assigned) if full or member.assigned != old_assigned else None)

    def _subscribed_part(self, group: ShareGroup, member: ShareGroupMember, target: Assignment) -> Assignment:
        ids = {group.subscription_metadata[n][0] for n in member.subscribed_topic_names
               if n in group.subscription_metadata}
        return {t: ps for t, ps in target.items() if t in ids and ps}

    def _refresh_metadata(self, group: ShareGroup) -> bool:
        """The subscribed topics' ids and partition counts from the topic image; True when they changed."""
        metadata = subscription_metadata(self.topics, group.subscribed_topics)
        group.metadata_version = self.topics.version
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            group.metadata_hash = _metadata_hash(metadata)
            return True
        return False

    def _compute_target(self, group: ShareGroup) -> None:
        assignor = self.config.group_share_assignors[0]
        by_name = group.subscription_metadata
        specs = {m.member_id: MemberSpec(frozenset(by_name[t][0] for t in m.subscribed_topic_names if t in by_name),
                                         group.target.get(m.member_id, {}))
                 for m in group.members.values()}
        partitions = {tid: n for tid, n in by_name.values()}
        group.target = SHARE_ASSIGNORS[assignor](specs, partitions)
        group.assignment_epoch = group.group_epoch
        self._initialize(group)
        log.info("group %s: target assignment at epoch %d by %s", group.group_id, group.assignment_epoch, assignor)

    def _initialize(self, group: ShareGroup) -> None:
        """Records the assigned share-partitions as initialised (Kafka's InitializeShareGroupState, then its
        ShareGroupStatePartitionMetadata): the share-partition state starts each at share.auto.offset.reset."""
        names = {tid: name for name, (tid, _) in group.subscription_metadata.items()}
        initialized = {t: (name, set(ps)) for t, (name, ps) in group.state_metadata.initialized.items()}
        changed = False
        for target in group.target.values():
            for t, ps in target.items():
                have = initialized.setdefault(t, (names.get(t, ""), set()))[1]
                if not ps <= have:
                    have |= ps
                    changed = True
        if changed:
            group.state_metadata = S.StatePartitionMetadata(
                dict(group.state_metadata.initializing),
                {t: (name, frozenset(ps)) for t, (name, ps) in initialized.items()},
                dict(group.state_metadata.deleting))

    # -- leaving and being fenced --------------------------------------------------------------------------------

    def _leave(self, group_id: str, member_id: str) -> ShareHeartbeatResult:
        group = self.groups.get(group_id)
        if group is None:
            if self._other_group_exists(group_id):
                raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Share group {group_id} not found.")
        member = group.members.get(member_id)
        if member is None:
            raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {group_id}.")
        self._fence(group, member, "the member left the share group")
        # As Kafka's shareGroupLeave: the member id and epoch -1, no heartbeat interval.
        return ShareHeartbeatResult(ErrorCode.NONE, None, member_id, LEAVE_GROUP_MEMBER_EPOCH, 0)

    def _fence(self, group: ShareGroup, member: ShareGroupMember, reason: str) -> None:
        """Removes the member, bumps the group epoch and computes the others' target at once (Kafka 4.4's
        assignment epoch follows the group epoch when a member goes, even to an empty group); the others move
        to it on their next heartbeat."""
        log.info("group %s: removing member %s: %s", group.group_id, member.member_id, reason)
        self._cancel_session(member)
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        self._refresh_metadata(group)
        group.group_epoch += 1
        self._compute_target(group)
        self._persist(group)
        self._tell("on_member_leave", group.group_id, member.member_id)
        if not group.members:
            self._tell("on_group_empty", group.group_id)

    def remove_members(self, group_id: str, reason: str) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            for member in list(group.members.values()):
                self._fence(group, member, reason)

    def _tell(self, event: str, *args) -> None:
        for listener in list(self.listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:  # noqa: BLE001 -- a listener's failure must not undo the coordinator's change
                log.exception("share group listener %r failed on %s", listener, event)

    def _persist(self, group: ShareGroup) -> None:
        changes = group.changed_records()
        if changes:
            try:
                self._store.append_records(changes)
                group.written = {k: v for k, v in {**group.written, **dict(changes)}.items() if v is not None}
            except OSError:
                # As consumer groups: losing it costs members a new assignment after a restart, not correctness now.
                log.exception("group %s: could not store the share group", group.group_id)
        if self._on_change is not None:
            self._on_change()

    # -- timers --------------------------------------------------------------------------------------------------

    def _touch(self, group: ShareGroup, member: ShareGroupMember) -> None:
        self._session(group, member, self.settings(group.group_id).session_timeout_ms)

    # -- ShareGroupDescribe, and the admin side ------------------------------------------------------------------

    def describe(self, group_id: str) -> ShareGroupDescription:
        group = self.groups.get(group_id)
        if group is None:
            if self._other_group_exists(group_id):
                return ShareGroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, group_id,
                                             f"Group {group_id} is not a share group.")
            return ShareGroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, group_id, f"Group {group_id} not found.")
        members = [DescribedShareMember(m.member_id, m.rack_id, m.member_epoch, m.client_id, m.client_host,
                                        list(m.subscribed_topic_names), topic_rows(self.topics, m.assigned))
                   for m in group.members.values()]
        return ShareGroupDescription(ErrorCode.NONE, group_id, None, group.state.value, group.group_epoch,
                                     group.assignment_epoch, self.config.group_share_assignors[0], members)

    def delete(self, group_id: str) -> int:
        """DeleteGroups of a share group: NON_EMPTY_GROUP while it has members, else its records go."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.members:
            return ErrorCode.NON_EMPTY_GROUP
        try:
            self._store.append_records(group.tombstones())
        except OSError:
            log.exception("group %s: could not delete the share group", group_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        del self.groups[group_id]
        log.info("group %s: share group deleted", group_id)
        initialized = {t: ps for t, (_, ps) in group.state_metadata.initialized.items()}
        self._tell("on_group_deleted", group_id, initialized)
        if self._on_change is not None:
            self._on_change()
        return ErrorCode.NONE

    def state_of(self, group_id: str) -> ShareGroupState | None:
        group = self.groups.get(group_id)
        return group.state if group is not None else None

    def assignment(self, group_id: str) -> dict[str, Assignment] | None:
        group = self.groups.get(group_id)
        return {mid: dict(m.assigned) for mid, m in group.members.items()} if group is not None else None
