"""Server-side assignors of the consumer group protocol (KIP-848): `uniform` and `range`, as Kafka's
UniformAssignor and RangeAssignor. Pure functions, no state.

An assignor gets every member's subscribed topics (by id) and its current *target* assignment, and the
partition count of each subscribed topic; it returns the new target assignment of every member. Members then
reconcile towards it (current_assignment_builder.py), so stickiness here is what keeps partitions from moving.

`uniform`: every partition goes to a member subscribed to its topic; partitions a member had stay with it while
that keeps the group balanced (counts differ by at most one among members who could swap), the rest go to the
least loaded eligible member, then partitions move from the most to the least loaded until no move helps. Kafka
splits this into an optimized homogeneous builder and a general one; for the group sizes kbroker serves one
greedy builder gives the same balance.

`range`: per topic, the subscribed members in order (instance id, else member id) each get a contiguous share,
the first `partitions % members` one partition more: members subscribed to co-partitioned topics get the same
partition numbers of each. As Kafka's (3.5+) server-side RangeAssignor it is sticky: a member keeps the partitions
it had, up to its share, and only the rest are handed out in ranges.

`simple` (share groups, KIP-932; Kafka's SimpleAssignor): a partition may go to several members. Per topic, with
S subscribed members and P partitions, each partition gets ceil(S / P) members (one when P >= S), and each
member about the same number of them; a member keeps what it had while the partition is not over-shared and the
member not over-loaded, the rest goes to the least loaded members not holding the partition yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

Assignment = dict[uuid.UUID, frozenset[int]]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """What an assignor knows of a member."""

    subscribed_topic_ids: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, frozenset[int]]  # the member's target assignment so far
    instance_id: str | None = None


def _freeze(assignment: dict[uuid.UUID, set[int]]) -> Assignment:
    return {t: frozenset(ps) for t, ps in assignment.items() if ps}


def uniform_assign(members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]) -> dict[str, Assignment]:
    """`partitions`: topic id -> partition count, for the topics the group subscribes to."""
    order = sorted(members)
    owned: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in order}
    count = dict.fromkeys(order, 0)
    owner: dict[tuple[uuid.UUID, int], str] = {}
    eligible = {t: [m for m in order if t in members[m].subscribed_topic_ids] for t in partitions}
    total = sum(n for t, n in partitions.items() if eligible[t])
    # A member keeps its partitions up to the balanced share (+1 for as many members as the remainder allows).
    share, extra = divmod(total, len(order)) if order else (0, 0)
    for m in order:
        spec = members[m]
        for t in sorted(spec.current, key=str):
            if t not in spec.subscribed_topic_ids or t not in partitions:
                continue
            for p in sorted(spec.current[t]):
                if p >= partitions[t] or (t, p) in owner:
                    continue
                limit = share + (1 if extra > 0 else 0)
                if count[m] >= limit:
                    continue
                if count[m] == share and extra > 0:
                    extra -= 1
                owner[(t, p)] = m
                owned[m].setdefault(t, set()).add(p)
                count[m] += 1
    for t in sorted(partitions, key=str):
        candidates = eligible[t]
        if not candidates:
            continue
        for p in range(partitions[t]):
            if (t, p) in owner:
                continue
            m = min(candidates, key=lambda c: (count[c], c))
            owner[(t, p)] = m
            owned[m].setdefault(t, set()).add(p)
            count[m] += 1
    _balance(owned, count, owner, eligible)
    return {m: _freeze(owned[m]) for m in order}


def _balance(owned: dict[str, dict[uuid.UUID, set[int]]], count: dict[str, int],
             owner: dict[tuple[uuid.UUID, int], str], eligible: dict[uuid.UUID, list[str]]) -> None:
    """Moves partitions from a more loaded to a less loaded eligible member while the counts differ by two or
    more (heterogeneous subscriptions can leave such pairs after the greedy pass)."""
    moved = True
    while moved:
        moved = False
        for (t, p), m in sorted(owner.items(), key=lambda kv: (-count[kv[1]], str(kv[0][0]), kv[0][1])):
            target = min(eligible[t], key=lambda c: (count[c], c))
            if count[m] - count[target] >= 2:
                owned[m][t].discard(p)
                owned[target].setdefault(t, set()).add(p)
                owner[(t, p)] = target
                count[m] -= 1
                count[target] += 1
                moved = True
                break


def range_assign(members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]) -> dict[str, Assignment]:
    owned: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    for t, n in partitions.items():
        subscribed = sorted((m for m, s in members.items() if t in s.subscribed_topic_ids),
                            key=lambda m: (members[m].instance_id is None, members[m].instance_id or m, m))
        if not subscribed:
            continue
        share, extra = divmod(n, len(subscribed))
        quota = {m: share + (1 if i < extra else 0) for i, m in enumerate(subscribed)}
        taken: set[int] = set()
        for m in subscribed:
            kept = sorted(p for p in members[m].current.get(t, ()) if p < n and p not in taken)[:quota[m]]
            owned[m][t] = set(kept)
            taken.update(kept)
        free = iter(p for p in range(n) if p not in taken)
        for m in subscribed:
            while len(owned[m][t]) < quota[m]:
                owned[m][t].add(next(free))
    return {m: _freeze(a) for m, a in owned.items()}


ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}


def simple_assign(members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]) -> dict[str, Assignment]:
    """The share groups' assignor (see the module docstring); `partitions`: topic id -> partition count."""
    order = sorted(members)
    owned: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in order}
    load = dict.fromkeys(order, 0)
    for t in sorted(partitions, key=str):
        n = partitions[t]
        subscribed = [m for m in order if t in members[m].subscribed_topic_ids]
        if not subscribed or n <= 0:
            continue
        sharing = -(-len(subscribed) // n)
        # Each member holds `base` partitions of the topic, `extra` of them one more.
        base, extra = divmod(sharing * n, len(subscribed))
        holders: dict[int, set[str]] = {p: set() for p in range(n)}
        count = dict.fromkeys(subscribed, 0)

        def room(m: str) -> bool:
            return count[m] < base or (count[m] == base and extra > 0)

        def take(m: str, p: int) -> None:
            nonlocal extra
            if count[m] == base:
                extra -= 1
            holders[p].add(m)
            count[m] += 1

        for m in subscribed:
            for p in sorted(members[m].current.get(t, ())):
                if p < n and len(holders[p]) < sharing and room(m):
                    take(m, p)
        for p in range(n):
            while len(holders[p]) < sharing:
                free = [m for m in subscribed if m not in holders[p]]
                m = min([m for m in free if room(m)] or free, key=lambda c: (count[c], load[c], c))
                take(m, p)
        for p, ms in holders.items():
            for m in ms:
                owned[m].setdefault(t, set()).add(p)
        for m in subscribed:
            load[m] += count[m]
    return {m: _freeze(owned[m]) for m in order}


SHARE_ASSIGNORS = {"simple": simple_assign}
