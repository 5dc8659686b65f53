"""A classic consumer group and its state machine (Kafka's classic.ClassicGroup, ClassicGroupMember and
ClassicGroupState).

Each group is a state machine with Kafka's states and transitions:

    Empty --join--> PreparingRebalance --every member rejoined, or rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable
    Stable | CompletingRebalance --join with new metadata, leader rejoin, leave, session expiry--> PreparingRebalance
    PreparingRebalance --no member left--> Empty          Empty --DeleteGroups, offsets expired--> Dead (forgotten)

This module holds what a group is and what can be decided from the group alone (may it go to that state, which
protocol do its members elect, is this member who it says it is). What moves a group between states, with timers and
answers to waiting members, is the GroupMetadataManager's (group_metadata_manager.py); what it has committed is the
OffsetMetadataManager's (offset_metadata_manager.py), though the offsets ride on the group object.
"""

from __future__ import annotations

import enum
import struct
from collections import Counter

from ..clock import TimerHandle
from ..errors import ErrorCode
from .offsets import CommittedOffset, StoredGroup, StoredMember, TopicPartition
from .results import JoinMember, JoinResult, Reply, SyncResult

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
VALID_PREVIOUS_STATES = {
    _EMPTY: {_PREPARING},
    _PREPARING: {_STABLE, _COMPLETING, _EMPTY},
    _COMPLETING: {_PREPARING},
    _STABLE: {_COMPLETING},
    _DEAD: {_EMPTY, _PREPARING, _COMPLETING, _STABLE, _DEAD},
}


class ClassicGroupMember:
    """A member of a classic group: its protocols, assignment, waiting answers and session timer."""

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


class ClassicGroup:
    """A classic group's state; changed by the GroupMetadataManager and (its offsets) the OffsetMetadataManager."""

    def __init__(self, group_id: str, now_ms: int) -> None:
        self.group_id = group_id
        self.state = _EMPTY
        self.state_timestamp_ms = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, ClassicGroupMember] = {}  # in joining order
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

    def can_transition_to(self, state: GroupState) -> bool:
        return self.state in VALID_PREVIOUS_STATES[state]

    def supports_protocols(
        self, protocol_type: str, protocols: list[tuple[str, bytes]], replacing: str | None = None
    ) -> bool:
        """Whether a member with these protocols fits the group: same protocol type and a protocol every other
        member supports. Kafka counts the joining member's own previous protocols too (so a lone member could not
        change its assignor); here the member being updated or replaced is left out."""
        others = [m for m in self.members.values() if m.member_id != replacing]
        if not protocol_type or not protocols:
            return False
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        return any(all(m.supports(name) for m in others) for name, _ in protocols)

    def select_protocol(self) -> str:
        """The protocol every member supports that most members prefer (ties: the first one voted for)."""
        members = list(self.members.values())
        candidates = {name for name, _ in members[0].protocols if all(m.supports(name) for m in members)}
        votes = Counter(m.vote(candidates) for m in members)
        return votes.most_common(1)[0][0]

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """The topics a consumer group's members subscribe to; None when unknown (not the consumer protocol)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        topics: set[str] = set()
        try:
            for member in self.members.values():
                topics.update(consumer_subscription_topics(member.metadata(self.protocol_name)))
        except (struct.error, ValueError, UnicodeDecodeError):
            return None
        return frozenset(topics)

    def validate_member(self, member_id: str, group_instance_id: str | None) -> int:
        """A static member must be the instance's current member id; any member must be in the group."""
        if group_instance_id is not None:
            current = self.static_members.get(group_instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    # -- persistence (Kafka's GroupMetadataValue) ------------------------------------------------------------------

    def to_stored(self) -> StoredGroup:
        protocol = self.protocol_name
        return StoredGroup(
            self.group_id, self.generation_id, self.protocol_type, protocol, self.leader_id, self.state_timestamp_ms,
            tuple(StoredMember(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                               m.session_timeout_ms, m.metadata(protocol), m.assignment)
                  for m in self.members.values()),
        )

    @classmethod
    def from_stored(cls, stored: StoredGroup) -> ClassicGroup:
        """The group as stored; as Kafka, a group loaded with members is Stable (the manager arms their sessions:
        members that are gone time out and rebalance it)."""
        group = cls(stored.group_id, stored.state_timestamp_ms)
        group.generation_id = stored.generation_id
        group.protocol_type = stored.protocol_type
        group.protocol_name = stored.protocol_name
        for sm in stored.members:
            member = ClassicGroupMember(
                sm.member_id, sm.group_instance_id, sm.client_id, sm.client_host, sm.rebalance_timeout_ms,
                sm.session_timeout_ms, stored.protocol_type or "", [(stored.protocol_name or "", sm.subscription)],
            )
            member.assignment = sm.assignment
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
        if group.members:
            group.state = _STABLE
            group.leader_id = stored.leader_id if stored.leader_id in group.members else next(iter(group.members))
            group.subscribed_topics = group.compute_subscribed_topics()
        return group

    # -- waiting members -----------------------------------------------------------------------------------------

    @staticmethod
    def answer_waiting(member: ClassicGroupMember, join: JoinResult, sync: SyncResult) -> None:
        """Answers the member's waiting JoinGroup and SyncGroup, if any, with these results (the member is fenced,
        dropped, or the coordinator unloads)."""
        if member.join_reply is not None:
            member.join_reply.set_result(join)
            member.join_reply = None
        if member.sync_reply is not None:
            member.sync_reply.set_result(sync)
            member.sync_reply = None


def consumer_subscription_topics(metadata: bytes) -> list[str]:
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
