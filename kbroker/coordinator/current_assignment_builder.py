"""Reconciliation of a consumer-protocol member's assignment towards its target (Kafka's CurrentAssignmentBuilder,
KIP-848). A pure function of the member's state, the group's target and who owns what.

The member moves through three states:

    STABLE                 its epoch is the target epoch and it owns exactly its target partitions
    UNREVOKED_PARTITIONS   it must give partitions up first: it stays at its epoch, is told to keep only the
                           partitions it keeps, and stays here until a heartbeat shows it no longer owns the
                           revoked ones (or it says nothing of what it owns: then we wait)
    UNRELEASED_PARTITIONS  it is at the target epoch but some of its target partitions are still owned by other
                           members (assigned to them or pending their revocation): it gets them as they are freed

A partition is given to its new owner only once no member holds it (`partition_epoch` is -1): that is what stops
two members consuming the same partition during a rebalance.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Assignment = dict[uuid.UUID, frozenset[int]]


class MemberState(enum.Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True, slots=True)
class MemberAssignment:
    """The part of a member that reconciliation changes."""

    state: MemberState
    member_epoch: int
    previous_member_epoch: int
    assigned: Mapping[uuid.UUID, frozenset[int]]
    pending_revocation: Mapping[uuid.UUID, frozenset[int]]

    def with_epoch(self, state: MemberState, epoch: int, assigned: Assignment,
                   pending_revocation: Assignment) -> MemberAssignment:
        """Kafka's Builder.updateMemberEpoch: the previous epoch follows the current one."""
        return MemberAssignment(state, epoch, self.member_epoch, assigned, pending_revocation)


def owns_any(owned: Mapping[uuid.UUID, frozenset[int]] | None, partitions: Mapping[uuid.UUID, frozenset[int]]) -> bool:
    """Whether the member still owns any of `partitions`; a member that did not say what it owns (None) may."""
    if owned is None:
        return True
    return any(partitions.get(t, frozenset()) & ps for t, ps in owned.items())


def reconcile(
    member: MemberAssignment,
    target_epoch: int,
    target: Mapping[uuid.UUID, frozenset[int]],
    partition_epoch: Callable[[uuid.UUID, int], int],
    owned: Mapping[uuid.UUID, frozenset[int]] | None,
) -> MemberAssignment:
    """The member's next assignment state. `owned` is what the member's heartbeat says it owns (None: not said).
    `partition_epoch(topic_id, partition)` is the epoch of the member holding it, -1 when nobody does."""
    if member.state is MemberState.STABLE:
        if member.member_epoch != target_epoch:
            return _next(member, target_epoch, target, partition_epoch, owned)
        return member
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if owns_any(owned, member.pending_revocation):
            return member
        return _next(member, target_epoch, target, partition_epoch, owned)
    return _next(member, target_epoch, target, partition_epoch, owned)


def _next(
    member: MemberAssignment,
    target_epoch: int,
    target: Mapping[uuid.UUID, frozenset[int]],
    partition_epoch: Callable[[uuid.UUID, int], int],
    owned: Mapping[uuid.UUID, frozenset[int]] | None,
) -> MemberAssignment:
    assigned: Assignment = {}
    revoke: Assignment = {}
    unreleased = False
    for t in set(target) | set(member.assigned):
        want = target.get(t, frozenset())
        have = member.assigned.get(t, frozenset())
        keep = have & want
        gone = have - want
        new = set()
        for p in want - have:
            if partition_epoch(t, p) == -1:
                new.add(p)
            else:
                unreleased = True
        if keep:
            assigned[t] = keep
        if gone:
            revoke[t] = gone
        if new:
            # New partitions are only handed out at the target epoch, after any revocation (below).
            assigned[t] = assigned.get(t, frozenset()) | frozenset(new)
    if revoke and owns_any(owned, revoke):
        # Revoke first: the member stays at its epoch and keeps only what it keeps; nothing new yet.
        kept = {t: ps & target.get(t, frozenset()) & member.assigned.get(t, frozenset()) for t, ps in assigned.items()}
        return member.with_epoch(MemberState.UNREVOKED_PARTITIONS, member.member_epoch,
                                 {t: ps for t, ps in kept.items() if ps}, revoke)
    state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    return member.with_epoch(state, target_epoch, assigned, {})
