"""The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
OffsetDelete, DescribeGroups, ListGroups, DeleteGroups, and TxnOffsetCommit's offsets), sans-IO.

Theory of operation
-------------------
Each group is a state machine with Kafka's states and transitions:

    Empty --join--> PreparingRebalance --every member rejoined, or rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable
    Stable | CompletingRebalance --join with new metadata, leader rejoin, leave, session expiry--> PreparingRebalance
    PreparingRebalance --no member left--> Empty          Empty --DeleteGroups, offsets expired--> Dead (forgotten)

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

Committed offsets live in each group and are written to the `OffsetStore` before a commit is acknowledged. Transactional
offsets stay pending per producer until the transaction ends, and then win only over commits made before them.
Offsets expire after offsets.retention.minutes: all of an Empty group's, counted from when it became Empty; in a Stable
consumer group, those of topics it no longer subscribes to, counted from their commit; and an Empty group left with no
offsets is forgotten.

Concurrency: the coordinator is called from the event loop only and changes state only there; nothing awaits while
it reads and writes a group, so there are no locks. Requests that may wait (JoinGroup, SyncGroup) return a `Reply` at
once, with the state already changed; the coordinator completes it later from another request or a timer. Timers
come from the injected `Clock`, so tests run on a `ManualClock`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, NamedTuple, TypeVar

from ..clock import Clock, TimerHandle
from ..errors import ErrorCode
from .offsets import (
    CommittedOffset,
    MemoryOffsetStore,
    OffsetStore,
    StoredGroup,
    StoredMember,
    TopicPartition,
)

log = logging.getLogger("kbroker.coordinator.group")

# Kafka's GroupCoordinator.NewMemberJoinTimeoutMs (KIP-394): how long a new member may wait for its first join answer.
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000
# The consumer protocol's type: only its member metadata is parsed (for the subscribed topics).
CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE
_DEAD = GroupState.DEAD

# Kafka's GroupState.validPreviousStates.
_VALID_PREVIOUS = {
    _EMPTY: {_PREPARING},
    _PREPARING: {_STABLE, _COMPLETING, _EMPTY},
    _COMPLETING: {_PREPARING},
    _STABLE: {_COMPLETING},
    _DEAD: {_EMPTY, _PREPARING, _COMPLETING, _STABLE, _DEAD},
}


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """The broker configs the coordinator reads; attribute names are Kafka's with dots as underscores."""

    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    # Kafka's default is 3000; kbroker serves CI and tests, where waiting 3 s for more members only costs time.
    group_initial_rebalance_delay_ms: int = 0
    group_max_size: int = 2**31 - 1
    offsets_retention_minutes: int = 10_080
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4_096

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> GroupConfig:
        """From broker properties under Kafka's names ("group.max.size"); other keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in config.items():
            name = key.replace(".", "_")
            if name in known:
                values[name] = int(value)
        return cls(**values)


# --- results --------------------------------------------------------------------------------------------------------

T = TypeVar("T")


class Reply(Generic[T]):
    """The answer to a request that may wait. The coordinator completes it exactly once, on the event loop.
    `await reply` from any asyncio task; `done()` and `result()` work without a loop (tests on a ManualClock)."""

    __slots__ = ("_done", "_result", "_waiters")

    def __init__(self) -> None:
        self._done = False
        self._result: T | None = None
        self._waiters: list[asyncio.Future] = []

    @classmethod
    def completed(cls, result: T) -> Reply[T]:
        reply = cls()
        reply._set(result)
        return reply

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise asyncio.InvalidStateError("reply not ready")
        return self._result  # type: ignore[return-value]

    def _set(self, result: T) -> None:
        if self._done:
            raise RuntimeError("reply completed twice")
        self._done = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():  # a waiter whose task was cancelled (client gone) is skipped
                fut.set_result(None)

    def __await__(self) -> Generator[Any, None, T]:
        if not self._done:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            yield from fut.__await__()
        return self._result  # type: ignore[return-value]


class JoinMember(NamedTuple):
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(slots=True)
class JoinResult:
    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    member_id: str = ""
    members: list[JoinMember] = field(default_factory=list)  # for the leader only


@dataclass(slots=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


class LeavingMember(NamedTuple):
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


class MemberLeaveResult(NamedTuple):
    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass(slots=True)
class LeaveResult:
    error_code: int
    members: list[MemberLeaveResult] = field(default_factory=list)


@dataclass(slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # for the group's protocol; empty unless the group is Stable (as Kafka)
    assignment: bytes  # empty unless the group is Stable


@dataclass(slots=True)
class DescribeResult:
    error_code: int
    group_id: str
    state: str
    protocol_type: str = ""
    protocol: str = ""  # empty unless the group is Stable
    members: list[MemberDescription] = field(default_factory=list)


class ListedGroup(NamedTuple):
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"  # ListGroups v5 (KIP-848); every group here is a classic one


@dataclass(slots=True)
class ListGroupsResult:
    error_code: int
    groups: list[ListedGroup] = field(default_factory=list)


class OffsetAndMetadata(NamedTuple):
    offset: int
    leader_epoch: int
    metadata: str


NO_OFFSET = OffsetAndMetadata(-1, -1, "")


@dataclass(slots=True)
class OffsetFetchResult:
    error_code: int
    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    # Only partitions with an error appear (UNSTABLE_OFFSET_COMMIT when require_stable); the others are NONE.
    partition_errors: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass(slots=True)
class OffsetDeleteResult:
    error_code: int
    partition_errors: dict[TopicPartition, int] = field(default_factory=dict)


# --- state ----------------------------------------------------------------------------------------------------------


class _Member:
    __slots__ = (
        "member_id", "group_instance_id", "client_id", "client_host", "rebalance_timeout_ms", "session_timeout_ms",
        "protocol_type", "protocols", "assignment", "join_reply", "sync_reply", "is_new",
        "deadline_ms", "timer", "timer_due_ms",
    )

    def __init__(
        self, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        rebalance_timeout_ms: int, session_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = b""
        # Set while the member waits for a JoinGroup / SyncGroup answer; None otherwise.
        self.join_reply: Reply[JoinResult] | None = None
        self.sync_reply: Reply[SyncResult] | None = None
        self.is_new = False
        self.deadline_ms = 0  # the session expires then, unless the member is waiting for an answer
        self.timer: TimerHandle | None = None
        self.timer_due_ms = 0

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def supports(self, protocol: str) -> bool:
        return any(name == protocol for name, _ in self.protocols)

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {candidates}")


class _Group:
    def __init__(self, group_id: str, now_ms: int) -> None:
        self.group_id = group_id
        self.state = _EMPTY
        self.state_timestamp_ms = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, _Member] = {}  # in joining order
        self.static_members: dict[str, str] = {}  # group_instance_id -> member_id
        self.pending_members: dict[str, TimerHandle] = {}  # told MEMBER_ID_REQUIRED, not joined yet
        self.pending_sync: set[str] = set()  # members of this generation that have not sent SyncGroup yet
        self.join_timer: TimerHandle | None = None
        self.sync_timer: TimerHandle | None = None
        self.initial_delay_active = False
        self.initial_remaining_ms = 0
        self.new_member_added = False
        self.subscribed_topics: frozenset[str] | None = None  # None: unknown (not the consumer protocol)
        self.offsets: dict[TopicPartition, CommittedOffset] = {}
        self.pending_txn: dict[int, dict[TopicPartition, CommittedOffset]] = {}  # producer id -> offsets

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.join_reply is not None for m in self.members.values())

    def member_metadata(self) -> list[JoinMember]:
        return [JoinMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                for m in self.members.values()]

    def has_pending_txn(self, tp: TopicPartition) -> bool:
        return any(tp in offsets for offsets in self.pending_txn.values())


def _consumer_subscription_topics(metadata: bytes) -> list[str]:
    """The topics of a ConsumerProtocolSubscription (v0-3 all start with version:int16, topics:[string])."""
    (count,) = struct.unpack_from(">i", metadata, 2)
    pos = 6
    topics = []
    for _ in range(count):
        (length,) = struct.unpack_from(">h", metadata, pos)
        pos += 2
        if length < 0 or pos + length > len(metadata):
            raise ValueError("bad topic name")
        topics.append(metadata[pos:pos + length].decode())
        pos += length
    return topics


# --- the coordinator ------------------------------------------------------------------------------------------------


class GroupCoordinator:
    def __init__(
        self,
        clock: Clock,
        config: GroupConfig | Mapping[str, Any] | None = None,
        offset_store: OffsetStore | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``on_change`` is called after a group changes state or loses a member, including from timers
        (the control plane's wait listens to it)."""
        self._clock = clock
        self._on_change = on_change
        if config is None:
            config = GroupConfig()
        elif not isinstance(config, GroupConfig):
            config = GroupConfig.from_mapping(config)
        self.config: GroupConfig = config
        self._store = offset_store if offset_store is not None else MemoryOffsetStore()
        self._groups: dict[str, _Group] = {}
        self._loading = True
        self._closed = False
        self._commit_seq = 0
        self._retention_timer: TimerHandle | None = None

    # -- life cycle ----------------------------------------------------------------------------------------------

    @property
    def is_loading(self) -> bool:
        """True until `load()` has run: every request is answered COORDINATOR_LOAD_IN_PROGRESS meanwhile."""
        return self._loading

    def load(self) -> None:
        """Reads groups and offsets from the store (synchronously) and starts the offset-expiry timer."""
        if not self._loading:
            return
        snapshot = self._store.load()
        now = self._clock.now_ms()
        seq = 0
        for stored in snapshot.groups.values():
            group = self._groups[stored.group_id] = _Group(stored.group_id, stored.state_timestamp_ms)
            group.generation_id = stored.generation_id
            group.protocol_type = stored.protocol_type
            group.protocol_name = stored.protocol_name
            for sm in stored.members:
                member = _Member(
                    sm.member_id, sm.group_instance_id, sm.client_id, sm.client_host, sm.rebalance_timeout_ms,
                    sm.session_timeout_ms, stored.protocol_type or "", [(stored.protocol_name or "", sm.subscription)],
                )
                member.assignment = sm.assignment
                group.members[member.member_id] = member
                if member.group_instance_id is not None:
                    group.static_members[member.group_instance_id] = member.member_id
            if group.members:
                # As Kafka: a group loaded with members is Stable; members that are gone time out and rebalance it.
                group.state = _STABLE
                group.leader_id = stored.leader_id if stored.leader_id in group.members else next(iter(group.members))
                group.subscribed_topics = self._subscribed_topics(group)
                for member in group.members.values():
                    self._touch(group, member)
        for group_id, offsets in snapshot.offsets.items():
            group = self._groups.get(group_id) or self._groups.setdefault(group_id, _Group(group_id, now))
            group.offsets = dict(offsets)
            seq = max([seq, *(o.commit_seq for o in offsets.values())])
        for (producer_id, group_id), offsets in snapshot.pending_txn_offsets.items():
            group = self._groups.get(group_id) or self._groups.setdefault(group_id, _Group(group_id, now))
            group.pending_txn[producer_id] = dict(offsets)
            seq = max([seq, *(o.commit_seq for o in offsets.values())])
        self._commit_seq = seq
        self._loading = False
        self._retention_timer = self._clock.call_later(
            self.config.offsets_retention_check_interval_ms, self._on_retention_check)
        log.info("loaded %d groups", len(self._groups))

    def close(self) -> None:
        """Stops timers and answers every waiting request NOT_COORDINATOR (as Kafka does when it unloads groups)."""
        self._closed = True
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None
        for group in self._groups.values():
            for member in group.members.values():
                if member.join_reply is not None:
                    member.join_reply._set(JoinResult(ErrorCode.NOT_COORDINATOR, member_id=member.member_id))
                    member.join_reply = None
                if member.sync_reply is not None:
                    member.sync_reply._set(SyncResult(ErrorCode.NOT_COORDINATOR))
                    member.sync_reply = None
            self._cancel_group_timers(group)
        self._groups.clear()

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
        err = self._check(group_id)
        if err == ErrorCode.NONE and not (
            self.config.group_min_session_timeout_ms <= session_timeout_ms <= self.config.group_max_session_timeout_ms
        ):
            err = ErrorCode.INVALID_SESSION_TIMEOUT
        if err != ErrorCode.NONE:
            return Reply.completed(JoinResult(err, member_id=member_id))
        protocols = [(name, bytes(metadata)) for name, metadata in protocols]
        reply: Reply[JoinResult] = Reply()
        group = self._groups.get(group_id)
        if group is None:
            if member_id:
                return Reply.completed(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
            group = self._groups[group_id] = _Group(group_id, self._clock.now_ms())

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

    def _accept_joining_member(self, group: _Group, member_id: str, group_instance_id: str | None) -> bool:
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

    def _supports_protocols(
        self, group: _Group, protocol_type: str, protocols: list[tuple[str, bytes]], replacing: str | None = None
    ) -> bool:
        """Whether a member with these protocols fits the group: same protocol type and a protocol every other
        member supports. Kafka counts the joining member's own previous protocols too (so a lone member could not
        change its assignor); here the member being updated or replaced is left out."""
        others = [m for m in group.members.values() if m.member_id != replacing]
        if not protocol_type or not protocols:
            return False
        if not others:
            return True
        if protocol_type != group.protocol_type:
            return False
        return any(all(m.supports(name) for m in others) for name, _ in protocols)

    def _join_unknown_member(
        self, group: _Group, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None, require_known_member_id: bool, supports_skip_assignment: bool,
    ) -> None:
        old_member_id = group.static_members.get(group_instance_id) if group_instance_id is not None else None
        if not self._supports_protocols(group, protocol_type, protocols, replacing=old_member_id):
            reply._set(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
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
            reply._set(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_member_id))
        else:
            self._add_member_and_rebalance(
                group, new_member_id, None, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                protocol_type, protocols, reply, reason)

    def _join_known_member(
        self, group: _Group, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        if group.state is _DEAD:
            reply._set(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            return
        if member_id in group.pending_members:
            if group_instance_id is not None:
                reply._set(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))  # pending members are dynamic by construction
            elif not self._supports_protocols(group, protocol_type, protocols):
                reply._set(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            else:
                group.pending_members.pop(member_id).cancel()
                self._add_member_and_rebalance(
                    group, member_id, None, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                    protocol_type, protocols, reply, reason)
            return
        err = self._validate_member(group, member_id, group_instance_id)
        if err != ErrorCode.NONE:
            reply._set(JoinResult(err, member_id=member_id if err == ErrorCode.FENCED_INSTANCE_ID else ""))
            return
        if not self._supports_protocols(group, protocol_type, protocols, replacing=member_id):
            reply._set(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        member = group.members[member_id]
        state = group.state
        if state is _PREPARING:
            self._update_member_and_rebalance(
                group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply, reason)
        elif state is _COMPLETING:
            if member.matches(protocols):
                # The member lost our join answer (a timeout, say): answer it again for this generation.
                self._touch(group, member)
                reply._set(self._join_result(group, member, with_members=member_id == group.leader_id))
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
                self._touch(group, member)
                reply._set(self._join_result(group, member, with_members=False))
        else:
            reply._set(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))

    def _join_result(self, group: _Group, member: _Member, *, with_members: bool) -> JoinResult:
        return JoinResult(
            ErrorCode.NONE, group.generation_id, group.protocol_type, group.protocol_name, group.leader_id or "", False,
            member.member_id, group.member_metadata() if with_members else [],
        )

    def _add_member_and_rebalance(
        self, group: _Group, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
        reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        member = _Member(member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms,
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
        self._touch(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance(group, f"adding member {member_id} ({reason or 'no reason given'})")

    def _update_member(
        self, group: _Group, member: _Member, protocol_type: str, protocols: list[tuple[str, bytes]],
        session_timeout_ms: int, rebalance_timeout_ms: int, reply: Reply[JoinResult] | None,
    ) -> None:
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        if len(group.members) == 1:
            group.protocol_type = protocol_type  # a lone member may change it (see _supports_protocols)
        member.protocol_type = protocol_type
        if reply is not None:
            if member.join_reply is not None:
                # A second JoinGroup from the same member replaces the first, whose client has given up on it.
                member.join_reply._set(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id))
            member.join_reply = reply

    def _update_member_and_rebalance(
        self, group: _Group, member: _Member, protocol_type: str, protocols: list[tuple[str, bytes]],
        session_timeout_ms: int, rebalance_timeout_ms: int, reply: Reply[JoinResult], reason: str | None,
    ) -> None:
        self._update_member(group, member, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, reply)
        self._maybe_prepare_rebalance(group, f"member {member.member_id} rejoined ({reason or 'no reason given'})")

    def _replace_static_member_and_rebalance(
        self, group: _Group, old_member_id: str, new_member_id: str, protocol_type: str,
        protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
        reply: Reply[JoinResult], supports_skip_assignment: bool,
    ) -> None:
        old_leader = group.leader_id
        member = group.members[old_member_id]
        # The old incarnation is fenced: its waiting requests are answered so, and its id is gone.
        if member.join_reply is not None:
            member.join_reply._set(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_member_id))
            member.join_reply = None
        if member.sync_reply is not None:
            member.sync_reply._set(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
            member.sync_reply = None
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
        self._touch(group, member)
        log.info("group %s: static member %s replaced %s with %s",
                 group.group_id, member.group_instance_id, old_member_id, new_member_id)

        if group.state is _STABLE:
            if self._select_protocol(group) == group.protocol_name:
                # Nothing the assignment depends on changed: no rebalance, the member keeps its assignment.
                self._persist_group(group)
                is_leader = group.leader_id == new_member_id
                skip = is_leader and supports_skip_assignment
                reply._set(JoinResult(
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

    def _transition(self, group: _Group, state: GroupState) -> None:
        if group.state not in _VALID_PREVIOUS[state]:
            raise AssertionError(f"group {group.group_id}: {group.state.value} -> {state.value}")
        log.debug("group %s: %s -> %s", group.group_id, group.state.value, state.value)
        group.state = state
        group.state_timestamp_ms = self._clock.now_ms()
        if self._on_change is not None:
            self._on_change()

    def _maybe_prepare_rebalance(self, group: _Group, reason: str) -> None:
        if group.state in _VALID_PREVIOUS[_PREPARING]:
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: _Group, reason: str) -> None:
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

    def _on_initial_delay(self, group: _Group) -> None:
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

    def _on_join_timeout(self, group: _Group) -> None:
        group.join_timer = None
        if group.state is _PREPARING:
            self._complete_join(group)

    def _try_complete_join(self, group: _Group) -> None:
        if group.state is _PREPARING and not group.initial_delay_active and group.all_joined():
            self._complete_join(group)

    def _complete_join(self, group: _Group) -> None:
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
        group.protocol_name = self._select_protocol(group)
        group.subscribed_topics = self._subscribed_topics(group)
        self._transition(group, _COMPLETING)
        log.info("group %s: generation %d with %d members, protocol %s, leader %s", group.group_id,
                 group.generation_id, len(group.members), group.protocol_name, group.leader_id)
        for member in group.members.values():
            reply, member.join_reply = member.join_reply, None
            if reply is not None:
                reply._set(self._join_result(group, member, with_members=member.member_id == group.leader_id))
            member.is_new = False
            self._touch(group, member)
        group.pending_sync = set(group.members)
        group.sync_timer = self._clock.call_later(group.rebalance_timeout_ms(), lambda: self._on_sync_timeout(group))

    def _elect_joined_leader(self, group: _Group) -> bool:
        leader = group.members.get(group.leader_id) if group.leader_id is not None else None
        if leader is not None and leader.join_reply is not None:
            return True
        for member in group.members.values():
            if member.join_reply is not None:
                group.leader_id = member.member_id
                return True
        return False

    def _select_protocol(self, group: _Group) -> str:
        """The protocol every member supports that most members prefer (ties: the first one voted for)."""
        members = list(group.members.values())
        candidates = {name for name, _ in members[0].protocols if all(m.supports(name) for m in members)}
        votes = Counter(m.vote(candidates) for m in members)
        return votes.most_common(1)[0][0]

    def _subscribed_topics(self, group: _Group) -> frozenset[str] | None:
        if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        topics: set[str] = set()
        try:
            for member in group.members.values():
                topics.update(_consumer_subscription_topics(member.metadata(group.protocol_name)))
        except (struct.error, ValueError, UnicodeDecodeError):
            return None
        return frozenset(topics)

    def _reset_and_propagate_assignment_error(self, group: _Group, error_code: int) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.sync_reply is not None:
                member.sync_reply._set(SyncResult(error_code))
                member.sync_reply = None

    def _on_sync_timeout(self, group: _Group) -> None:
        group.sync_timer = None
        if group.state not in (_COMPLETING, _STABLE) or not group.pending_sync:
            return
        missing = [group.members[m] for m in group.pending_sync if m in group.members]
        group.pending_sync.clear()
        for member in missing:
            log.info("group %s: dropping member %s, which did not sync", group.group_id, member.member_id)
            self._drop_member(group, member)
        self._prepare_rebalance(group, "members did not send SyncGroup in time")

    def _persist_group(self, group: _Group) -> None:
        protocol = group.protocol_name
        stored = StoredGroup(
            group.group_id, group.generation_id, group.protocol_type, protocol, group.leader_id,
            group.state_timestamp_ms,
            tuple(StoredMember(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                               m.session_timeout_ms, m.metadata(protocol), m.assignment)
                  for m in group.members.values()),
        )
        try:
            self._store.store_group(stored)
        except OSError:
            # Group metadata only spares members a rebalance after a restart; losing it is not worth failing for.
            log.exception("group %s: could not store group metadata", group.group_id)

    # -- members leaving -----------------------------------------------------------------------------------------

    def _drop_member(self, group: _Group, member: _Member) -> None:
        """Removes a member with no rebalance; waiting requests get UNKNOWN_MEMBER_ID, so the client rejoins."""
        if self._on_change is not None:
            self._on_change()
        if member.join_reply is not None:
            member.join_reply._set(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member.member_id))
            member.join_reply = None
        if member.sync_reply is not None:
            member.sync_reply._set(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            member.sync_reply = None
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

    def _remove_member(self, group: _Group, member: _Member, reason: str) -> None:
        """Removes a member and moves the group on (Kafka's removeMemberAndUpdateGroup)."""
        log.info("group %s: removing member %s: %s", group.group_id, member.member_id, reason)
        self._drop_member(group, member)
        if group.state in (_STABLE, _COMPLETING):
            self._maybe_prepare_rebalance(group, f"member {member.member_id} left: {reason}")
        elif group.state is _PREPARING:
            self._try_complete_join(group)

    def _remove_pending_member(self, group: _Group, member_id: str) -> None:
        timer = group.pending_members.pop(member_id, None)
        if timer is not None:
            timer.cancel()
        if group.state is _PREPARING:
            self._try_complete_join(group)

    def _on_pending_member_expired(self, group: _Group, member_id: str) -> None:
        if member_id in group.pending_members:
            log.info("group %s: pending member %s did not join", group.group_id, member_id)
            group.pending_members.pop(member_id)
            if group.state is _PREPARING:
                self._try_complete_join(group)

    # -- sessions ------------------------------------------------------------------------------------------------

    def _touch(self, group: _Group, member: _Member, timeout_ms: int | None = None) -> None:
        """Pushes the member's session deadline back. One timer per member: it is moved only when the deadline
        comes earlier; when it fires early it re-arms for the rest (heartbeats are frequent, timers are not free)."""
        timeout_ms = member.session_timeout_ms if timeout_ms is None else timeout_ms
        now = self._clock.now_ms()
        member.deadline_ms = now + timeout_ms
        if member.timer is not None and member.timer_due_ms <= member.deadline_ms:
            return
        self._cancel_member_timer(member)
        self._arm_member_timer(group, member, timeout_ms)

    def _arm_member_timer(self, group: _Group, member: _Member, delay_ms: int) -> None:
        member.timer_due_ms = self._clock.now_ms() + delay_ms
        member.timer = self._clock.call_later(delay_ms, lambda: self._on_session_timer(group, member))

    def _cancel_member_timer(self, member: _Member) -> None:
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None

    def _on_session_timer(self, group: _Group, member: _Member) -> None:
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

    def _cancel_sync_timer(self, group: _Group) -> None:
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None

    def _cancel_group_timers(self, group: _Group) -> None:
        for member in group.members.values():
            self._cancel_member_timer(member)
        for timer in group.pending_members.values():
            timer.cancel()
        group.pending_members.clear()
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        self._cancel_sync_timer(group)

    # -- validation ----------------------------------------------------------------------------------------------

    def _check(self, group_id: str | None, *, allow_empty_id: bool = False) -> int:
        """Kafka's validateGroupStatus. OffsetCommit, OffsetFetch, DescribeGroups and DeleteGroups accept the
        empty group id, for compatibility with old clients."""
        if group_id is None or (not group_id and not allow_empty_id):
            return ErrorCode.INVALID_GROUP_ID
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    @staticmethod
    def _validate_member(group: _Group, member_id: str, group_instance_id: str | None) -> int:
        """A static member must be the instance's current member id; any member must be in the group."""
        if group_instance_id is not None:
            current = group.static_members.get(group_instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

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
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return Reply.completed(SyncResult(err))
        group = self._groups.get(group_id)
        if group is None:
            return Reply.completed(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        err = self._validate_member(group, member_id, group_instance_id)
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
            self._touch(group, member)
            return Reply.completed(SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name,
                                              member.assignment))

        reply: Reply[SyncResult] = Reply()
        if member.sync_reply is not None:
            member.sync_reply._set(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_reply = reply
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = bytes(assignments.get(m.member_id, b""))
            self._transition(group, _STABLE)
            log.info("group %s: generation %d is stable", group.group_id, group.generation_id)
            self._persist_group(group)
            for m in group.members.values():
                if m.sync_reply is not None:
                    m.sync_reply._set(SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name,
                                                 m.assignment))
                    m.sync_reply = None
                    self._touch(group, m)
        return reply

    # -- Heartbeat -----------------------------------------------------------------------------------------------

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> int:
        """Heartbeat: the error code. REBALANCE_IN_PROGRESS tells a member to rejoin."""
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return err
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        err = self._validate_member(group, member_id, group_instance_id)
        if err != ErrorCode.NONE:
            return err
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state not in (_PREPARING, _COMPLETING, _STABLE):
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._touch(group, group.members[member_id])
        # In CompletingRebalance the member has its join answer and is about to sync: nothing to tell it.
        return ErrorCode.REBALANCE_IN_PROGRESS if group.state is _PREPARING else ErrorCode.NONE

    # -- LeaveGroup ----------------------------------------------------------------------------------------------

    def leave_group(self, group_id: str, members: Iterable[tuple[str, str | None, str | None]]) -> LeaveResult:
        """LeaveGroup, batched as in v3+. For v0-2 (one member, no instance id) the handler answers the member's
        error as the top-level one. A member given by instance id alone (empty member id) is removed by an admin."""
        leaving = [LeavingMember(*m) for m in members]
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return LeaveResult(err)
        group = self._groups.get(group_id)
        if group is None:
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
        err = self._check(group_id, allow_empty_id=True)
        if err != ErrorCode.NONE:
            return DescribeResult(err, group_id or "", _DEAD.value)
        group = self._groups.get(group_id)
        if group is None:
            return DescribeResult(ErrorCode.NONE, group_id, _DEAD.value)  # as Kafka: an unknown group is Dead, no error
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
        err = (ErrorCode.COORDINATOR_NOT_AVAILABLE if self._closed
               else ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if self._loading else ErrorCode.NONE)
        if err != ErrorCode.NONE:
            return ListGroupsResult(err)
        states = {s.lower() for s in states_filter or ()}
        types = {t.lower() for t in types_filter or ()}
        groups = [
            ListedGroup(g.group_id, g.protocol_type or "", g.state.value)
            for g in self._groups.values()
            if (not states or g.state.value.lower() in states) and (not types or "classic" in types)
        ]
        return ListGroupsResult(ErrorCode.NONE, groups)

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, int]:
        """DeleteGroups: per group, NONE, NON_EMPTY_GROUP or GROUP_ID_NOT_FOUND. Deleting removes the offsets."""
        results = {}
        for group_id in group_ids:
            err = self._check(group_id, allow_empty_id=True)
            group = self._groups.get(group_id) if err == ErrorCode.NONE else None
            if err != ErrorCode.NONE:
                pass
            elif group is None:
                err = ErrorCode.GROUP_ID_NOT_FOUND
            elif group.state is not _EMPTY:
                err = ErrorCode.NON_EMPTY_GROUP
            else:
                err = self._delete_group(group)
            results[group_id] = err
        return results

    def _delete_group(self, group: _Group) -> int:
        try:
            self._store.delete_group(group.group_id)
        except OSError:
            log.exception("group %s: could not delete", group.group_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        self._cancel_group_timers(group)
        self._transition(group, _DEAD)
        del self._groups[group.group_id]
        log.info("group %s: deleted", group.group_id)
        return ErrorCode.NONE

    # -- offsets -------------------------------------------------------------------------------------------------

    def _validate_offset_commit(
        self, group: _Group, generation_id: int, member_id: str, group_instance_id: str | None, transactional: bool
    ) -> int:
        if group.state is _DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            err = self._validate_member(group, member_id, group_instance_id)
            if err == ErrorCode.NONE and generation_id != group.generation_id:
                err = ErrorCode.ILLEGAL_GENERATION
            return err
        if not transactional and group.state is not _EMPTY:
            # Only members commit to a group with members. Transactional commits are exempt: TxnOffsetCommit
            # before v3 carries no member id or generation.
            return ErrorCode.UNKNOWN_MEMBER_ID
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
    ) -> dict[TopicPartition, int]:
        """OffsetCommit: per partition error codes. `offsets` maps (topic, partition) to (offset, leader_epoch,
        metadata). Generation -1 with no member id is a standalone ("simple") commit, allowed when the group has no
        members. `retention_time_ms` (v2-v4) >= 0 sets the offsets' own expiry. Whether the topic exists
        (UNKNOWN_TOPIC_OR_PARTITION) is for the handler to check, as Kafka's KafkaApis does."""
        def every(code: int) -> dict[TopicPartition, int]:
            return {tp: code for tp in offsets}

        err = self._check(group_id, allow_empty_id=True)
        if err != ErrorCode.NONE:
            return every(err)
        group = self._groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return every(ErrorCode.ILLEGAL_GENERATION)  # a member of a generation this coordinator never had
            group = self._groups[group_id] = _Group(group_id, self._clock.now_ms())
        err = self._validate_offset_commit(group, generation_id, member_id, group_instance_id, False)
        if err == ErrorCode.NONE and group.state is _COMPLETING:
            # The member has its join answer but not its assignment yet: it has nothing to commit for.
            err = ErrorCode.REBALANCE_IN_PROGRESS
        if err != ErrorCode.NONE:
            return every(err)
        if group.state in (_STABLE, _PREPARING):
            # Commits are accepted while preparing a rebalance: heartbeats tell the member to rejoin.
            self._touch(group, group.members[member_id])
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
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None, require_stable: bool = False
    ) -> OffsetFetchResult:
        """OffsetFetch. Partitions with no committed offset answer offset -1 (as Kafka); None asks for all committed
        ones. With `require_stable` (v7+, KIP-447) a partition with a pending transactional offset answers
        UNSTABLE_OFFSET_COMMIT, so the consumer retries after the transaction ends."""
        err = self._check(group_id, allow_empty_id=True)
        if err != ErrorCode.NONE:
            return OffsetFetchResult(err)
        group = self._groups.get(group_id)
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
        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return OffsetDeleteResult(err)
        group = self._groups.get(group_id)
        if group is None:
            return OffsetDeleteResult(ErrorCode.GROUP_ID_NOT_FOUND)
        result = OffsetDeleteResult(ErrorCode.NONE)
        if group.state is _EMPTY:
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
    def _forget_offsets(group: _Group, partitions: Iterable[TopicPartition]) -> None:
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
    ) -> dict[TopicPartition, int]:
        """TxnOffsetCommit: stores offsets that fetch_offsets shows only after complete_txn_offsets(commit=True).
        The member fields (v3+, KIP-447) are checked when given. The transaction coordinator checks the producer."""
        def every(code: int) -> dict[TopicPartition, int]:
            return {tp: code for tp in offsets}

        err = self._check(group_id)
        if err != ErrorCode.NONE:
            return every(err)
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = _Group(group_id, self._clock.now_ms())
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
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        group = self._groups.get(group_id)
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

    def _on_retention_check(self) -> None:
        self._retention_timer = self._clock.call_later(
            self.config.offsets_retention_check_interval_ms, self._on_retention_check)
        self.expire_offsets()

    def expire_offsets(self) -> int:
        """Drops offsets past offsets.retention.minutes, and the Empty groups left with none. Runs every
        offsets.retention.check.interval.ms; returns how many offsets went."""
        now = self._clock.now_ms()
        retention_ms = self.config.offsets_retention_minutes * 60_000
        removed = 0
        for group in list(self._groups.values()):
            if group.state is _EMPTY and group.protocol_type is not None:
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
            if group.state is _EMPTY and not group.offsets and not group.pending_txn and not group.pending_members:
                self._delete_group(group)
        return removed

    # -- for tests and admin tools -------------------------------------------------------------------------------

    def group_state(self, group_id: str) -> str | None:
        group = self._groups.get(group_id)
        return group.state.value if group is not None else None

    def generation_id(self, group_id: str) -> int | None:
        group = self._groups.get(group_id)
        return group.generation_id if group is not None else None
