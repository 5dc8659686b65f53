"""A share group (KIP-932; Kafka's modern.share.ShareGroup and ShareGroupMember): its epochs, members, target
assignment, and its stored form as Kafka's ShareGroup* records.

A share group uses the consumer group protocol's epochs (consumer_group.py) without its revocation step: a
partition may be assigned to several members at once, since the share-partition hands each record to one of
them under an acquisition lock, so a member moves to its target assignment as soon as it heartbeats (Kafka's
ShareGroupAssignmentBuilder). The *group epoch* goes up when what must be assigned changes (a member joins,
leaves or changes its subscription; a subscribed topic appears, goes or grows); the *assignment epoch* is the
group epoch the target assignment was computed for; a member's *member epoch* is the assignment epoch its
current assignment comes from. The state is Empty without members, Stable with some (Kafka has no other
states for share groups; Dead once deleted).

`state_metadata` is Kafka's ShareGroupStatePartitionMetadata: the share-partitions whose state has been
initialised for the group (kbroker initialises a topic's share-partitions when they are first assigned: the
share-partition state starts them at `share.auto.offset.reset` on their first fetch).

The stored form is the set of records the group's state is (`to_records`), keyed as Kafka keys them; the
manager writes the difference from what it wrote before, tombstones for keys that went.

This module holds the state and what can be decided from it alone; share_group_manager.py changes it.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping

from ..clock import TimerHandle
from . import share_group_records as S

SHARE_PROTOCOL_TYPE = "share"
Assignment = dict[uuid.UUID, frozenset[int]]
_STABLE_MEMBER_STATE = 0  # Kafka's MemberState.STABLE: a share member is never revoking


class ShareGroupState(enum.Enum):
    EMPTY = "Empty"
    STABLE = "Stable"
    DEAD = "Dead"


class ShareGroupMember:
    """One member: what it subscribes to, its current assignment and its session timer."""

    __slots__ = ("member_id", "rack_id", "client_id", "client_host", "subscribed_topic_names", "member_epoch",
                 "previous_member_epoch", "assigned", "deadline_ms", "timer", "timer_due_ms")

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.rack_id: str | None = None
        self.client_id = ""
        self.client_host = ""
        self.subscribed_topic_names: tuple[str, ...] = ()
        self.member_epoch = 0
        self.previous_member_epoch = -1
        self.assigned: Assignment = {}
        self.deadline_ms = 0
        self.timer: TimerHandle | None = None
        self.timer_due_ms = 0


class ShareGroup:
    """A share group's state; changed by the ShareGroupManager only."""

    protocol_type = SHARE_PROTOCOL_TYPE

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.metadata_hash = 0
        self.assignment_epoch = 0
        self.members: dict[str, ShareGroupMember] = {}
        self.target: dict[str, Assignment] = {}  # member id -> target assignment at assignment_epoch
        # topic name -> (topic id, partition count), of the subscribed topics that exist
        self.subscription_metadata: dict[str, tuple[uuid.UUID, int]] = {}
        self.metadata_version = -1  # the topic image's version subscription_metadata was computed at
        self.state_metadata = S.StatePartitionMetadata()
        self.written: dict[bytes, bytes] = {}  # the records last written for the group: key -> value

    @property
    def state(self) -> ShareGroupState:
        return ShareGroupState.STABLE if self.members else ShareGroupState.EMPTY

    @property
    def subscribed_topics(self) -> frozenset[str]:
        return frozenset(name for m in self.members.values() for name in m.subscribed_topic_names)

    def assigned_partitions(self, member_id: str) -> Assignment:
        m = self.members.get(member_id)
        return dict(m.assigned) if m is not None else {}

    def members_of(self, topic_id: uuid.UUID, partition: int) -> list[str]:
        """The members currently assigned the partition."""
        return sorted(m.member_id for m in self.members.values() if partition in m.assigned.get(topic_id, ()))

    # -- the stored form ---------------------------------------------------------------------------------------

    def to_records(self) -> dict[bytes, bytes]:
        g = self.group_id
        out = {S.key(S.GROUP_METADATA, g): S.group_metadata_value(self.group_epoch, self.metadata_hash),
               S.key(S.TARGET_ASSIGNMENT_METADATA, g): S.target_assignment_metadata_value(self.assignment_epoch)}
        sm = self.state_metadata
        if sm.initializing or sm.initialized or sm.deleting:
            out[S.key(S.STATE_PARTITION_METADATA, g)] = S.state_partition_metadata_value(sm)
        for m in self.members.values():
            out[S.key(S.MEMBER_METADATA, g, m.member_id)] = S.member_metadata_value(S.MemberMetadata(
                m.rack_id, m.client_id, m.client_host, m.subscribed_topic_names))
            out[S.key(S.CURRENT_MEMBER_ASSIGNMENT, g, m.member_id)] = S.current_assignment_value(S.CurrentAssignment(
                m.member_epoch, m.previous_member_epoch, _STABLE_MEMBER_STATE, m.assigned))
        for member_id, target in self.target.items():
            if member_id in self.members:
                out[S.key(S.TARGET_ASSIGNMENT_MEMBER, g, member_id)] = S.target_assignment_member_value(target)
        return out

    def changed_records(self) -> list[tuple[bytes, bytes | None]]:
        """What to write so that the stored records are `to_records()`: new and changed values, tombstones."""
        now = self.to_records()
        out: list[tuple[bytes, bytes | None]] = [(k, v) for k, v in now.items() if self.written.get(k) != v]
        out += [(k, None) for k in self.written if k not in now]
        return out

    def tombstones(self) -> list[tuple[bytes, bytes | None]]:
        """Every record of the group deleted (DeleteGroups)."""
        return [(k, None) for k in self.written]

    @classmethod
    def from_records(cls, group_id: str, records: Mapping[bytes, bytes]) -> ShareGroup:
        """The group as its latest records say (load after a restart or a leadership move); `records`: the
        group's keys and their latest values, in the order written."""
        group = cls(group_id)
        for raw, v in records.items():
            k = S.decode_key(raw)
            if k.record_type == S.GROUP_METADATA:
                group.group_epoch, group.metadata_hash = S.decode_group_metadata(v)
            elif k.record_type == S.TARGET_ASSIGNMENT_METADATA:
                group.assignment_epoch = S.decode_target_assignment_metadata(v)
            elif k.record_type == S.STATE_PARTITION_METADATA:
                group.state_metadata = S.decode_state_partition_metadata(v)
            elif k.record_type == S.TARGET_ASSIGNMENT_MEMBER:
                group.target[k.member_id] = S.decode_target_assignment_member(v)
            elif k.record_type == S.MEMBER_METADATA:
                md = S.decode_member_metadata(v)
                m = group.members.setdefault(k.member_id, ShareGroupMember(k.member_id))
                m.rack_id, m.client_id, m.client_host = md.rack_id, md.client_id, md.client_host
                m.subscribed_topic_names = md.subscribed_topic_names
            elif k.record_type == S.CURRENT_MEMBER_ASSIGNMENT:
                a = S.decode_current_assignment(v)
                m = group.members.setdefault(k.member_id, ShareGroupMember(k.member_id))
                m.member_epoch, m.previous_member_epoch, m.assigned = a.member_epoch, a.previous_member_epoch, \
                    a.assigned
        group.target = {mid: t for mid, t in group.target.items() if mid in group.members}
        group.written = dict(records)
        return group
