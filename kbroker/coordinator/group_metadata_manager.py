"""The classic group protocol's request handling (Kafka's GroupMetadataManager, for classic groups): JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups and DeleteGroups, the rebalances they drive, and member
sessions. Sans-IO.

Theory of operation
-------------------
A rebalance (PreparingRebalance) waits for every known member to send JoinGroup again, and for the members that were
asked to rejoin with their new id (MEMBER_ID_REQUIRED, KIP-394) to do so. It completes the moment the last one arrives,
or when the longest rebalance timeout of the members passes; then dynamic members that did not rejoin are dropped
(static ones stay until their session expires, KIP-345), the generation goes up, a protocol every member supports is
elected by the members' preferences, and every waiting JoinGroup is answered, the leader's with all members' metadata.
The members then have the rebalance timeout to send SyncGroup: the leader's carries the assignment, which answers every
waiting follower and makes the group Stable; members that never sync are dropped and the group rebalances again.
A group going from Empty to PreparingRebalance first waits group.initial.rebalance.delay.ms, extended while new
members keep arriving up to the rebalance timeout (kbroker's default delay is 0: a brand-new group completes as soon as
its first member joins).

Every member has a session timer, pushed back by its heartbeats, joins, syncs and commits. When it fires the member is
dropped and the group rebalances, except while the member waits for a JoinGroup or SyncGroup answer (a rebalance is
in progress and has its own timeout); a new member waiting for its first join answer is dropped after 5 minutes
(Kafka's NewMemberJoinTimeoutMs). A static member (group.instance.id) that joins again with an empty member id takes a
new id and replaces its old self (whose requests are now FENCED_INSTANCE_ID); in a Stable group whose elected protocol
would not change, it gets its old assignment back with no rebalance.

Group metadata is written to the `OffsetStore` each time a generation is Stable or Empty (Kafka writes its
GroupMetadataValue record then), so that after a restart members carry on in their generation.

Concurrency: called from the event loop only and changes state only there; nothing awaits while it reads and writes
a group, so there are no locks. Requests that may wait (JoinGroup, SyncGroup) return a `Reply` at once, with the
state already changed; the manager completes it later from another request or a timer. Timers come from the injected
`Clock`, so tests run on a `ManualClock`. Whether the coordinator is loaded (COORDINATOR_LOAD_IN_PROGRESS) and the
group id valid is checked before a request gets here, by the GroupCoordinator (group.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping

from ..clock import Clock
from ..errors import ErrorCode
from .classic_group import ClassicGroup, ClassicGroupMember, GroupState
from .consumer_group import ConsumerGroup
from .group_config import GroupConfig
from .offsets import OffsetStore, StoreSnapshot
from .results import (
    DescribeResult,
    JoinResult,
    LeaveResult,
    LeavingMember,
    ListedGroup,
    ListGroupsResult,
    MemberDescription,
    MemberLeaveResult,
    Reply,
    SyncResult,
)

log = logging.getLogger("kbroker.coordinator.group")

# Kafka's GroupCoordinator.NewMemberJoinTimeoutMs (KIP-394): how long a new member may wait for its first join answer.
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000

_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE
_DEAD = GroupState.DEAD


class GroupMetadataManager:
    def __init__(
        self, clock: Clock, config: GroupConfig, store: OffsetStore, on_change: Callable[[], None] | None = None
    ) -> None:
        """``on_change`` is called after a group changes state or loses a member, including from timers
        (the control plane's wait listens to it)."""
        self._clock = clock
        self.config = config
        self._store = store
        self._on_change = on_change
        # Classic groups and the consumer-protocol groups (KIP-848) of the ConsumerGroupManager: one namespace, as in
        # Kafka. The classic requests treat a consumer group as they would an unknown group, except where noted.
        self.groups: dict[str, ClassicGroup | ConsumerGroup] = {}

    # -- life cycle ----------------------------------------------------------------------------------------------

    def load(self, snapshot: StoreSnapshot) -> None:
        """The groups as stored; their members' sessions start now."""
        for stored in snapshot.groups.values():
            group = self.groups[stored.group_id] = ClassicGroup.from_stored(stored)
            for member in group.members.values():
                self.touch(group, member)

    def close(self) -> None:
        """Stops timers and answers every waiting request NOT_COORDINATOR (as Kafka does when it unloads groups)."""
        for group in self.groups.values():
            if not isinstance(group, ClassicGroup):
                continue
            for member in group.members.values():
                group.answer_waiting(member, JoinResult(ErrorCode.NOT_COORDINATOR, member_id=member.member_id),
                                     SyncResult(ErrorCode.NOT_COORDINATOR))
            self._cancel_group_timers(group)
        self.groups.clear()

    def get_or_create_group(self, group_id: str) -> ClassicGroup | ConsumerGroup:
        """The group, created Empty (classic) if unknown (a standalone commit or a transaction's offsets create
        one)."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = ClassicGroup(group_id, self._clock.now_ms())
        return group

    # -- converting between the protocols (group.consumer.migration.policy) --------------------------------------

    def release(self, group: ClassicGroup) -> None:
        """Stops a classic group's timers: it is being converted into a consumer group (an online upgrade)."""
        self._cancel_group_timers(group)

    def adopt(self, group: ClassicGroup, reason: str) -> None:
        """Takes over a classic group converted from a consumer group (an online downgrade): its members' sessions
        start now and it rebalances, so that they rejoin and their leader assigns again (as Kafka does)."""
        self.groups[group.group_id] = group
        for member in group.members.values():
            self.touch(group, member)
        self._persist_group(group)
        self._prepare_rebalance(group, reason)

    # -- JoinGroup -----------------------------------------------------------------------------------------------

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
        if not (
            self.config.group_min_session_timeout_ms <= session_timeout_ms <= self.config.group_max_session_timeout_ms
        ):
            return Reply.completed(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id))
        protocols = [(name, bytes(metadata)) for name, metadata in protocols]
        reply: Reply[JoinResult] = Reply()
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            if group.members:
                # Kafka's group.consumer.migration.policy (classic members joining a consumer group) is not served.
                return Reply.completed(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            # An empty consumer group becomes a classic one, keeping its offsets (as Kafka converts it).
            classic = ClassicGroup(group_id, self._clock.now_ms())
            classic.offsets, classic.pending_txn = group.offsets, group.pending_txn
            self.groups[group_id] = group = classic
        if group is None:
            if member_id:
                return Reply.completed(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
            group = self.get_or_create_group(group_id)

        if not self._accept_joining_member(group, member_id, group_instance_id):
            member = group.members.get(member_id)
            if member is not None:
                self._remove_member(group, member, "group is at group.max.size")
            return Reply.completed(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))

        args = (group, member_id, group_instance_id, client_id, client_host, session_timeout_ms,
                rebalance_timeout_ms, protocol_type, protocols, reply, reason)
        if not member_id:
            self._join_unknown_member(*args, require_known_member_id, supports_skip_assignment)
        else:
            self._join_known_member(*args)
        if group.state is _PREPARING:
            self._try_complete_join(group)
        return reply

    def _accept_joining_member(self, group: ClassicGroup, member_id: str, group_instance_id: str | None) -> bool:
        """Kafka's acceptJoiningMember: new members only up to group.max.size. A known static member rejoining
        with an empty member id replaces itself and adds nobody, so it is accepted (Kafka turns it away)."""
        max_size = self.config.group_max_size
        if group.state in (_EMPTY, _DEAD):
            return True
        if not member_id and group_instance_id is not None and group_instance_id in group.static_members:
            return True
        if group.state is _PREPARING:
            # Counting the members that rejoined lets the last ones to rejoin be the ones turned away when the
            # group is over the limit (the limit may have been lowered).
            member = group.members.get(member_id)
            if member is not None and member.join_reply is not None:
                return True
            return sum(1 for m in group.members.values() if m.join_reply is not None) < max_size
        return member_id in group.members or len(group.members) < max_size

    def _join_unknown_member(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None, require_known_member_id: bool, supports_skip_assignment: bool,
    ) -> None:
        old_member_id = group.static_members.get(group_instance_id) if group_instance_id is not None else None
        if not group.supports_protocols(protocol_type, protocols, replacing=old_member_id):
            reply.set_result(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        new_member_id = f"{group_instance_id if group_instance_id is not None else client_id}-{uuid.uuid4()}"
        if group_instance_id is not None:
            if old_member_id is None:
                self._add_member_and_rebalance(
                    group, new_member_id, group_instance_id, client_id, client_host, session_timeout_ms,
                    rebalance_timeout_ms, protocol_type, protocols, reply, reason)
            else:
                self._replace_static_member_and_rebalance(
                    group, old_member_id, new_member_id, protocol_type, protocols, session_timeout_ms,
                    rebalance_timeout_ms, reply, supports_skip_assignment)
        elif require_known_member_id:
            # KIP-394: hand out the id first, so a client that retries after a timeout does not leave a member behind.
            group.pending_members[new_member_id] = self._clock.call_later(
                session_timeout_ms, lambda: self._on_pending_member_expired(group, new_member_id))
            reply.set_result(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_member_id))
        else:
            self._add_member_and_rebalance(
                group, new_member_id, None, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                protocol_type, protocols, reply, reason)

    def _join_known_member(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        if group.state is _DEAD:
            reply.set_result(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            return
        if member_id in group.pending_members:
            if group_instance_id is not None:
                reply.set_result(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))  # pending members are dynamic by construction
            elif not group.supports_protocols(protocol_type, protocols):
                reply.set_result(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            else:
                group.pending_members.pop(member_id).cancel()
                self._add_member_and_rebalance(
                    group, member_id, None, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                    protocol_type, protocols, reply, reason)
            return
        err = group.validate_member(member_id, group_instance_id)
        if err != ErrorCode.NONE:
            reply.set_result(JoinResult(err, member_id=member_id if err == ErrorCode.FENCED_INSTANCE_ID else ""))
            return
        if not group.supports_protocols(protocol_type, protocols, replacing=member_id):
            reply.set_result(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        member = group.members[member_id]
        state = group.state
        if state is _PREPARING:
            self._update_member_and_rebalance(
                group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply, reason)
        elif state is _COMPLETING:
            if member.matches(protocols):
                # The member lost our join answer (a timeout, say): answer it again for this generation.
                self.touch(group, member)
                reply.set_result(self._join_result(group, member, with_members=member_id == group.leader_id))
            else:
                self._update_member_and_rebalance(
                    group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply, reason)
        elif state is _STABLE:
            # The leader rejoining forces a rebalance: that is how it reacts to changes that its metadata does not
            # show (new partitions, say). A follower with unchanged metadata just gets the current generation.
            if member_id == group.leader_id or not member.matches(protocols):
                self._update_member_and_rebalance(
                    group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply, reason)
            else:
                self.touch(group, member)
                reply.set_result(self._join_result(group, member, with_members=False))
        else:
            reply.set_result(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))

    def _join_result(self, group: ClassicGroup, member: ClassicGroupMember, *, with_members: bool) -> JoinResult:
        return JoinResult(
            ErrorCode.NONE, group.generation_id, group.protocol_type, group.protocol_name, group.leader_id or "", False,
            member.member_id, group.member_metadata() if with_members else [],
        )

    def _add_member_and_rebalance(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        member = ClassicGroupMember(member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms,
                         session_timeout_ms, protocol_type, protocols)
        member.is_new = True
        member.join_reply = reply
        if group.state is _PREPARING and group.generation_id == 0:
            group.new_member_added = True  # extends the initial rebalance delay
        if not group.members:
            group.protocol_type = protocol_type
        if group.leader_id is None:
            group.leader_id = member_id
        group.members[member_id] = member
        if group_instance_id is not None:
            group.static_members[group_instance_id] = member_id
        self.touch(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance(group, f"adding member {member_id} ({reason or 'no reason given'})")

    def _update_member(
        self, group: ClassicGroup, member: ClassicGroupMember, protocol_type: str, protocols: list[tuple[str, bytes]],
        session_timeout_ms: int, rebalance_timeout_ms: int, reply: Reply[JoinResult] | None,
    ) -> None:
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        if len(group.members) == 1:
            group.protocol_type = protocol_type  # a lone member may change it (see ClassicGroup.supports_protocols)
        member.protocol_type = protocol_type
        if reply is not None:
            if member.join_reply is not None:
                # A second JoinGroup from the same member replaces the first, whose client has given up on it.
                member.join_reply.set_result(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id))
            member.join_reply = reply

    def _update_member_and_rebalance(
        self, group: ClassicGroup, member: ClassicGroupMember, protocol_type: str, protocols: list[tuple[str, bytes]],
        session_timeout_ms: int, rebalance_timeout_ms: int, reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        self._update_member(group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply)
        self._maybe_prepare_rebalance(group, f"member {member.member_id} rejoined ({reason or 'no reason given'})")

    def _replace_static_member_and_rebalance(
        self, group: ClassicGroup, old_member_id: str, new_member_id: str, protocol_type: str,
        protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
        reply: Reply[JoinResult], supports_skip_assignment: bool,
    ) -> None:
        old_leader = group.leader_id
        member = group.members[old_member_id]
        # The old incarnation is fenced: its waiting requests are answered so, and its id is gone.
        group.answer_waiting(member, JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_member_id),
                             SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        member.member_id = new_member_id
        group.members = {(new_member_id if k == old_member_id else k): v for k, v in group.members.items()}
        group.static_members[member.group_instance_id] = new_member_id  # type: ignore[index]
        if old_member_id in group.pending_sync:
            group.pending_sync.discard(old_member_id)
            group.pending_sync.add(new_member_id)
        if group.leader_id == old_member_id:
            group.leader_id = new_member_id
        self._update_member(group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, None)
        self._cancel_member_timer(member)
        self.touch(group, member)
        log.info("group %s: static member %s replaced %s with %s",
                 group.group_id, member.group_instance_id, old_member_id, new_member_id)

        if group.state is _STABLE:
            if group.select_protocol() == group.protocol_name:
                # Nothing the assignment depends on changed: no rebalance, the member keeps its assignment.
                self._persist_group(group)
                is_leader = group.leader_id == new_member_id
                skip = is_leader and supports_skip_assignment
                reply.set_result(JoinResult(
                    ErrorCode.NONE, group.generation_id, group.protocol_type, group.protocol_name,
                    # Before JoinGroup v9 a leader named in the answer would compute an assignment that a Stable
                    # group never hands out; naming the old leader id keeps it from doing so.
                    (group.leader_id if supports_skip_assignment else old_leader) or "",
                    skip, new_member_id, group.member_metadata() if skip else [],
                ))
            else:
                member.join_reply = reply
                self._maybe_prepare_rebalance(group, f"static member {new_member_id} changes the group's protocol")
        elif group.state is _COMPLETING:
            # The leader may be assigning to the old member id already: start over.
            member.join_reply = reply
            self._prepare_rebalance(group, f"static member {new_member_id} replaced {old_member_id}")
        else:  # PreparingRebalance: the new id joins the rebalance under way
            member.join_reply = reply

    # -- rebalancing ---------------------------------------------------------------------------------------------

    def _transition(self, group: ClassicGroup, state: GroupState) -> None:
        if not group.can_transition_to(state):
            raise AssertionError(f"group {group.group_id}: {group.state.value} -> {state.value}")
        log.debug("group %s: %s -> %s", group.group_id, group.state.value, state.value)
        group.state = state
        group.state_timestamp_ms = self._clock.now_ms()
        if self._on_change is not None:
            self._on_change()

    def _maybe_prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        if group.can_transition_to(_PREPARING):
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        log.info("group %s: preparing to rebalance: %s", group.group_id, reason)
        if group.state is _COMPLETING:
            self._reset_and_propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        self._cancel_sync_timer(group)
        group.pending_sync.clear()
        was_empty = group.state is _EMPTY
        self._transition(group, _PREPARING)
        rebalance_timeout_ms = group.rebalance_timeout_ms()
        delay_ms = self.config.group_initial_rebalance_delay_ms
        if was_empty and delay_ms > 0:
            group.initial_delay_active = True
            group.new_member_added = False
            group.initial_remaining_ms = max(rebalance_timeout_ms - delay_ms, 0)
            group.join_timer = self._clock.call_later(delay_ms, lambda: self._on_initial_delay(group))
        else:
            group.join_timer = self._clock.call_later(rebalance_timeout_ms, lambda: self._on_join_timeout(group))
            self._try_complete_join(group)

    def _on_initial_delay(self, group: ClassicGroup) -> None:
        group.join_timer = None
        if group.state is not _PREPARING:
            return
        if group.new_member_added and group.initial_remaining_ms > 0:
            group.new_member_added = False
            delay_ms = min(self.config.group_initial_rebalance_delay_ms, group.initial_remaining_ms)
            group.initial_remaining_ms = max(group.initial_remaining_ms - delay_ms, 0)
            group.join_timer = self._clock.call_later(delay_ms, lambda: self._on_initial_delay(group))
        else:
            group.initial_delay_active = False
            self._complete_join(group)

    def _on_join_timeout(self, group: ClassicGroup) -> None:
        group.join_timer = None
        if group.state is _PREPARING:
            self._complete_join(group)

    def _try_complete_join(self, group: ClassicGroup) -> None:
        if group.state is _PREPARING and not group.initial_delay_active and group.all_joined():
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        group.initial_delay_active = False
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        for member in list(group.members.values()):
            if member.join_reply is None and member.group_instance_id is None:
                log.info("group %s: dropping member %s, which did not rejoin", group.group_id, member.member_id)
                self._drop_member(group, member)
        if group.members and not self._elect_joined_leader(group):
            # Only static members that have not rejoined are left: wait for them or for their sessions to expire.
            group.join_timer = self._clock.call_later(group.rebalance_timeout_ms(),
                                                      lambda: self._on_join_timeout(group))
            return
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.subscribed_topics = None
            self._transition(group, _EMPTY)
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            self._persist_group(group)
            return
        group.protocol_name = group.select_protocol()
        group.subscribed_topics = group.compute_subscribed_topics()
        self._transition(group, _COMPLETING)
        log.info("group %s: generation %d with %d members, protocol %s, leader %s", group.group_id,
                 group.generation_id, len(group.members), group.protocol_name, group.leader_id)
        for member in group.members.values():
            reply, member.join_reply = member.join_reply, None
            if reply is not None:
                reply.set_result(self._join_result(group, member, with_members=member.member_id == group.leader_id))
            member.is_new = False
            self.touch(group, member)
        group.pending_sync = set(group.members)
        group.sync_timer = self._clock.call_later(group.rebalance_timeout_ms(), lambda: self._on_sync_timeout(group))

    def _elect_joined_leader(self, group: ClassicGroup) -> bool:
        leader = group.members.get(group.leader_id) if group.leader_id is not None else None
        if leader is not None and leader.join_reply is not None:
            return True
        for member in group.members.values():
            if member.join_reply is not None:
                group.leader_id = member.member_id
                return True
        return False

    def _reset_and_propagate_assignment_error(self, group: ClassicGroup, error_code: int) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.sync_reply is not None:
                member.sync_reply.set_result(SyncResult(error_code))
                member.sync_reply = None

    def _on_sync_timeout(self, group: ClassicGroup) -> None:
        group.sync_timer = None
        if group.state not in (_COMPLETING, _STABLE) or not group.pending_sync:
            return
        missing = [group.members[m] for m in group.pending_sync if m in group.members]
        group.pending_sync.clear()
        for member in missing:
            log.info("group %s: dropping member %s, which did not sync", group.group_id, member.member_id)
            self._drop_member(group, member)
        self._prepare_rebalance(group, "members did not send SyncGroup in time")

    def _persist_group(self, group: ClassicGroup) -> None:
        try:
            self._store.store_group(group.to_stored())
        except OSError:
            # Group metadata only spares members a rebalance after a restart; losing it is not worth failing for.
            log.exception("group %s: could not store group metadata", group.group_id)

    # -- members leaving -----------------------------------------------------------------------------------------

    def _drop_member(self, group: ClassicGroup, member: ClassicGroupMember) -> None:
        """Removes a member with no rebalance; waiting requests get UNKNOWN_MEMBER_ID, so the client rejoins."""
        if self._on_change is not None:
            self._on_change()
        group.answer_waiting(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member.member_id),
                             SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._cancel_member_timer(member)
        del group.members[member.member_id]
        if member.group_instance_id is not None and group.static_members.get(member.group_instance_id) == \
                member.member_id:
            del group.static_members[member.group_instance_id]
        group.pending_sync.discard(member.member_id)
        if not group.pending_sync:
            self._cancel_sync_timer(group)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _remove_member(self, group: ClassicGroup, member: ClassicGroupMember, reason: str) -> None:
        """Removes a member and moves the group on (Kafka's removeMemberAndUpdateGroup)."""
        log.info("group %s: removing member %s: %s", group.group_id, member.member_id, reason)
        self._drop_member(group, member)
        if group.state in (_STABLE, _COMPLETING):
            self._maybe_prepare_rebalance(group, f"member {member.member_id} left: {reason}")
        elif group.state is _PREPARING:
            self._try_complete_join(group)

    def _remove_pending_member(self, group: ClassicGroup, member_id: str) -> None:
        timer = group.pending_members.pop(member_id, None)
        if timer is not None:
            timer.cancel()
        if group.state is _PREPARING:
            self._try_complete_join(group)

    def _on_pending_member_expired(self, group: ClassicGroup, member_id: str) -> None:
        if member_id in group.pending_members:
            log.info("group %s: pending member %s did not join", group.group_id, member_id)
            group.pending_members.pop(member_id)
            if group.state is _PREPARING:
                self._try_complete_join(group)

    # -- sessions ------------------------------------------------------------------------------------------------

    def touch(self, group: ClassicGroup, member: ClassicGroupMember, timeout_ms: int | None = None) -> None:
        """Pushes the member's session deadline back. One timer per member: it is moved only when the deadline
        comes earlier; when it fires early it re-arms for the rest (heartbeats are frequent, timers are not free)."""
        timeout_ms = member.session_timeout_ms if timeout_ms is None else timeout_ms
        now = self._clock.now_ms()
        member.deadline_ms = now + timeout_ms
        if member.timer is not None and member.timer_due_ms <= member.deadline_ms:
            return
        self._cancel_member_timer(member)
        self._arm_member_timer(group, member, timeout_ms)

    def _arm_member_timer(self, group: ClassicGroup, member: ClassicGroupMember, delay_ms: int) -> None:
        member.timer_due_ms = self._clock.now_ms() + delay_ms
        member.timer = self._clock.call_later(delay_ms, lambda: self._on_session_timer(group, member))

    def _cancel_member_timer(self, member: ClassicGroupMember) -> None:
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None

    def _on_session_timer(self, group: ClassicGroup, member: ClassicGroupMember) -> None:
        member.timer = None
        if group.members.get(member.member_id) is not member:
            return
        now = self._clock.now_ms()
        if now < member.deadline_ms:
            self._arm_member_timer(group, member, member.deadline_ms - now)
            return
        # A member waiting for an answer cannot heartbeat; the rebalance's own timeouts deal with it. A new member
        # waiting for its first join answer is the exception (its client may have gone: KIP-394).
        if (member.join_reply is not None and not member.is_new) or member.sync_reply is not None:
            member.deadline_ms = now + member.session_timeout_ms
            self._arm_member_timer(group, member, member.session_timeout_ms)
            return
        self._remove_member(group, member, "session timeout expired")

    def _cancel_sync_timer(self, group: ClassicGroup) -> None:
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None

    def _cancel_group_timers(self, group: ClassicGroup) -> None:
        for member in group.members.values():
            self._cancel_member_timer(member)
        for timer in group.pending_members.values():
            timer.cancel()
        group.pending_members.clear()
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        self._cancel_sync_timer(group)

    # -- SyncGroup -----------------------------------------------------------------------------------------------

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
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            return Reply.completed(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        err = group.validate_member(member_id, group_instance_id)
        if err == ErrorCode.NONE and generation_id != group.generation_id:
            err = ErrorCode.ILLEGAL_GENERATION
        if err == ErrorCode.NONE and (
            (protocol_type is not None and protocol_type != group.protocol_type)
            or (protocol_name is not None and protocol_name != group.protocol_name)
        ):
            err = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if err == ErrorCode.NONE and group.state is _PREPARING:
            err = ErrorCode.REBALANCE_IN_PROGRESS
        if err == ErrorCode.NONE and group.state not in (_COMPLETING, _STABLE):
            err = ErrorCode.UNKNOWN_MEMBER_ID
        if err != ErrorCode.NONE:
            return Reply.completed(SyncResult(err))

        member = group.members[member_id]
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            self._cancel_sync_timer(group)
        if group.state is _STABLE:
            self.touch(group, member)
            return Reply.completed(SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name,
                                              member.assignment))

        reply: Reply[SyncResult] = Reply()
        if member.sync_reply is not None:
            member.sync_reply.set_result(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_reply = reply
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = bytes(assignments.get(m.member_id, b""))
            self._transition(group, _STABLE)
            log.info("group %s: generation %d is stable", group.group_id, group.generation_id)
            self._persist_group(group)
            for m in group.members.values():
                if m.sync_reply is not None:
                    m.sync_reply.set_result(SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name,
                                                 m.assignment))
                    m.sync_reply = None
                    self.touch(group, m)
        return reply

    # -- Heartbeat -----------------------------------------------------------------------------------------------

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> int:
        """Heartbeat: the error code. REBALANCE_IN_PROGRESS tells a member to rejoin."""
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            return ErrorCode.UNKNOWN_MEMBER_ID
        err = group.validate_member(member_id, group_instance_id)
        if err != ErrorCode.NONE:
            return err
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state not in (_PREPARING, _COMPLETING, _STABLE):
            return ErrorCode.UNKNOWN_MEMBER_ID
        self.touch(group, group.members[member_id])
        # In CompletingRebalance the member has its join answer and is about to sync: nothing to tell it.
        return ErrorCode.REBALANCE_IN_PROGRESS if group.state is _PREPARING else ErrorCode.NONE

    # -- LeaveGroup ----------------------------------------------------------------------------------------------

    def leave_group(self, group_id: str, members: Iterable[tuple[str, str | None, str | None]]) -> LeaveResult:
        """LeaveGroup, batched as in v3+. For v0-2 (one member, no instance id) the handler answers the member's
        error as the top-level one. A member given by instance id alone (empty member id) is removed by an admin."""
        leaving = [LeavingMember(*m) for m in members]
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            return LeaveResult(ErrorCode.NONE, [MemberLeaveResult(m.member_id, m.group_instance_id,
                                                                  ErrorCode.UNKNOWN_MEMBER_ID)
                                      for m in leaving])
        results = []
        for m in leaving:
            reason = m.reason or "the member left"
            if not m.member_id:
                current = group.static_members.get(m.group_instance_id) if m.group_instance_id is not None else None
                if current is None:
                    code = ErrorCode.UNKNOWN_MEMBER_ID
                else:
                    self._remove_member(group, group.members[current], reason)
                    code = ErrorCode.NONE
            elif m.member_id in group.pending_members:
                self._remove_pending_member(group, m.member_id)
                code = ErrorCode.NONE
            elif m.group_instance_id is not None and \
                    group.static_members.get(m.group_instance_id, m.member_id) != m.member_id:
                code = ErrorCode.FENCED_INSTANCE_ID
            elif m.member_id in group.members:
                self._remove_member(group, group.members[m.member_id], reason)
                code = ErrorCode.NONE
            else:
                code = ErrorCode.UNKNOWN_MEMBER_ID
            results.append(MemberLeaveResult(m.member_id, m.group_instance_id, code))
        return LeaveResult(ErrorCode.NONE, results)

    # -- DescribeGroups, ListGroups, DeleteGroups ----------------------------------------------------------------

    def describe_group(self, group_id: str) -> DescribeResult:
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            # As Kafka: an unknown group, or one of the consumer protocol, is Dead here, with no error.
            return DescribeResult(ErrorCode.NONE, group_id, _DEAD.value)
        stable = group.state is _STABLE
        protocol = group.protocol_name or "" if stable else ""
        members = [
            MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                              m.metadata(protocol) if stable else b"", m.assignment if stable else b"")
            for m in group.members.values()
        ]
        return DescribeResult(ErrorCode.NONE, group_id, group.state.value, group.protocol_type or "", protocol, members)

    def list_groups(
        self, states_filter: Iterable[str] | None = None, types_filter: Iterable[str] | None = None
    ) -> ListGroupsResult:
        """ListGroups. Filters (v4 states, v5 types) compare case-insensitively; empty or None means all."""
        states = {s.lower() for s in states_filter or ()}
        types = {t.lower() for t in types_filter or ()}
        groups = [
            ListedGroup(g.group_id, g.protocol_type or "", g.state.value,
                        "consumer" if isinstance(g, ConsumerGroup) else "classic")
            for g in self.groups.values()
        ]
        groups = [g for g in groups
                  if (not states or g.state.lower() in states) and (not types or g.group_type in types)]
        return ListGroupsResult(ErrorCode.NONE, groups)

    def delete_group_by_id(self, group_id: str) -> int:
        """One group of DeleteGroups: NONE, NON_EMPTY_GROUP or GROUP_ID_NOT_FOUND. Deleting removes the offsets."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.members if isinstance(group, ConsumerGroup) else group.state is not _EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        return self.delete_group(group)

    def delete_group(self, group: ClassicGroup | ConsumerGroup) -> int:
        """Forgets the group, its offsets and its pending transactional offsets (DeleteGroups, offset expiry)."""
        try:
            self._store.delete_group(group.group_id)
        except OSError:
            log.exception("group %s: could not delete", group.group_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if isinstance(group, ClassicGroup):
            self._cancel_group_timers(group)
            self._transition(group, _DEAD)
        del self.groups[group.group_id]
        log.info("group %s: deleted", group.group_id)
        return ErrorCode.NONE

    # -- for tests and admin tools -------------------------------------------------------------------------------

    def group_state(self, group_id: str) -> str | None:
        group = self.groups.get(group_id)
        return group.state.value if group is not None else None

    def generation_id(self, group_id: str) -> int | None:
        """The generation of a classic group, the group epoch of a consumer group."""
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            return group.group_epoch
        return group.generation_id if group is not None else None
