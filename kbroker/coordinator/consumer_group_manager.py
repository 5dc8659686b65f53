"""The consumer group protocol's request handling (KIP-848; Kafka's GroupMetadataManager for consumer groups):
ConsumerGroupHeartbeat and ConsumerGroupDescribe, member sessions and rebalance timeouts. Sans-IO.

Theory of operation
-------------------
A heartbeat (1) finds or creates the member (a static member rejoining takes over its released predecessor's
assignment); (2) applies what changed in its subscription; (3) bumps the group epoch when the subscriptions or the
metadata of subscribed topics changed (topics created, deleted, grown; a regex matching new topics); (4) when the
group epoch passed the assignment epoch, computes a new target assignment for every member with the server assignor
(assignors.py); (5) reconciles this member towards its target (current_assignment_builder.py: partitions are revoked
before they are handed to someone else); (6) answers with the member's epoch and, when it changed or the member sent
its full state, its assignment. Everything happens within the one call: there is no waiting.

A member's session ends group.consumer.session.timeout.ms after its last heartbeat; a member asked to revoke
partitions has its rebalance timeout to do it. Either way it is fenced: removed, its partitions freed, the group epoch
bumped. Leaving is a heartbeat with epoch -1; a static member (group.instance.id) may leave with -2 and keep its
assignment until its session ends, so that its next incarnation (epoch 0, same instance id) takes it back with no
partition moving.

Every change of a group is written to the OffsetStore (one record of the whole group) before the heartbeat is
answered; a group's state survives a restart, and members carry on in their epochs.

Concurrency: the event loop only, as the GroupMetadataManager; groups live in the same dict as classic groups
(one namespace of group ids, as in Kafka).
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol


from ..clock import Clock
from ..errors import ErrorCode
from .assignors import ASSIGNORS, MemberSpec
from ..consumer_protocol import decode_consumer_assignment, decode_subscription_owned, encode_consumer_assignment
from .classic_group import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    ClassicGroupMember,
    GroupState,
    consumer_subscription_topics,
)
from .consumer_group import ConsumerGroup, ConsumerGroupMember
from .current_assignment_builder import Assignment, MemberAssignment, MemberState, reconcile
from .group_config import ConsumerGroupSettings, GroupConfig, consumer_group_settings
from .group_metadata_manager import GroupMetadataManager
from .offsets import OffsetStore, StoreSnapshot
from .results import JoinResult, LeaveResult, MemberLeaveResult, SyncResult

if TYPE_CHECKING:
    import re2

log = logging.getLogger("kbroker.coordinator.consumer_group")

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2


class TopicImage(Protocol):
    """What the coordinator reads of the cluster's topics (topics.TopicManager is one): `version` changes with any
    topic change; `by_name` maps names to objects with `topic_id` and a `partitions` list."""

    version: int
    by_name: Mapping[str, Any]


class _EmptyImage:
    version = 0
    by_name: Mapping[str, Any] = {}


@dataclass(slots=True)
class HeartbeatResult:
    error_code: int
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None  # None: not sent


@dataclass(slots=True)
class DescribedMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    assignment: list[tuple[uuid.UUID, str, list[int]]]
    target_assignment: list[tuple[uuid.UUID, str, list[int]]]
    classic: bool = False  # a classic member (JoinGroup/SyncGroup) in a consumer-protocol group


@dataclass(slots=True)
class ConsumerGroupDescription:
    error_code: int
    group_id: str
    error_message: str | None = None
    state: str = ""
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor_name: str = ""
    members: list[DescribedMember] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def subscription_metadata(topics: TopicImage, names) -> dict[str, tuple[uuid.UUID, int]]:
    """Name -> (topic id, partition count) of the subscribed topics that exist with partitions."""
    image = topics.by_name
    return {name: (image[name].topic_id, len(image[name].partitions)) for name in names
            if name in image and image[name].partitions}


def topic_rows(topics: TopicImage, assignment: Mapping[uuid.UUID, frozenset[int]]
               ) -> list[tuple[uuid.UUID, str, list[int]]]:
    """An assignment as described: (topic id, name, sorted partitions) for the topics that still exist."""
    by_id = {t.topic_id: name for name, t in topics.by_name.items()}
    return [(tid, by_id[tid], sorted(ps)) for tid, ps in assignment.items() if tid in by_id]


def _compile(regex: str) -> re2._Regexp:
    """RE2, as Kafka's RE2/J: no backreferences or lookaround, linear time; errors not logged by the library.
    re2 (about 2.5 MB of RSS) is imported at the first regex subscription, not at start."""
    import re2

    options = re2.Options()
    options.log_errors = False
    return re2.compile(regex, options)


def _is_internal(name: str) -> bool:
    # Kafka's internal topics (__consumer_offsets, __transaction_state, ...) never match a subscription regex.
    return name.startswith("__")


class MemberSessions:
    """Members' session timers, for a manager with `_clock`, `groups` (group id -> group with `members`) and
    `_fence(group, member, reason)`; a member has `timer`, `timer_due_ms` and `deadline_ms`."""

    SESSION_EXPIRED = "session timeout expired"

    def _session(self, group, member, timeout_ms: int) -> None:
        """Pushes the session back; one timer per member, moved only when the deadline comes earlier."""
        member.deadline_ms = self._clock.now_ms() + timeout_ms
        if member.timer is not None and member.timer_due_ms <= member.deadline_ms:
            return
        if member.timer is not None:
            member.timer.cancel()
        self._arm(group, member, timeout_ms)

    def _arm(self, group, member, delay_ms: int) -> None:
        member.timer_due_ms = self._clock.now_ms() + delay_ms
        member.timer = self._clock.call_later(delay_ms, lambda: self._on_session_timer(group, member))

    def _on_session_timer(self, group, member) -> None:
        member.timer = None
        if self.groups.get(group.group_id) is not group or group.members.get(member.member_id) is not member:
            return
        now = self._clock.now_ms()
        if now < member.deadline_ms:
            self._arm(group, member, member.deadline_ms - now)
            return
        self._fence(group, member, self.SESSION_EXPIRED)

    @staticmethod
    def _cancel_session(member) -> None:
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None


class ConsumerGroupManager(MemberSessions):
    def __init__(
        self,
        clock: Clock,
        config: GroupConfig,
        store: OffsetStore,
        groups: dict[str, Any],
        topics: TopicImage | None = None,
        on_change: Callable[[], None] | None = None,
        classic: GroupMetadataManager | None = None,
        settings: Callable[[str], ConsumerGroupSettings] | None = None,
    ) -> None:
        """`groups` is the GroupMetadataManager's dict, shared: a group id names a classic or a consumer group.
        `classic`: that manager, which takes a group back when it converts to the classic protocol. `settings`:
        a group's session timeout and heartbeat interval (its GROUP configs over the broker's group.consumer.*
        settings), read at every heartbeat as Kafka does, so that a change applies from the next one."""
        self._clock = clock
        self.config = config
        self._store = store
        self.groups = groups
        self.topics: TopicImage = topics if topics is not None else _EmptyImage()
        self._on_change = on_change
        self._classic = classic
        self._settings = settings or (lambda _group_id: consumer_group_settings(config, {}))

    # -- life cycle ----------------------------------------------------------------------------------------------

    def load(self, snapshot: StoreSnapshot) -> None:
        """The consumer groups as stored (after the classic ones: a stored consumer group wins); sessions start now."""
        for group_id, value in snapshot.consumer_groups.items():
            group = self.groups[group_id] = ConsumerGroup.from_stored(group_id, value)
            for member in group.members.values():
                self._touch(group, member)

    def close(self) -> None:
        for group in self.groups.values():
            if isinstance(group, ConsumerGroup):
                for member in group.members.values():
                    self._cancel_timers(member)

    # -- ConsumerGroupHeartbeat ----------------------------------------------------------------------------------

    def heartbeat(
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
        """ConsumerGroupHeartbeat. `owned` is the request's TopicPartitions (None: unchanged since the last one)."""
        try:
            self._validate(version, group_id, member_id, member_epoch, instance_id, rack_id, rebalance_timeout_ms,
                           subscribed_topic_names, subscribed_topic_regex, server_assignor, owned)
            if member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                return self._leave(group_id, member_id, member_epoch, instance_id)
            return self._heartbeat(group_id, member_id, member_epoch, instance_id, rack_id, rebalance_timeout_ms,
                                   subscribed_topic_names, subscribed_topic_regex, server_assignor, owned,
                                   client_id, client_host)
        except _Refused as e:
            return HeartbeatResult(e.code, e.message)

    def _validate(self, version, group_id, member_id, member_epoch, instance_id, rack_id, rebalance_timeout_ms,
                  names, regex, assignor, owned) -> None:
        """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid."""
        def invalid(message: str) -> _Refused:
            return _Refused(ErrorCode.INVALID_REQUEST, message)

        if not group_id:
            raise invalid("GroupId can't be empty.")
        if instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if rack_id == "":
            raise invalid("RackId can't be empty.")
        # v1 (KIP-1082): the client makes up its member id, so it is never empty.
        if (version >= 1 or member_epoch > 0 or member_epoch == LEAVE_GROUP_MEMBER_EPOCH) and not member_id:
            raise invalid("MemberId can't be empty.")
        if member_epoch == 0:
            if rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if owned is None or owned:
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if names is None and regex is None:
                raise invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        elif member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if not member_id:
                raise invalid("MemberId can't be empty.")
            if instance_id is None:
                raise invalid("InstanceId can't be null.")
        elif member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            raise invalid("MemberEpoch is invalid.")
        if regex:
            import re2

            try:
                _compile(regex)
            except re2.error as e:
                detail = e.args[0] if e.args else ""
                detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
                raise _Refused(ErrorCode.INVALID_REGULAR_EXPRESSION,
                               f"SubscribedTopicRegex `{regex}` is not a valid regular expression: {detail}.") from None
        if assignor is not None and assignor not in self.config.group_consumer_assignors:
            raise _Refused(ErrorCode.UNSUPPORTED_ASSIGNOR,
                           f"ServerAssignor {assignor} is not supported. Supported assignors: "
                           f"{', '.join(self.config.group_consumer_assignors)}.")

    def _group_for_heartbeat(self, group_id: str, create: bool) -> ConsumerGroup:
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            return group
        if isinstance(group, ClassicGroup):
            if group.members and create and self._may("upgrade"):
                return self._upgrade(group)
            if group.members or group.pending_members or not create:
                raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            # An empty classic group (its offsets, say) becomes a consumer group, keeping its offsets (Kafka
            # converts an empty classic group the same way).
            converted = ConsumerGroup(group_id, self._clock.now_ms())
            converted.offsets, converted.pending_txn = group.offsets, group.pending_txn
            self.groups[group_id] = converted
            return converted
        if not create:
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found.")
        group = self.groups[group_id] = ConsumerGroup(group_id, self._clock.now_ms())
        return group

    @staticmethod
    def _check_epoch(member: ConsumerGroupMember, received: int, owned: Assignment | None) -> None:
        """Kafka's throwIfConsumerGroupMemberEpochIsInvalid. A member one epoch behind that owns only partitions
        it is still assigned lost our last answer: it is accepted."""
        current = member.member_epoch
        if received > current:
            raise _Refused(ErrorCode.FENCED_MEMBER_EPOCH,
                           f"The consumer group member has a greater member epoch ({received}) than the one known "
                           f"by the group coordinator ({current}). The member must abandon all its partitions and "
                           f"rejoin.")
        if received < current:
            assigned = member.assignment.assigned
            subset = owned is not None and all(ps <= assigned.get(t, frozenset()) for t, ps in owned.items())
            if received != member.assignment.previous_member_epoch or not subset:
                raise _Refused(ErrorCode.FENCED_MEMBER_EPOCH,
                               f"The consumer group member has a smaller member epoch ({received}) than the one "
                               f"known by the group coordinator ({current}). The member must abandon all its "
                               f"partitions and rejoin.")

    def _member_for_heartbeat(self, group: ConsumerGroup, member_id: str, member_epoch: int,
                              instance_id: str | None, owned: Assignment | None) -> ConsumerGroupMember:
        if instance_id is None:
            member = group.members.get(member_id)
            if member_epoch == 0:
                if member is not None:
                    # The member rejoins (it was told it is fenced, or lost its state): it starts over.
                    self._fence(group, member, "rejoined with epoch 0", persist=False)
                return ConsumerGroupMember(member_id)
            if member is None:
                raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID,
                               f"Member {member_id} is not a member of group {group.group_id}.")
            self._check_epoch(member, member_epoch, owned)
            return member
        existing_id = group.static_members.get(instance_id)
        existing = group.members.get(existing_id) if existing_id is not None else None
        if member_epoch == 0:
            if existing is None:
                member = group.members.get(member_id)
                if member is not None:
                    self._fence(group, member, "rejoined with epoch 0", persist=False)
                member = ConsumerGroupMember(member_id)
                member.instance_id = instance_id
                return member
            if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                raise _Refused(ErrorCode.UNRELEASED_INSTANCE_ID,
                               f"Static member {existing.member_id} with instance id {instance_id} is not "
                               f"released yet.")
            # The new incarnation takes over its predecessor's subscription and assignment at epoch 0; it
            # reconciles to the target epoch without giving anything up.
            replacement = ConsumerGroupMember(member_id)
            for attr in ("instance_id", "rack_id", "client_id", "client_host", "rebalance_timeout_ms",
                         "server_assignor", "subscribed_topic_names", "subscribed_topic_regex"):
                setattr(replacement, attr, getattr(existing, attr))
            a = existing.assignment
            target = group.target.get(existing.member_id)
            self._cancel_timers(existing)
            group.remove_member(existing)
            replacement.assignment = type(a)(a.state, 0, 0, a.assigned, a.pending_revocation)
            group.add_member(replacement)
            if target is not None:
                group.target[member_id] = target
            log.info("group %s: static member %s (instance %s) replaces %s", group.group_id, member_id,
                     instance_id, existing.member_id)
            return replacement
        if existing is None:
            raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown.")
        if existing.member_id != member_id:
            raise _Refused(ErrorCode.FENCED_INSTANCE_ID,
                           f"Static member {member_id} with instance id {instance_id} was fenced by member "
                           f"{existing.member_id}.")
        self._check_epoch(existing, member_epoch, owned)
        return existing

    def _heartbeat(self, group_id, member_id, member_epoch, instance_id, rack_id, rebalance_timeout_ms, names,
                   regex, assignor, owned, client_id, client_host) -> HeartbeatResult:
        created = group_id not in self.groups
        if not member_id:
            member_id = str(uuid.uuid4())  # v0: the coordinator names a joining member (v1 clients name themselves)
        group = self._group_for_heartbeat(group_id, create=member_epoch == 0)
        try:
            max_size = self.config.group_consumer_max_size
            if member_id not in group.members and len(group.members) >= max_size and not (
                    instance_id is not None and instance_id in group.static_members):
                raise _Refused(ErrorCode.GROUP_MAX_SIZE_REACHED,
                               f"The consumer group has reached its maximum capacity of {max_size} members.")
            member = self._member_for_heartbeat(group, member_id, member_epoch, instance_id, owned)
        except _Refused:
            if created:
                del self.groups[group_id]
            raise
        before = member.to_stored() if member.member_id in group.members else None
        is_new = member.member_id not in group.members
        old_subscription = member.subscription()

        # 1. The member and its subscription.
        if instance_id is not None:
            member.instance_id = instance_id
        if rack_id is not None:
            member.rack_id = rack_id
        if rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        if assignor is not None:
            member.server_assignor = assignor
        if names is not None:
            member.subscribed_topic_names = tuple(sorted(set(names)))
        if regex is not None:
            member.subscribed_topic_regex = regex or None  # an empty regex clears it
        member.client_id, member.client_host = client_id, client_host
        if is_new:
            group.add_member(member)
            log.info("group %s: member %s joins", group_id, member.member_id)
        bump = is_new or member.subscription() != old_subscription
        old_assigned = member.assignment.assigned
        self._advance(group, member, bump, owned, before)
        full = member_epoch == 0 or (rebalance_timeout_ms != -1 and (names is not None or regex is not None)
                                      and owned is not None)
        assignment = dict(member.assignment.assigned) if full or member.assignment.assigned != old_assigned else None
        return HeartbeatResult(ErrorCode.NONE, None, member.member_id, member.member_epoch,
                               self._settings(group_id).heartbeat_interval_ms, assignment)

    def _advance(self, group: ConsumerGroup, member: ConsumerGroupMember, bump: bool, owned: Assignment | None,
                 before: dict | None) -> None:
        """Steps 2-4 of a heartbeat (or of a classic member's JoinGroup), then the session and the record."""
        # 2. The group epoch: up when subscriptions or the subscribed topics' metadata changed.
        if bump or group.metadata_version != self.topics.version:
            if self._refresh_metadata(group):
                bump = True
        if bump:
            group.group_epoch += 1
            log.info("group %s: group epoch %d", group.group_id, group.group_epoch)
        # 3. The target assignment, for the new group epoch.
        if group.group_epoch > group.assignment_epoch:
            self._compute_target(group)
        # 4. This member towards its target.
        self._reconcile(group, member, owned)
        self._touch(group, member)
        if bump or member.to_stored() != before:
            self._persist(group)

    def _refresh_metadata(self, group: ConsumerGroup) -> bool:
        """Resolves the members' regexes and the subscribed topics' ids and partition counts against the topic
        image; True when what the group subscribes to changed."""
        image = self.topics.by_name
        regexes = {m.subscribed_topic_regex for m in group.members.values() if m.subscribed_topic_regex}
        if group.metadata_version != self.topics.version or set(group.resolved_regexes) != regexes:
            resolved = {}
            for regex in regexes:
                pattern = _compile(regex)
                resolved[regex] = frozenset(n for n in image if not _is_internal(n) and pattern.fullmatch(n))
            group.resolved_regexes = resolved
        metadata = subscription_metadata(self.topics, group.subscribed_topics)
        group.metadata_version = self.topics.version
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            return True
        return False

    def _compute_target(self, group: ConsumerGroup) -> None:
        default = self.config.group_consumer_assignors[0]
        assignor = group.preferred_assignor(default)
        if assignor not in ASSIGNORS:
            assignor = default
        by_name = group.subscription_metadata
        specs = {}
        for m in group.members.values():
            topics = set(m.subscribed_topic_names)
            if m.subscribed_topic_regex:
                topics |= group.resolved_regexes.get(m.subscribed_topic_regex, frozenset())
            specs[m.member_id] = MemberSpec(frozenset(by_name[t][0] for t in topics if t in by_name),
                                            group.target.get(m.member_id, {}), m.instance_id)
        partitions = {tid: n for tid, n in by_name.values()}
        group.target = ASSIGNORS[assignor](specs, partitions)
        group.assignment_epoch = group.group_epoch
        log.info("group %s: target assignment at epoch %d by %s", group.group_id, group.assignment_epoch, assignor)

    def _reconcile(self, group: ConsumerGroup, member: ConsumerGroupMember, owned: Assignment | None) -> None:
        a = member.assignment
        if a.state is MemberState.STABLE and a.member_epoch == group.assignment_epoch:
            return
        updated = reconcile(a, group.assignment_epoch, group.target.get(member.member_id, {}),
                            group.partition_epoch, owned)
        if updated == a:
            return
        group.set_assignment(member, updated)
        if updated.state is MemberState.UNREVOKED_PARTITIONS:
            if member.rebalance_timer is None or updated.member_epoch != a.member_epoch or \
                    a.state is not MemberState.UNREVOKED_PARTITIONS:
                self._cancel_rebalance_timer(member)
                epoch = updated.member_epoch
                member.rebalance_timer = self._clock.call_later(
                    max(member.rebalance_timeout_ms, 0), lambda: self._on_rebalance_timeout(group, member, epoch))
        else:
            self._cancel_rebalance_timer(member)

    # -- leaving and being fenced --------------------------------------------------------------------------------

    def _leave(self, group_id: str, member_id: str, member_epoch: int, instance_id: str | None) -> HeartbeatResult:
        group = self.groups.get(group_id)
        if not isinstance(group, ConsumerGroup):
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found.")
        if instance_id is None:
            member = group.members.get(member_id)
            if member is None:
                raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID,
                               f"Member {member_id} is not a member of group {group_id}.")
        else:
            current = group.static_members.get(instance_id)
            if current is None:
                raise _Refused(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown.")
            if current != member_id:
                raise _Refused(ErrorCode.FENCED_INSTANCE_ID,
                               f"Static member {member_id} with instance id {instance_id} was fenced by member "
                               f"{current}.")
            member = group.members[current]
            if member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                # Leaves for now: keeps its assignment (nobody else gets it) until its session ends.
                a = member.assignment
                group.set_assignment(member, type(a)(a.state, LEAVE_GROUP_STATIC_MEMBER_EPOCH, a.member_epoch,
                                                     a.assigned, {}))
                self._cancel_rebalance_timer(member)
                self._persist(group)
                log.info("group %s: static member %s (instance %s) leaves temporarily", group_id, member_id,
                         instance_id)
                return HeartbeatResult(ErrorCode.NONE, None, member_id, member_epoch,
                                       self._settings(group_id).heartbeat_interval_ms)
        self._fence(group, member, "the member left")
        return HeartbeatResult(ErrorCode.NONE, None, member_id, member_epoch,
                               self._settings(group_id).heartbeat_interval_ms)

    def _fence(self, group: ConsumerGroup, member: ConsumerGroupMember, reason: str, *, persist: bool = True) -> None:
        """Removes the member, frees its partitions and bumps the group epoch (Kafka's fenceMember)."""
        log.info("group %s: removing member %s: %s", group.group_id, member.member_id, reason)
        self._cancel_timers(member)
        group.remove_member(member)
        self._refresh_metadata(group)
        group.group_epoch += 1
        if not group.members:
            group.state_timestamp_ms = self._clock.now_ms()
        elif member.classic is None and all(m.classic is not None for m in group.members.values()) \
                and self._may("downgrade") and self._classic is not None:
            self._downgrade(group)
            return
        if persist:
            self._persist(group)
        if self._on_change is not None:
            self._on_change()

    def _persist(self, group: ConsumerGroup) -> None:
        try:
            self._store.store_consumer_group(group.group_id, group.to_stored())
        except OSError:
            # As classic group metadata: losing it costs members a rebalance after a restart, not correctness now.
            log.exception("group %s: could not store the consumer group", group.group_id)
        if self._on_change is not None:
            self._on_change()

    # -- classic members in a consumer group (Kafka's online upgrade and downgrade) ------------------------------
    #
    # A classic group whose members use the consumer protocol type becomes a consumer group when a member joins with
    # ConsumerGroupHeartbeat: its members keep their ids, generations (as member epochs) and assignments, and go on
    # with JoinGroup, SyncGroup and Heartbeat. The group's assignor computes their targets too; a classic member
    # is told REBALANCE_IN_PROGRESS by Heartbeat until it has reconciled, and reconciles when it rejoins (an eager
    # member has given up all it owned by then, a cooperative one says what it kept). When the last
    # consumer-protocol member leaves, the group becomes a classic group again and rebalances.

    def _may(self, direction: str) -> bool:
        return self.config.group_consumer_migration_policy in (direction, "bidirectional")

    def _names_to_ids(self, partitions: Mapping[str, Any]) -> Assignment:
        image = self.topics.by_name
        return {image[t].topic_id: frozenset(ps) for t, ps in partitions.items() if t in image and ps}

    def _ids_to_names(self, assignment: Mapping[uuid.UUID, frozenset[int]]) -> dict[str, list[int]]:
        by_id = {t.topic_id: name for name, t in self.topics.by_name.items()}
        return {by_id[t]: sorted(ps) for t, ps in assignment.items() if t in by_id}

    def _upgrade(self, classic: ClassicGroup) -> ConsumerGroup:
        if classic.protocol_type != CONSUMER_PROTOCOL_TYPE or classic.state is not GroupState.STABLE:
            raise _Refused(ErrorCode.GROUP_ID_NOT_FOUND,
                           f"Cannot upgrade classic group {classic.group_id} to a consumer group: it is not a "
                           f"stable group of the consumer protocol type.")
        if len(classic.members) >= self.config.group_consumer_max_size:
            raise _Refused(ErrorCode.GROUP_MAX_SIZE_REACHED,
                           f"The consumer group has reached its maximum capacity of "
                           f"{self.config.group_consumer_max_size} members.")
        self._classic.release(classic)
        group = ConsumerGroup(classic.group_id, self._clock.now_ms())
        group.offsets, group.pending_txn = classic.offsets, classic.pending_txn
        group.group_epoch = group.assignment_epoch = classic.generation_id
        for cm in classic.members.values():
            m = ConsumerGroupMember(cm.member_id)
            m.instance_id, m.client_id, m.client_host = cm.group_instance_id, cm.client_id, cm.client_host
            m.rebalance_timeout_ms = cm.rebalance_timeout_ms
            m.classic = (cm.session_timeout_ms, list(cm.protocols))
            try:
                m.subscribed_topic_names = tuple(sorted(set(consumer_subscription_topics(
                    cm.metadata(classic.protocol_name)))))
            except (ValueError, IndexError, UnicodeDecodeError, struct.error):
                m.subscribed_topic_names = ()
            rows = decode_consumer_assignment(cm.assignment) or []
            assigned = self._names_to_ids({r["topic"]: r["partitions"] for r in rows})
            m.assignment = MemberAssignment(MemberState.STABLE, classic.generation_id, classic.generation_id,
                                            assigned, {})
            group.add_member(m)
            group.target[m.member_id] = dict(assigned)
            self._touch(group, m)
        self._refresh_metadata(group)
        self.groups[group.group_id] = group
        log.info("group %s: upgraded from the classic protocol at generation %d with %d members",
                 group.group_id, classic.generation_id, len(group.members))
        return group

    def _downgrade(self, group: ConsumerGroup) -> None:
        names = [name for name, _ in next(iter(group.members.values())).classic[1]]
        common = [n for n in names if all(any(p == n for p, _ in m.classic[1]) for m in group.members.values())]
        classic = ClassicGroup(group.group_id, self._clock.now_ms())
        classic.offsets, classic.pending_txn = group.offsets, group.pending_txn
        classic.generation_id = group.group_epoch
        classic.protocol_type = CONSUMER_PROTOCOL_TYPE
        classic.protocol_name = common[0] if common else names[0]
        for m in group.members.values():
            self._cancel_timers(m)
            cm = ClassicGroupMember(m.member_id, m.instance_id, m.client_id, m.client_host,
                                    max(m.rebalance_timeout_ms, 0), m.classic[0], CONSUMER_PROTOCOL_TYPE,
                                    list(m.classic[1]))
            cm.assignment = encode_consumer_assignment(self._ids_to_names(m.assignment.assigned))
            classic.members[cm.member_id] = cm
            if cm.group_instance_id is not None:
                classic.static_members[cm.group_instance_id] = cm.member_id
        classic.leader_id = next(iter(classic.members))
        classic.state = GroupState.STABLE
        classic.subscribed_topics = classic.compute_subscribed_topics()
        try:
            self._store.drop_consumer_group(group.group_id)
        except OSError:
            log.exception("group %s: could not drop the consumer group's record", group.group_id)
        log.info("group %s: downgraded to the classic protocol at generation %d", group.group_id,
                 classic.generation_id)
        self._classic.adopt(classic, "the last consumer-protocol member left: back to the classic protocol")
        if self._on_change is not None:
            self._on_change()

    def _classic_member(self, group: ConsumerGroup, member_id: str, instance_id: str | None
                        ) -> tuple[int, ConsumerGroupMember | None]:
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID, None
            if current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID, None
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, None
        return ErrorCode.NONE, member

    def classic_join(self, group: ConsumerGroup, member_id: str, instance_id: str | None, client_id: str,
                     client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
                     protocols: list[tuple[str, bytes]], require_known_member_id: bool) -> JoinResult:
        """JoinGroup of a classic member to a consumer-protocol group."""
        if not self._may("upgrade"):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        if protocol_type != CONSUMER_PROTOCOL_TYPE or not protocols:
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        protocols = [(name, bytes(meta)) for name, meta in protocols]
        if not member_id:
            new_id = f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"
            if instance_id is None and require_known_member_id:
                group.pending_classic.add(new_id)
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id)
            member_id = new_id
        elif member_id in group.pending_classic:
            group.pending_classic.discard(member_id)
        else:
            err, _ = self._classic_member(group, member_id, instance_id)
            if err != ErrorCode.NONE:
                return JoinResult(err, member_id=member_id)
        member = group.members.get(member_id)
        if member is None:
            if len(group.members) >= self.config.group_consumer_max_size:
                return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id=member_id)
            member = ConsumerGroupMember(member_id)
            member.instance_id = instance_id
        before = member.to_stored() if member_id in group.members else None
        old_subscription = member.subscription()
        try:
            topics = consumer_subscription_topics(protocols[0][1])
        except (ValueError, IndexError, UnicodeDecodeError, struct.error):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        member.subscribed_topic_names = tuple(sorted(set(topics)))
        member.classic = (session_timeout_ms, protocols)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        is_new = member_id not in group.members
        if is_new:
            group.add_member(member)
            log.info("group %s: classic member %s joins the consumer group", group.group_id, member_id)
        owned = self._names_to_ids(decode_subscription_owned(protocols[0][1]))
        self._advance(group, member, is_new or member.subscription() != old_subscription, owned, before)
        return JoinResult(ErrorCode.NONE, member.member_epoch, CONSUMER_PROTOCOL_TYPE, protocols[0][0], "", False,
                          member_id, [])

    def classic_sync(self, group: ConsumerGroup, generation_id: int, member_id: str, instance_id: str | None,
                     protocol_name: str | None) -> SyncResult:
        err, member = self._classic_member(group, member_id, instance_id)
        if member is not None and generation_id != member.member_epoch:
            err = ErrorCode.ILLEGAL_GENERATION
        if err != ErrorCode.NONE:
            return SyncResult(err)
        self._touch(group, member)
        return SyncResult(ErrorCode.NONE, CONSUMER_PROTOCOL_TYPE, protocol_name or member.classic[1][0][0],
                          encode_consumer_assignment(self._ids_to_names(member.assignment.assigned)))

    def classic_heartbeat(self, group: ConsumerGroup, generation_id: int, member_id: str,
                          instance_id: str | None) -> int:
        """REBALANCE_IN_PROGRESS until the member has reconciled to the group's target (it then rejoins)."""
        err, member = self._classic_member(group, member_id, instance_id)
        if member is not None and generation_id != member.member_epoch:
            err = ErrorCode.ILLEGAL_GENERATION
        if err != ErrorCode.NONE:
            return err
        self._touch(group, member)
        if group.metadata_version != self.topics.version and self._refresh_metadata(group):
            group.group_epoch += 1
            self._persist(group)
        if group.group_epoch > group.assignment_epoch:
            self._compute_target(group)
            self._persist(group)
        reconciled = member.assignment.state is MemberState.STABLE and \
            member.member_epoch == group.assignment_epoch and \
            member.assignment.assigned == group.target.get(member_id, {})
        return ErrorCode.NONE if reconciled else ErrorCode.REBALANCE_IN_PROGRESS

    def classic_leave(self, group: ConsumerGroup, members) -> LeaveResult:
        results = []
        for member_id, instance_id, reason in members:
            if not member_id and instance_id is not None:
                member_id = group.static_members.get(instance_id, "")
            err, member = self._classic_member(group, member_id, instance_id)
            if member is None and member_id in group.members:
                member, err = group.members[member_id], ErrorCode.NONE  # an admin removing a member
            if member is not None:
                self._fence(group, member, reason or "the member left")
            results.append(MemberLeaveResult(member_id, instance_id, err))
        return LeaveResult(ErrorCode.NONE, results)

    # -- timers --------------------------------------------------------------------------------------------------

    def _touch(self, group: ConsumerGroup, member: ConsumerGroupMember) -> None:
        self._session(group, member, self._settings(group.group_id).session_timeout_ms if member.classic is None
                      else member.classic[0])

    def _on_rebalance_timeout(self, group: ConsumerGroup, member: ConsumerGroupMember, epoch: int) -> None:
        member.rebalance_timer = None
        if self.groups.get(group.group_id) is not group or group.members.get(member.member_id) is not member:
            return
        a = member.assignment
        if a.state is MemberState.UNREVOKED_PARTITIONS and a.member_epoch == epoch:
            self._fence(group, member, "did not revoke its partitions within the rebalance timeout")

    @staticmethod
    def _cancel_rebalance_timer(member: ConsumerGroupMember) -> None:
        if member.rebalance_timer is not None:
            member.rebalance_timer.cancel()
            member.rebalance_timer = None

    def _cancel_timers(self, member: ConsumerGroupMember) -> None:
        self._cancel_session(member)
        self._cancel_rebalance_timer(member)

    # -- ConsumerGroupDescribe, and the admin side ---------------------------------------------------------------

    def _topic_rows(self, assignment: Mapping[uuid.UUID, frozenset[int]]) -> list[tuple[uuid.UUID, str, list[int]]]:
        return topic_rows(self.topics, assignment)

    def describe(self, group_id: str) -> ConsumerGroupDescription:
        group = self.groups.get(group_id)
        if group is None:
            return ConsumerGroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, group_id,
                                            f"Group {group_id} not found.")
        if not isinstance(group, ConsumerGroup):
            return ConsumerGroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, group_id,
                                            f"Group {group_id} is not a consumer group.")
        members = [
            DescribedMember(m.member_id, m.instance_id, m.rack_id, m.member_epoch, m.client_id, m.client_host,
                            list(m.subscribed_topic_names), m.subscribed_topic_regex,
                            self._topic_rows(m.assignment.assigned),
                            self._topic_rows(group.target.get(m.member_id, {})), m.classic is not None)
            for m in group.members.values()
        ]
        return ConsumerGroupDescription(
            ErrorCode.NONE, group_id, None, group.state.value, group.group_epoch, group.assignment_epoch,
            group.preferred_assignor(self.config.group_consumer_assignors[0]), members)

    def remove_members(self, group_id: str, reason: str) -> None:
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            for member in list(group.members.values()):
                self._fence(group, member, reason)
