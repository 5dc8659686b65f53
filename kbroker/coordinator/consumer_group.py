"""A consumer group of the consumer group protocol (KIP-848; Kafka's modern.consumer.ConsumerGroup and
ConsumerGroupMember): its epochs, members, target assignment, who holds which partition, and its stored form.

Three epochs drive it. The *group epoch* goes up whenever what the group must assign changes (a member joins,
leaves or changes its subscription; a subscribed topic appears, goes or grows). The *assignment epoch* is the
group epoch the target assignment was computed for. A member's *member epoch* is the assignment epoch it has
reconciled to (current_assignment_builder.py). The group's state follows from them:

    Empty         no members
    Assigning     group epoch > assignment epoch (the target is being computed)
    Reconciling   some member is not yet at the assignment epoch, or not Stable
    Stable        every member owns its target at the assignment epoch

`partition_epochs` says which partitions some member still holds (assigned or pending revocation), with that
member's epoch: a partition is free for its next owner only when it is absent here.

This module holds the state and what can be decided from it alone; consumer_group_manager.py changes it. Committed
offsets ride on the group as on a ClassicGroup (`offsets`, `pending_txn`), owned by the OffsetMetadataManager.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping

from ..clock import TimerHandle
from .classic_group import CONSUMER_PROTOCOL_TYPE
from .current_assignment_builder import Assignment, MemberAssignment, MemberState
from .offsets import CommittedOffset, TopicPartition


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


def encode_assignment(a: Mapping[uuid.UUID, frozenset[int]]) -> list[list]:
    return [[t.hex, sorted(ps)] for t, ps in sorted(a.items(), key=lambda kv: kv[0].hex) if ps]


def decode_assignment(rows: Iterable[list]) -> Assignment:
    return {uuid.UUID(hex=t): frozenset(ps) for t, ps in rows}


class ConsumerGroupMember:
    """One member: what it subscribes to, where its assignment stands, and its timers."""

    __slots__ = (
        "member_id", "instance_id", "rack_id", "client_id", "client_host", "rebalance_timeout_ms",
        "server_assignor", "subscribed_topic_names", "subscribed_topic_regex", "assignment",
        "deadline_ms", "timer", "timer_due_ms", "rebalance_timer", "classic",
    )

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.instance_id: str | None = None
        self.rack_id: str | None = None
        self.client_id = ""
        self.client_host = ""
        self.rebalance_timeout_ms = -1
        self.server_assignor: str | None = None
        self.subscribed_topic_names: tuple[str, ...] = ()
        self.subscribed_topic_regex: str | None = None
        self.assignment = MemberAssignment(MemberState.STABLE, 0, 0, {}, {})
        self.deadline_ms = 0
        self.timer: TimerHandle | None = None
        self.timer_due_ms = 0
        self.rebalance_timer: TimerHandle | None = None
        # A classic member (JoinGroup/SyncGroup/Heartbeat) in a consumer-protocol group: its session timeout and
        # its protocols [(name, metadata)] as it last joined; None for a consumer-protocol member.
        self.classic: tuple[int, list[tuple[str, bytes]]] | None = None

    @property
    def member_epoch(self) -> int:
        return self.assignment.member_epoch

    def subscription(self) -> tuple:
        return self.subscribed_topic_names, self.subscribed_topic_regex

    def to_stored(self) -> dict:
        a = self.assignment
        return {
            "id": self.member_id, "instance": self.instance_id, "rack": self.rack_id, "client": self.client_id,
            "host": self.client_host, "rebalance_ms": self.rebalance_timeout_ms, "assignor": self.server_assignor,
            "topics": list(self.subscribed_topic_names), "regex": self.subscribed_topic_regex,
            "state": a.state.value, "epoch": a.member_epoch, "prev": a.previous_member_epoch,
            "assigned": encode_assignment(a.assigned), "revoking": encode_assignment(a.pending_revocation),
            "classic": None if self.classic is None else [
                self.classic[0], [[name, base64.b64encode(meta).decode("ascii")] for name, meta in self.classic[1]]],
        }

    @classmethod
    def from_stored(cls, d: dict) -> ConsumerGroupMember:
        m = cls(d["id"])
        m.instance_id, m.rack_id, m.client_id, m.client_host = d["instance"], d["rack"], d["client"], d["host"]
        m.rebalance_timeout_ms, m.server_assignor = d["rebalance_ms"], d["assignor"]
        m.subscribed_topic_names, m.subscribed_topic_regex = tuple(d["topics"]), d["regex"]
        m.assignment = MemberAssignment(MemberState(d["state"]), d["epoch"], d["prev"],
                                        decode_assignment(d["assigned"]), decode_assignment(d["revoking"]))
        classic = d.get("classic")
        if classic is not None:
            m.classic = (classic[0], [(name, base64.b64decode(meta)) for name, meta in classic[1]])
        return m


class ConsumerGroup:
    """A consumer-protocol group's state; changed by the ConsumerGroupManager and (its offsets) the
    OffsetMetadataManager."""

    protocol_type = CONSUMER_PROTOCOL_TYPE

    def __init__(self, group_id: str, now_ms: int) -> None:
        self.group_id = group_id
        self.state_timestamp_ms = now_ms
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerGroupMember] = {}
        self.static_members: dict[str, str] = {}  # instance id -> member id
        self.target: dict[str, Assignment] = {}  # member id -> target assignment at assignment_epoch
        self.partition_epochs: dict[tuple[uuid.UUID, int], int] = {}
        # topic name -> (topic id, partition count), of the topics the members subscribe to that exist
        self.subscription_metadata: dict[str, tuple[uuid.UUID, int]] = {}
        self.resolved_regexes: dict[str, frozenset[str]] = {}  # regex -> the topic names it matches
        self.metadata_version = -1  # the topic image's version subscription_metadata was computed at
        self.offsets: dict[TopicPartition, CommittedOffset] = {}
        self.pending_txn: dict[int, dict[TopicPartition, CommittedOffset]] = {}
        self.pending_classic: set[str] = set()  # member ids handed to classic members (MEMBER_ID_REQUIRED)

    # -- what the state is -------------------------------------------------------------------------------------

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.assignment.state is not MemberState.STABLE:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    @property
    def subscribed_topics(self) -> frozenset[str]:
        """Every topic name some member subscribes to, by name or through its regex (offset expiry and
        OffsetDelete ask)."""
        names: set[str] = set()
        for m in self.members.values():
            names.update(m.subscribed_topic_names)
            if m.subscribed_topic_regex is not None:
                names.update(self.resolved_regexes.get(m.subscribed_topic_regex, ()))
        return frozenset(names)

    def has_pending_txn(self, tp: TopicPartition) -> bool:
        return any(tp in offsets for offsets in self.pending_txn.values())

    def partition_epoch(self, topic_id: uuid.UUID, partition: int) -> int:
        return self.partition_epochs.get((topic_id, partition), -1)

    def preferred_assignor(self, default: str) -> str:
        """The server assignor most members ask for (Kafka's ConsumerGroup.computePreferredServerAssignor);
        the broker's first configured one when none asks."""
        votes = Counter(m.server_assignor for m in self.members.values() if m.server_assignor)
        if not votes:
            return default
        return max(votes.items(), key=lambda kv: (kv[1], kv[0] == default, kv[0]))[0]

    # -- changing members --------------------------------------------------------------------------------------

    def _hold(self, member: ConsumerGroupMember) -> None:
        a = member.assignment
        for assignment in (a.assigned, a.pending_revocation):
            for t, ps in assignment.items():
                for p in ps:
                    self.partition_epochs[(t, p)] = a.member_epoch

    def _release(self, member: ConsumerGroupMember) -> None:
        a = member.assignment
        for assignment in (a.assigned, a.pending_revocation):
            for t, ps in assignment.items():
                for p in ps:
                    self.partition_epochs.pop((t, p), None)

    def set_assignment(self, member: ConsumerGroupMember, assignment: MemberAssignment) -> None:
        """The member's reconciled assignment, keeping `partition_epochs` in step."""
        self._release(member)
        member.assignment = assignment
        self._hold(member)

    def add_member(self, member: ConsumerGroupMember) -> None:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id
        self._hold(member)

    def remove_member(self, member: ConsumerGroupMember) -> None:
        self._release(member)
        del self.members[member.member_id]
        if member.instance_id is not None and self.static_members.get(member.instance_id) == member.member_id:
            del self.static_members[member.instance_id]
        self.target.pop(member.member_id, None)

    # -- persistence (Kafka's ConsumerGroupMetadata, MemberMetadata, TargetAssignment, CurrentMemberAssignment and
    # PartitionMetadata records, here one record per group) ----------------------------------------------------

    def to_stored(self) -> dict:
        return {
            "epoch": self.group_epoch,
            "assignment_epoch": self.assignment_epoch,
            "state_ms": self.state_timestamp_ms,
            "metadata": [[name, tid.hex, n] for name, (tid, n) in sorted(self.subscription_metadata.items())],
            "members": [m.to_stored() for m in self.members.values()],
            "target": {mid: encode_assignment(a) for mid, a in self.target.items()},
        }

    @classmethod
    def from_stored(cls, group_id: str, d: dict) -> ConsumerGroup:
        group = cls(group_id, d["state_ms"])
        group.group_epoch = d["epoch"]
        group.assignment_epoch = d["assignment_epoch"]
        group.subscription_metadata = {name: (uuid.UUID(hex=tid), n) for name, tid, n in d["metadata"]}
        for md in d["members"]:
            group.add_member(ConsumerGroupMember.from_stored(md))
        group.target = {mid: decode_assignment(rows) for mid, rows in d["target"].items()}
        return group
