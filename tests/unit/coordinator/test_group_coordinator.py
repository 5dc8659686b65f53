"""The classic group coordinator, on a ManualClock: every state transition and error of the group protocols.

Each test reads as a scenario. Replies are read with done()/result() (no loop needed); a few tests await them
from asyncio tasks to show that the clock completes waiting requests.
"""

import asyncio
import struct
import time

import pytest

import kbroker.coordinator.group as G
from kbroker.errors import ErrorCode
from kbroker.clock import AsyncioClock, ManualClock
from kbroker.coordinator import (
    FileOffsetStore,
    GroupConfig,
    GroupCoordinator,
    JoinMember,
    MemoryOffsetStore,
    OffsetAndMetadata,
)

SESSION_MS = 10_000
REBALANCE_MS = 30_000
RANGE = [("range", b"range-meta")]
BOTH = [("range", b"range-meta"), ("roundrobin", b"rr-meta")]


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, topics, null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def coordinator(clock=None, store=None, **config):
    clock = clock or ManualClock()
    coord = GroupCoordinator(clock, GroupConfig(**config), store or MemoryOffsetStore())
    coord.load()
    return clock, coord


def join(coord, member="", group="g", instance=None, client="client", session=SESSION_MS, rebalance=REBALANCE_MS,
         ptype="consumer", protocols=RANGE, require_known=False, **kw):
    return coord.join_group(group, member, instance, client, "/127.0.0.1", session, rebalance, ptype, protocols,
                            require_known, **kw)


def sync(coord, generation, member, assignments=None, group="g", instance=None, ptype=None, pname=None):
    return coord.sync_group(group, generation, member, instance, ptype, pname, assignments or {})


def ok(reply):
    assert reply.done(), "reply still waiting"
    result = reply.result()
    assert result.error_code == ErrorCode.NONE, result
    return result


def stable_group(coord, n, group="g", protocols=RANGE, instances=None, **kw):
    """n members in one Stable generation, joined with group.initial.rebalance.delay.ms = 0: the first member's
    join completes at once, the others wait for it to rejoin (as a heartbeat would tell it to)."""
    instances = instances or [None] * n
    first_reply = join(coord, group=group, client="c0", protocols=protocols, instance=instances[0], **kw)
    first = ok(first_reply)
    replies = [join(coord, group=group, client=f"c{i}", protocols=protocols, instance=instances[i], **kw)
               for i in range(1, n)]
    if n == 1:
        replies = [first_reply]
    else:
        assert coord.group_state(group) == "PreparingRebalance"
        assert not any(r.done() for r in replies)
        replies.insert(0, join(coord, first.member_id, group=group, protocols=protocols, instance=instances[0],
                               **kw))
    results = [ok(r) for r in replies]
    leader = results[0].leader
    gen = results[0].generation_id
    assignments = {r.member_id: f"assign-{r.member_id}".encode() for r in results}
    followers = [sync(coord, gen, r.member_id, group=group) for r in results if r.member_id != leader]
    ok(sync(coord, gen, leader, assignments, group=group))
    for f in followers:
        ok(f)
    assert coord.group_state(group) == "Stable"
    return gen, leader, [r.member_id for r in results], assignments


# -- the basics ---------------------------------------------------------------------------------------------------


def test_config_from_kafka_property_names():
    config = GroupConfig.from_mapping({"group.max.size": "5", "group.initial.rebalance.delay.ms": 3000,
                                       "log.dirs": "/tmp"})
    assert config.group_max_size == 5 and config.group_initial_rebalance_delay_ms == 3000
    assert config.group_min_session_timeout_ms == 6000 and config.offsets_retention_minutes == 10080
    assert GroupConfig().group_initial_rebalance_delay_ms == 0  # kbroker's default, not Kafka's 3000


def test_manual_clock_runs_due_callbacks_in_order():
    clock = ManualClock(start_ms=0)
    seen = []
    clock.call_later(20, lambda: seen.append(("b", clock.now_ms())))
    clock.call_later(10, lambda: (seen.append(("a", clock.now_ms())),
                                  clock.call_later(5, lambda: seen.append(("a2", clock.now_ms())))))
    clock.call_later(10, lambda: seen.append(("a'", clock.now_ms())))
    clock.call_later(30, lambda: seen.append("never")).cancel()
    clock.advance(25)
    assert seen == [("a", 10), ("a'", 10), ("a2", 15), ("b", 20)]
    assert clock.now_ms() == 25 and clock.pending() == 0


def test_asyncio_clock_fires_on_the_loop():
    async def main():
        clock = AsyncioClock()
        fired = asyncio.Event()
        clock.call_later(1, fired.set)
        clock.call_later(1, lambda: pytest.fail("cancelled")).cancel()
        await asyncio.wait_for(fired.wait(), 1)
        assert abs(clock.now_ms() - time.time() * 1000) < 1000

    asyncio.run(main())


def test_requests_wait_for_the_load():
    clock = ManualClock()
    store = MemoryOffsetStore()
    store.commit_offsets("g", {("t", 0): G.CommittedOffset(42)})
    coord = GroupCoordinator(clock, None, store)
    assert coord.is_loading
    L = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert join(coord).result().error_code == L
    assert sync(coord, 1, "m").result().error_code == L
    assert coord.heartbeat("g", 1, "m", None) == L
    assert coord.leave_group("g", [("m", None, None)]).error_code == L
    assert coord.commit_offsets("g", -1, "", None, {("t", 0): (1, -1, "")}) == {("t", 0): L}
    assert coord.fetch_offsets("g", [("t", 0)]).error_code == L
    assert coord.delete_offsets("g", [("t", 0)]).error_code == L
    assert coord.describe_group("g").error_code == L
    assert coord.list_groups().error_code == L
    assert coord.delete_groups(["g"]) == {"g": L}
    assert coord.prepare_txn_offsets(1, "g", {("t", 0): (1, -1, "")}) == {("t", 0): L}
    assert coord.complete_txn_offsets(1, "g", True) == L
    coord.load()
    assert not coord.is_loading
    assert coord.fetch_offsets("g", [("t", 0)]).offsets == {("t", 0): OffsetAndMetadata(42, -1, "")}


def test_on_the_real_clock_inside_a_loop():
    # What the broker does: the coordinator built and loaded on the running loop, requests from tasks.
    async def main():
        coord = GroupCoordinator(AsyncioClock(), {"group.min.session.timeout.ms": 10})
        coord.load()
        a = await join(coord, client="a", session=10_000)
        b_join = asyncio.ensure_future(join(coord, client="b", session=10_000))
        await asyncio.sleep(0)
        assert coord.heartbeat("g", a.generation_id, a.member_id, None) == ErrorCode.REBALANCE_IN_PROGRESS
        a2 = await join(coord, a.member_id, session=10_000)
        b = await b_join
        assert a2.generation_id == b.generation_id == 2
        followers = asyncio.ensure_future(sync(coord, 2, b.member_id))
        assert (await sync(coord, 2, a.member_id, {b.member_id: b"for-b"})).error_code == ErrorCode.NONE
        assert (await followers).assignment == b"for-b"
        # A short session really expires on the loop's timer.
        c = await join(coord, group="short", session=20, rebalance=20)
        await asyncio.sleep(0.1)
        assert coord.heartbeat("short", c.generation_id, c.member_id, None) == ErrorCode.UNKNOWN_MEMBER_ID
        coord.close()

    asyncio.run(main())


# -- one member -----------------------------------------------------------------------------------------------------


def test_single_member_join_sync_heartbeat():
    clock, coord = coordinator()
    reply = join(coord, client="app")
    result = ok(reply)  # initial delay 0: a brand-new group completes at once
    assert result.member_id.startswith("app-") and len(result.member_id) == len("app-") + 36
    assert result.generation_id == 1 and result.leader == result.member_id
    assert result.protocol_type == "consumer" and result.protocol_name == "range"
    assert result.members == [JoinMember(result.member_id, None, b"range-meta")]
    assert result.skip_assignment is False
    assert coord.group_state("g") == "CompletingRebalance"
    assert coord.heartbeat("g", 1, result.member_id, None) == ErrorCode.NONE  # NONE while CompletingRebalance

    s = ok(sync(coord, 1, result.member_id, {result.member_id: b"mine"}, ptype="consumer", pname="range"))
    assert (s.protocol_type, s.protocol_name, s.assignment) == ("consumer", "range", b"mine")
    assert coord.group_state("g") == "Stable"
    assert coord.heartbeat("g", 1, result.member_id, None) == ErrorCode.NONE

    desc = coord.describe_group("g")
    assert (desc.state, desc.protocol_type, desc.protocol) == ("Stable", "consumer", "range")
    (m,) = desc.members
    assert (m.member_id, m.client_id, m.client_host, m.metadata, m.assignment) == (
        result.member_id, "app", "/127.0.0.1", b"range-meta", b"mine")

    # A follower-less leader rejoining forces a rebalance, which completes at once: every member has rejoined.
    again = ok(join(coord, result.member_id))
    assert again.generation_id == 2 and coord.group_state("g") == "CompletingRebalance"


def test_awaiting_replies_from_asyncio_tasks():
    async def main():
        clock, coord = coordinator(group_initial_rebalance_delay_ms=100)
        tasks = [asyncio.ensure_future(join(coord, client=f"c{i}")) for i in range(3)]
        await asyncio.sleep(0)
        clock.advance(199)  # joins during the delay extend it once more: 2 x 100 ms
        await asyncio.sleep(0)
        assert not any(t.done() for t in tasks)
        clock.advance(1)
        results = await asyncio.gather(*tasks)
        assert {r.generation_id for r in results} == {1}
        leader = results[0].leader
        followers = [asyncio.ensure_future(sync(coord, 1, r.member_id)) for r in results if r.member_id != leader]
        await asyncio.sleep(0)
        assert not any(f.done() for f in followers)  # followers wait for the leader's assignment
        assignments = {r.member_id: r.member_id.encode() for r in results}
        leader_sync = await sync(coord, 1, leader, assignments)
        assert leader_sync.assignment == leader.encode()
        for f in followers:
            assert (await f).error_code == ErrorCode.NONE

    asyncio.run(main())


# -- several members ------------------------------------------------------------------------------------------------


def test_three_members_join_one_generation_and_each_gets_its_assignment():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=3000)
    replies = [join(coord, client=f"c{i}", protocols=[("range", f"meta{i}".encode())]) for i in range(3)]
    assert coord.group_state("g") == "PreparingRebalance"
    # Members arrived during the delay, so it is extended once more (Kafka's InitialDelayedJoin).
    clock.advance(5999)
    assert not any(r.done() for r in replies)
    clock.advance(1)
    results = [ok(r) for r in replies]
    assert {r.generation_id for r in results} == {1}
    leader = results[0].leader
    assert leader == results[0].member_id  # the first to join leads
    assert {r.leader for r in results} == {leader}
    assert results[0].members == [JoinMember(r.member_id, None, f"meta{i}".encode()) for i, r in enumerate(results)]
    assert results[1].members == [] and results[2].members == []

    f1, f2 = (sync(coord, 1, r.member_id) for r in results[1:])
    assert not f1.done() and not f2.done()
    assignments = {r.member_id: f"a{i}".encode() for i, r in enumerate(results)}
    assert ok(sync(coord, 1, leader, assignments)).assignment == b"a0"
    assert ok(f1).assignment == b"a1" and ok(f2).assignment == b"a2"
    # A follower syncing after the group is Stable gets its assignment straight away.
    assert ok(sync(coord, 1, results[2].member_id)).assignment == b"a2"


def test_with_no_initial_delay_joins_complete_as_soon_as_everyone_known_has_joined():
    clock, coord = coordinator()
    gen, leader, members, _ = stable_group(coord, 3)
    assert gen == 2  # the first member's generation 1, then all three
    assert clock.pending() > 0 and coord.group_state("g") == "Stable"
    # No clock movement was needed anywhere above.


def test_the_initial_delay_extends_while_members_arrive_up_to_the_rebalance_timeout():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=100)
    a = join(coord, client="a", rebalance=250)
    clock.advance(90)
    b = join(coord, client="b", rebalance=250)  # a new member: the delay is extended by another 100 ms
    clock.advance(10)
    assert not a.done()
    clock.advance(60)
    c = join(coord, client="c", rebalance=250)
    clock.advance(40)  # t=200: extended again, but only 50 ms are left of the 250 ms rebalance timeout
    assert not a.done()
    clock.advance(49)
    assert not a.done()
    clock.advance(1)
    assert {ok(r).generation_id for r in (a, b, c)} == {1}


def test_a_member_joining_a_stable_group_rebalances_it_and_waiting_syncs_are_told_so():
    clock, coord = coordinator()
    a = ok(join(coord, client="a"))
    a_sync = sync(coord, 1, a.member_id)  # (the leader would not wait, but a follower would; same path)
    assert a_sync.done()  # the leader's own sync completes the generation
    b = join(coord, client="b")
    assert coord.group_state("g") == "PreparingRebalance" and not b.done()
    assert coord.heartbeat("g", 1, a.member_id, None) == ErrorCode.REBALANCE_IN_PROGRESS
    assert sync(coord, 1, a.member_id).result().error_code == ErrorCode.REBALANCE_IN_PROGRESS
    ra = ok(join(coord, a.member_id))
    rb = ok(b)
    assert ra.generation_id == rb.generation_id == 2

    # A member joining during CompletingRebalance: the follower's waiting sync is answered REBALANCE_IN_PROGRESS.
    b_sync = sync(coord, 2, rb.member_id)
    assert not b_sync.done()
    c = join(coord, client="c")
    assert b_sync.result().error_code == ErrorCode.REBALANCE_IN_PROGRESS
    assert coord.group_state("g") == "PreparingRebalance"
    join(coord, ra.member_id)
    join(coord, rb.member_id)
    assert ok(c).generation_id == 3


def test_protocol_election_by_preference():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=10)
    r1 = join(coord, client="a", protocols=[("range", b"a-r"), ("roundrobin", b"a-rr"), ("sticky", b"a-s")])
    r2 = join(coord, client="b", protocols=[("roundrobin", b"b-rr"), ("range", b"b-r")])
    r3 = join(coord, client="c", protocols=[("sticky", b"c-s"), ("roundrobin", b"c-rr"), ("range", b"c-r")])
    clock.advance(20)
    # sticky is not supported by b; of range and roundrobin, roundrobin has two first choices.
    leader = ok(r1)
    assert {ok(r).protocol_name for r in (r1, r2, r3)} == {"roundrobin"}
    assert [m.metadata for m in leader.members] == [b"a-rr", b"b-rr", b"c-rr"]


def test_inconsistent_group_protocol():
    clock, coord = coordinator()
    ok(join(coord, protocols=BOTH))
    assert join(coord, ptype="connect").result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, protocols=[("sticky", b"")]).result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, group="other", protocols=[]).result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, group="other", ptype="").result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert not join(coord, protocols=[("roundrobin", b"")]).done()  # one in common is enough


def test_a_known_member_must_stay_compatible():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    assert join(coord, b, protocols=[("sticky", b"")]).result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, b, ptype="connect").result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert coord.group_state("g") == "Stable"
    # A pending member's id is no static member's.
    pending = join(coord, client="new", require_known=True).result().member_id
    assert join(coord, pending, instance="i-x").result().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert join(coord, pending, protocols=[("sticky", b"")]).result().error_code == \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_a_lone_member_may_change_its_protocols():
    clock, coord = coordinator()
    a = ok(join(coord, protocols=RANGE))
    assert ok(join(coord, a.member_id, protocols=[("cooperative-sticky", b"")])).protocol_name == "cooperative-sticky"


def test_invalid_session_timeout_and_group_id():
    clock, coord = coordinator()
    assert join(coord, session=5999).result().error_code == ErrorCode.INVALID_SESSION_TIMEOUT
    assert join(coord, session=1_800_001).result().error_code == ErrorCode.INVALID_SESSION_TIMEOUT
    ok(join(coord, session=6000))
    assert join(coord, group="").result().error_code == ErrorCode.INVALID_GROUP_ID
    assert sync(coord, 1, "m", group="").result().error_code == ErrorCode.INVALID_GROUP_ID
    assert coord.heartbeat("", 1, "m", None) == ErrorCode.INVALID_GROUP_ID
    # OffsetCommit and OffsetFetch accept the empty group id (Kafka keeps that for old clients).
    assert coord.commit_offsets("", -1, "", None, {("t", 0): (1, -1, "")}) == {("t", 0): ErrorCode.NONE}
    assert coord.fetch_offsets("", [("t", 0)]).offsets[("t", 0)].offset == 1


def test_group_max_size():
    clock, coord = coordinator(group_max_size=2)
    gen, leader, (a, b), _ = stable_group(coord, 2)
    assert join(coord, client="c").result().error_code == ErrorCode.GROUP_MAX_SIZE_REACHED
    assert coord.group_state("g") == "Stable"  # turned away: no rebalance
    # While preparing a rebalance, the members that rejoined count: the last to come are turned away.
    ra = join(coord, a)
    rb = join(coord, b)
    assert ok(ra).generation_id == ok(rb).generation_id == gen + 1
    ok(sync(coord, gen + 1, a, {}))
    ra = join(coord, a)
    rd = join(coord, client="d")  # one member has rejoined so far: room for d
    assert not rd.done()
    assert join(coord, b).result().error_code == ErrorCode.GROUP_MAX_SIZE_REACHED  # b came back too late, and is out
    assert ok(ra).generation_id == ok(rd).generation_id == gen + 2
    assert [m.member_id for m in ok(ra).members] == [a, ok(rd).member_id]


def test_unknown_member_and_unknown_group():
    clock, coord = coordinator()
    assert join(coord, "nobody", group="new").result().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert coord.group_state("new") is None
    assert sync(coord, 1, "nobody", group="new").result().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("new", 1, "nobody", None) == ErrorCode.UNKNOWN_MEMBER_ID
    gen, leader, _, _ = stable_group(coord, 1)
    assert join(coord, "nobody").result().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("g", gen, "nobody", None) == ErrorCode.UNKNOWN_MEMBER_ID


# -- MEMBER_ID_REQUIRED (KIP-394) -----------------------------------------------------------------------------------


def test_member_id_required_then_join_with_it():
    clock, coord = coordinator()
    first = join(coord, client="app", require_known=True).result()
    assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED and first.member_id.startswith("app-")
    assert coord.group_state("g") == "Empty"
    result = ok(join(coord, first.member_id, require_known=True))
    assert result.member_id == first.member_id and result.generation_id == 1


def test_a_pending_member_that_never_joins_expires():
    clock, coord = coordinator()
    pending = join(coord, require_known=True).result().member_id
    clock.advance(SESSION_MS)
    assert join(coord, pending, require_known=True).result().error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_rebalance_waits_for_pending_members():
    clock, coord = coordinator()
    gen, leader, _, _ = stable_group(coord, 1)
    pending = join(coord, client="new", require_known=True).result().member_id
    assert coord.group_state("g") == "Stable"  # being told your id does not rebalance the group
    leader_join = join(coord, leader)
    assert not leader_join.done()  # the pending member has yet to join
    new = join(coord, pending, require_known=True)
    assert ok(leader_join).generation_id == ok(new).generation_id == gen + 1
    # And a pending member that expires lets the rebalance complete without it.
    ok(sync(coord, gen + 1, leader, {}))
    other = join(coord, client="late", require_known=True).result().member_id
    r = join(coord, leader)
    join(coord, pending)
    assert not r.done()
    clock.advance(SESSION_MS)
    assert ok(r).generation_id == gen + 2
    assert join(coord, other).result().error_code == ErrorCode.UNKNOWN_MEMBER_ID


# -- members leaving ------------------------------------------------------------------------------------------------


def test_leave_rebalances_and_the_last_leave_empties_the_group():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    result = coord.leave_group("g", [(b, None, "shutting down")])
    assert result.error_code == ErrorCode.NONE and result.members == [G.MemberLeaveResult(b, None, ErrorCode.NONE)]
    assert coord.group_state("g") == "PreparingRebalance"
    assert coord.heartbeat("g", gen, a, None) == ErrorCode.REBALANCE_IN_PROGRESS
    assert coord.heartbeat("g", gen, b, None) == ErrorCode.UNKNOWN_MEMBER_ID
    assert ok(join(coord, a)).generation_id == gen + 1
    assert coord.leave_group("g", [(a, None, None)]).members[0].error_code == ErrorCode.NONE
    assert coord.group_state("g") == "Empty"
    assert coord.generation_id("g") == gen + 2
    desc = coord.describe_group("g")
    assert (desc.state, desc.protocol, desc.members) == ("Empty", "", [])


def test_a_pending_member_may_leave():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    pending = join(coord, client="new", require_known=True).result().member_id
    ra = join(coord, a)
    assert not ra.done()
    assert coord.leave_group("g", [(pending, None, None)]).members[0].error_code == ErrorCode.NONE
    assert ok(ra).generation_id == gen + 1
    assert join(coord, pending).result().error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_leave_errors_and_batches():
    clock, coord = coordinator()
    assert coord.leave_group("nope", [("m", None, None)]).members == [
        G.MemberLeaveResult("m", None, ErrorCode.UNKNOWN_MEMBER_ID)]
    gen, leader, (a, b, c), _ = stable_group(coord, 3, instances=[None, "i-b", "i-c"])
    result = coord.leave_group("g", [("ghost", None, None), (b, "i-b", None), ("", "i-c", "admin"),
                                     ("", "i-none", None), ("stale", "i-b", None)])
    assert [m.error_code for m in result.members] == [
        ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.NONE, ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.UNKNOWN_MEMBER_ID]
    assert [m.member_id for m in coord.describe_group("g").members] == [a]


def test_a_member_leaving_mid_rebalance_lets_it_complete():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    ra = join(coord, a)
    assert not ra.done()
    coord.leave_group("g", [(b, None, None)])
    assert ok(ra).generation_id == gen + 1


# -- timeouts -------------------------------------------------------------------------------------------------------


def test_session_timeout_evicts_a_silent_member():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    for _ in range(3):
        clock.advance(SESSION_MS // 2)
        assert coord.heartbeat("g", gen, a, None) == (ErrorCode.NONE if _ < 1 else ErrorCode.REBALANCE_IN_PROGRESS)
    assert coord.group_state("g") == "PreparingRebalance"
    assert coord.heartbeat("g", gen, b, None) == ErrorCode.UNKNOWN_MEMBER_ID
    assert ok(join(coord, a)).generation_id == gen + 1
    assert [m.member_id for m in coord.describe_group("g").members] == [a]


def test_heartbeats_keep_a_member_alive_indefinitely():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    for _ in range(50):
        clock.advance(SESSION_MS - 1)
        assert coord.heartbeat("g", gen, a, None) == ErrorCode.NONE
    clock.advance(SESSION_MS)
    assert coord.group_state("g") == "Empty"


def test_the_rebalance_timeout_drops_members_that_do_not_rejoin():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    ra = join(coord, a)
    for _ in range(5):
        clock.advance(REBALANCE_MS // 6)
        assert coord.heartbeat("g", gen, b, None) == ErrorCode.REBALANCE_IN_PROGRESS  # alive, but not rejoining
    clock.advance(REBALANCE_MS - 5 * (REBALANCE_MS // 6) - 1)
    assert not ra.done()
    clock.advance(1)
    result = ok(ra)
    assert result.generation_id == gen + 1 and [m.member_id for m in result.members] == [a]
    assert coord.heartbeat("g", gen, b, None) == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_new_leader_is_elected_when_the_leader_does_not_rejoin():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    assert leader == a
    rb = join(coord, b, protocols=BOTH)  # a follower's new metadata rebalances the group
    for _ in range(6):  # a stays alive but never rejoins
        clock.advance(REBALANCE_MS // 6)
        coord.heartbeat("g", gen, a, None)
    result = ok(rb)
    assert result.leader == b and [m.member_id for m in result.members] == [b]


def test_a_rebalance_nobody_rejoins_waits_for_static_members():
    clock, coord = coordinator()
    gen, leader, (a, b, c), _ = stable_group(coord, 3, instances=["i-a", "i-b", "i-c"])
    coord.leave_group("g", [(c, "i-c", None)])
    for _ in range(12):  # a and b keep their sessions but do not rejoin: static members are not dropped
        clock.advance(REBALANCE_MS // 6)
        assert coord.heartbeat("g", gen, a, "i-a") == ErrorCode.REBALANCE_IN_PROGRESS
        assert coord.heartbeat("g", gen, b, "i-b") == ErrorCode.REBALANCE_IN_PROGRESS
    assert coord.group_state("g") == "PreparingRebalance"
    rb = join(coord, b, instance="i-b")
    ra = join(coord, a, instance="i-a")
    assert ok(ra).generation_id == ok(rb).generation_id == gen + 1


def test_members_that_never_sync_are_dropped():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=10)
    replies = [join(coord, client=c) for c in "ab"]
    clock.advance(20)
    a, b = (ok(r) for r in replies)
    ok(sync(coord, 1, a.member_id, {a.member_id: b"x", b.member_id: b"y"}))
    assert coord.group_state("g") == "Stable"
    for _ in range(6):  # b has its join answer and heartbeats, but never asks for its assignment
        clock.advance(REBALANCE_MS // 6)
        coord.heartbeat("g", 1, a.member_id, None)
        coord.heartbeat("g", 1, b.member_id, None)
    assert coord.group_state("g") == "PreparingRebalance"
    assert coord.heartbeat("g", 1, b.member_id, None) == ErrorCode.UNKNOWN_MEMBER_ID
    assert ok(join(coord, a.member_id)).generation_id == 2


def test_a_new_member_stuck_in_a_rebalance_gives_up_after_five_minutes():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2, instances=["i-a", "i-b"])
    # Static members that do not rejoin stay (until their session ends); keep them alive, never rejoining.
    new = join(coord, client="new", session=1_800_000, rebalance=1_800_000)
    for _ in range(40):
        clock.advance(SESSION_MS - 1)
        coord.heartbeat("g", gen, a, "i-a")
        coord.heartbeat("g", gen, b, "i-b")
    assert new.result().error_code == ErrorCode.UNKNOWN_MEMBER_ID  # after 300 s


# -- heartbeat, sync and join errors -------------------------------------------------------------------------------


def test_heartbeat_errors():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    assert coord.heartbeat("g", gen, a, None) == ErrorCode.NONE
    assert coord.heartbeat("g", gen - 1, a, None) == ErrorCode.ILLEGAL_GENERATION
    assert coord.heartbeat("g", gen, "x", None) == ErrorCode.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("g", gen, a, "unregistered") == ErrorCode.UNKNOWN_MEMBER_ID
    join(coord, a)  # -> PreparingRebalance... and completes at once: a is the only member
    assert coord.heartbeat("g", gen + 1, a, None) == ErrorCode.NONE  # CompletingRebalance


def test_sync_errors():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    assert sync(coord, gen, "x").result().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert sync(coord, gen + 1, a).result().error_code == ErrorCode.ILLEGAL_GENERATION
    assert sync(coord, gen, a, ptype="connect").result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert sync(coord, gen, a, pname="roundrobin").result().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert ok(sync(coord, gen, a, ptype="consumer", pname="range")).assignment == f"assign-{a}".encode()
    join(coord, a)
    assert coord.group_state("g") == "PreparingRebalance"
    assert sync(coord, gen, b).result().error_code == ErrorCode.REBALANCE_IN_PROGRESS


def test_a_repeated_join_is_answered_again_without_a_rebalance():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=10)
    replies = [join(coord, client=c) for c in "ab"]
    clock.advance(20)
    a, b = (ok(r) for r in replies)
    # In CompletingRebalance, a member that lost its join answer gets the same generation again.
    again = ok(join(coord, b.member_id))
    assert again.generation_id == 1 and again.members == []
    assert ok(join(coord, a.member_id)).members == a.members
    assert coord.group_state("g") == "CompletingRebalance"
    ok(sync(coord, 1, a.member_id, {}))
    # In Stable, a follower with unchanged metadata too; the leader, though, starts a rebalance.
    assert ok(join(coord, b.member_id)).generation_id == 1 and coord.group_state("g") == "Stable"
    ra = join(coord, a.member_id)
    assert coord.group_state("g") == "PreparingRebalance"
    # A second JoinGroup from the same member replaces the first, which is answered.
    ra2 = join(coord, a.member_id)
    assert ra.result().error_code == ErrorCode.REBALANCE_IN_PROGRESS
    join(coord, b.member_id)
    assert ok(ra2).generation_id == 2


# -- static membership (KIP-345) -----------------------------------------------------------------------------------


def test_a_static_follower_rejoins_without_a_rebalance_and_its_old_id_is_fenced():
    clock, coord = coordinator()
    gen, leader, (a, b), assignments = stable_group(coord, 2, instances=["i-a", "i-b"])
    assert a.startswith("i-a-")  # static members' ids start with their instance id, as Kafka's
    rejoined = ok(join(coord, "", instance="i-b", client="restarted"))
    assert rejoined.member_id != b
    assert (rejoined.generation_id, rejoined.leader, rejoined.members, rejoined.skip_assignment) == (
        gen, a, [], False)
    assert coord.group_state("g") == "Stable"
    assert ok(sync(coord, gen, rejoined.member_id, instance="i-b")).assignment == assignments[b]
    assert coord.heartbeat("g", gen, rejoined.member_id, "i-b") == ErrorCode.NONE
    assert coord.heartbeat("g", gen, a, "i-a") == ErrorCode.NONE  # the leader noticed nothing

    F = ErrorCode.FENCED_INSTANCE_ID
    assert coord.heartbeat("g", gen, b, "i-b") == F
    assert sync(coord, gen, b, instance="i-b").result().error_code == F
    assert join(coord, b, instance="i-b").result().error_code == F
    assert coord.commit_offsets("g", gen, b, "i-b", {("t", 0): (1, -1, "")}) == {("t", 0): F}
    assert coord.leave_group("g", [(b, "i-b", None)]).members[0].error_code == F
    assert coord.heartbeat("g", gen, b, None) == ErrorCode.UNKNOWN_MEMBER_ID  # and without its instance id: unknown


@pytest.mark.parametrize("v9", [True, False])
def test_a_static_leader_rejoins_without_a_rebalance(v9):
    clock, coord = coordinator()
    gen, leader, (a, b), assignments = stable_group(coord, 2, instances=["i-a", "i-b"])
    result = ok(join(coord, "", instance="i-a", supports_skip_assignment=v9))
    assert result.generation_id == gen and coord.group_state("g") == "Stable"
    if v9:
        # It leads again, with the member list, but must not compute a new assignment.
        assert result.leader == result.member_id and result.skip_assignment
        assert [m.member_id for m in result.members] == [result.member_id, b]
        assert [m.group_instance_id for m in result.members] == ["i-a", "i-b"]
    else:
        # Before v9 the old leader id is named, so the client does not think it leads and assign in vain.
        assert result.leader == a and not result.skip_assignment and result.members == []
    assert ok(sync(coord, gen, result.member_id, {b: b"ignored"}, instance="i-a")).assignment == assignments[a]
    assert ok(sync(coord, gen, b, instance="i-b")).assignment == assignments[b]
    assert coord.describe_group("g").members[0].member_id == result.member_id


def test_a_static_member_changing_the_elected_protocol_rebalances():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2, instances=["i-a", "i-b"], protocols=BOTH)
    same = ok(join(coord, "", instance="i-b", protocols=[("range", b"new")]))  # still range: no rebalance
    assert same.generation_id == gen
    changed = join(coord, "", instance="i-b", protocols=[("roundrobin", b"rr")])
    assert coord.group_state("g") == "PreparingRebalance"
    ra = join(coord, a, instance="i-a", protocols=BOTH)
    assert ok(changed).protocol_name == "roundrobin" and ok(ra).generation_id == gen + 1


def test_a_static_member_replaced_during_a_rebalance_fences_the_waiting_join():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2, instances=["i-a", "i-b"])
    old = join(coord, b, instance="i-b", protocols=BOTH)
    assert coord.group_state("g") == "PreparingRebalance"
    new = join(coord, "", instance="i-b", protocols=BOTH)
    assert old.result().error_code == ErrorCode.FENCED_INSTANCE_ID
    ra = join(coord, a, instance="i-a")
    assert ok(new).generation_id == ok(ra).generation_id == gen + 1
    assert {m.member_id for m in ok(ra).members} == {a, ok(new).member_id}


def test_a_static_member_rejoining_while_completing_restarts_the_rebalance():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=10)
    ra, rb = (join(coord, instance=i) for i in ("i-a", "i-b"))
    clock.advance(20)
    a, b = ok(ra), ok(rb)
    waiting = sync(coord, 1, b.member_id, instance="i-b")
    new = join(coord, "", instance="i-b")
    assert waiting.result().error_code == ErrorCode.FENCED_INSTANCE_ID
    assert coord.group_state("g") == "PreparingRebalance"
    join(coord, a.member_id, instance="i-a")
    assert ok(new).generation_id == 2


def test_static_members_that_do_not_rejoin_stay_in_the_new_generation():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2, instances=["i-a", "i-b"], rebalance=5_000)
    ra = join(coord, a, instance="i-a", session=60_000, rebalance=5_000)
    clock.advance(5_000)
    result = ok(ra)  # completed by the rebalance timeout, with b still a member
    assert [m.member_id for m in result.members] == [a, b]
    ok(sync(coord, result.generation_id, a, {a: b"x", b: b"y"}, instance="i-a"))
    clock.advance(5_000 - 1)  # b never syncs: it goes when the sync deadline (the rebalance timeout) passes
    assert [m.member_id for m in coord.describe_group("g").members] == [a, b]
    clock.advance(1)
    assert [m.member_id for m in coord.describe_group("g").members] == [a]


def test_cooperative_rebalance_relays_metadata_and_assignments():
    # Cooperative-sticky clients rebalance twice: the first round revokes, the second assigns. The coordinator
    # only relays bytes; what matters is that members keep working through both rounds.
    clock, coord = coordinator()
    coop = [("cooperative-sticky", b"owned:none")]
    gen, leader, (a,), _ = stable_group(coord, 1, protocols=coop)
    rb = join(coord, client="b", protocols=coop)
    ra = ok(join(coord, a, protocols=[("cooperative-sticky", b"owned:t-0,t-1")]))
    b = ok(rb).member_id
    assert ra.members == [JoinMember(a, None, b"owned:t-0,t-1"), JoinMember(b, None, b"owned:none")]
    sb = sync(coord, ra.generation_id, b)
    ok(sync(coord, ra.generation_id, a, {a: b"t-0", b: b""}))  # t-1 revoked from a, assigned to nobody yet
    assert ok(sb).assignment == b""
    # a revoked t-1 and rejoins at once; b, told by its heartbeat, rejoins too.
    ra2 = join(coord, a, protocols=[("cooperative-sticky", b"owned:t-0")])
    assert coord.heartbeat("g", ra.generation_id, b, None) == ErrorCode.REBALANCE_IN_PROGRESS
    rb2 = join(coord, b, protocols=coop)
    gen3 = ok(ra2).generation_id
    assert gen3 == ra.generation_id + 1
    sb2 = sync(coord, gen3, b)
    assert ok(sync(coord, gen3, a, {a: b"t-0", b: b"t-1"})).assignment == b"t-0"
    assert ok(sb2).assignment == b"t-1" and ok(rb2).generation_id == gen3


# -- describe and list ----------------------------------------------------------------------------------------------


def test_describe_and_list_groups():
    clock, coord = coordinator()
    desc = coord.describe_group("unknown")
    assert (desc.error_code, desc.state, desc.members) == (ErrorCode.NONE, "Dead", [])
    stable_group(coord, 2, group="s")
    ok(join(coord, group="c"))
    join(coord, group="c", client="x")  # -> PreparingRebalance
    coord.commit_offsets("simple", -1, "", None, {("t", 0): (1, -1, "")})
    desc = coord.describe_group("c")
    assert (desc.state, desc.protocol_type, desc.protocol) == ("PreparingRebalance", "consumer", "")
    assert all(m.metadata == b"" and m.assignment == b"" for m in desc.members)
    groups = coord.list_groups().groups
    assert sorted(groups) == [("c", "consumer", "PreparingRebalance", "classic"),
                              ("s", "consumer", "Stable", "classic"), ("simple", "", "Empty", "classic")]
    assert [g.group_id for g in coord.list_groups(["stable", "Empty"]).groups] == ["s", "simple"]
    assert coord.list_groups(types_filter=["consumer"]).groups == []


def test_close_answers_waiting_requests():
    clock, coord = coordinator(group_initial_rebalance_delay_ms=100)
    waiting = join(coord)
    coord.close()
    assert waiting.result().error_code == ErrorCode.NOT_COORDINATOR
    assert join(coord).result().error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert clock.pending() == 0


# -- committed offsets ----------------------------------------------------------------------------------------------


def test_commit_and_fetch():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    offsets = {("t", 0): (10, 3, "meta"), ("t", 1): (20, -1, None)}
    assert coord.commit_offsets("g", gen, a, None, offsets) == {("t", 0): ErrorCode.NONE, ("t", 1): ErrorCode.NONE}
    fetched = coord.fetch_offsets("g", [("t", 0), ("t", 1), ("t", 2), ("u", 0)])
    assert fetched.error_code == ErrorCode.NONE and fetched.partition_errors == {}
    assert fetched.offsets == {("t", 0): (10, 3, "meta"), ("t", 1): (20, -1, ""), ("t", 2): (-1, -1, ""),
                               ("u", 0): (-1, -1, "")}
    assert coord.fetch_offsets("g").offsets == {("t", 0): (10, 3, "meta"), ("t", 1): (20, -1, "")}
    assert coord.fetch_offsets("unknown", [("t", 0)]).offsets == {("t", 0): (-1, -1, "")}
    assert coord.fetch_offsets("unknown").offsets == {}
    too_big = {("t", 0): (11, -1, "x" * 4097), ("t", 1): (21, -1, "x" * 4096)}
    assert coord.commit_offsets("g", gen, a, None, too_big) == {
        ("t", 0): ErrorCode.OFFSET_METADATA_TOO_LARGE, ("t", 1): ErrorCode.NONE}
    assert coord.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == 10


def test_commit_checks_membership_and_generation():
    clock, coord = coordinator()
    gen, leader, (a, b), _ = stable_group(coord, 2)
    tp = {("t", 0): (1, -1, "")}
    assert coord.commit_offsets("g", gen, "ghost", None, tp) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert coord.commit_offsets("g", gen - 1, a, None, tp) == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    # A simple commit, but the group has members:
    assert coord.commit_offsets("g", -1, "", None, tp) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert coord.commit_offsets("nope", 3, "m", None, tp) == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    # PreparingRebalance: commits of the current generation are accepted (the heartbeat says "rejoin").
    ra = join(coord, a)
    assert coord.commit_offsets("g", gen, b, None, tp) == {("t", 0): ErrorCode.NONE}
    # CompletingRebalance: the member has no assignment yet.
    join(coord, b)
    assert ok(ra).generation_id == gen + 1
    assert coord.commit_offsets("g", gen + 1, b, None, tp) == {("t", 0): ErrorCode.REBALANCE_IN_PROGRESS}


def test_simple_commit_creates_an_empty_group():
    clock, coord = coordinator()
    assert coord.commit_offsets("standalone", -1, "", None, {("t", 0): (5, -1, "")}) == {("t", 0): ErrorCode.NONE}
    assert coord.group_state("standalone") == "Empty"
    assert coord.fetch_offsets("standalone", [("t", 0)]).offsets[("t", 0)].offset == 5
    # A consumer group can then form over it and read what was committed.
    gen, leader, (a,), _ = stable_group(coord, 1, group="standalone")
    assert coord.fetch_offsets("standalone").offsets == {("t", 0): (5, -1, "")}


def test_commits_push_back_the_session():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    for i in range(5):
        clock.advance(SESSION_MS - 1)
        assert coord.commit_offsets("g", gen, a, None, {("t", 0): (i, -1, "")}) == {("t", 0): ErrorCode.NONE}
    assert coord.group_state("g") == "Stable"


def test_delete_groups():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    coord.commit_offsets("g", gen, a, None, {("t", 0): (1, -1, "")})
    assert coord.delete_groups(["g", "nope"]) == {"g": ErrorCode.NON_EMPTY_GROUP, "nope": ErrorCode.GROUP_ID_NOT_FOUND}
    coord.leave_group("g", [(a, None, None)])
    assert coord.group_state("g") == "Empty"
    assert coord.delete_groups(["g"]) == {"g": ErrorCode.NONE}
    assert coord.group_state("g") is None
    assert coord.describe_group("g").state == "Dead"
    assert coord.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == -1


def test_delete_offsets():
    clock, coord = coordinator()
    assert coord.delete_offsets("nope", [("t", 0)]).error_code == ErrorCode.GROUP_ID_NOT_FOUND
    members = [join(coord, client=c, protocols=[("range", subscription("t"))]) for c in "a"]
    a = ok(members[0]).member_id
    ok(sync(coord, 1, a, {a: b""}))
    coord.commit_offsets("g", 1, a, None, {("t", 0): (1, -1, ""), ("old", 0): (2, -1, "")})
    result = coord.delete_offsets("g", [("t", 0), ("old", 0), ("never", 0)])
    assert result.error_code == ErrorCode.NONE
    assert result.partition_errors == {("t", 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, ("old", 0): ErrorCode.NONE,
                                       ("never", 0): ErrorCode.NONE}
    assert coord.fetch_offsets("g").offsets == {("t", 0): (1, -1, "")}
    coord.leave_group("g", [(a, None, None)])
    assert coord.delete_offsets("g", [("t", 0)]).partition_errors == {("t", 0): ErrorCode.NONE}
    assert coord.fetch_offsets("g").offsets == {}
    # A group of another protocol type with members cannot have its offsets deleted.
    ok(join(coord, group="connect", ptype="connect"))
    assert coord.delete_offsets("connect", [("t", 0)]).error_code == ErrorCode.NON_EMPTY_GROUP


# -- offset expiry --------------------------------------------------------------------------------------------------

RETENTION_MS = 60_000


def test_offsets_of_a_standalone_group_expire_after_retention_and_the_group_goes():
    clock, coord = coordinator(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1_000)
    coord.commit_offsets("s", -1, "", None, {("t", 0): (1, -1, "")})
    clock.advance(30_000)
    coord.commit_offsets("s", -1, "", None, {("t", 1): (1, -1, "")})
    clock.advance(30_000)
    assert coord.fetch_offsets("s").offsets == {("t", 1): (1, -1, "")}
    clock.advance(30_000)
    assert coord.fetch_offsets("s").offsets == {}
    assert coord.group_state("s") is None


def test_an_empty_groups_offsets_expire_counting_from_when_it_became_empty():
    clock, coord = coordinator(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1_000)
    gen, leader, (a,), _ = stable_group(coord, 1)
    coord.commit_offsets("g", gen, a, None, {("t", 0): (1, -1, "")})
    for _ in range(20):  # the member outlives the retention period: its offsets stay
        clock.advance(5_000)
        coord.heartbeat("g", gen, a, None)
    assert coord.fetch_offsets("g").offsets == {("t", 0): (1, -1, "")}
    coord.leave_group("g", [(a, None, None)])
    clock.advance(RETENTION_MS - 1_000)
    assert coord.fetch_offsets("g").offsets != {}
    clock.advance(1_000)
    assert coord.fetch_offsets("g").offsets == {}
    assert coord.group_state("g") is None


def test_a_stable_consumer_group_loses_offsets_of_topics_it_no_longer_reads():
    clock, coord = coordinator(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1_000)
    a = ok(join(coord, protocols=[("range", subscription("t"))])).member_id
    ok(sync(coord, 1, a, {a: b""}))
    coord.commit_offsets("g", 1, a, None, {("t", 0): (1, -1, ""), ("gone", 0): (2, -1, "")})
    for _ in range(15):
        clock.advance(5_000)
        coord.heartbeat("g", 1, a, None)
    assert coord.fetch_offsets("g").offsets == {("t", 0): (1, -1, "")}


def test_an_explicit_retention_time_expires_an_offset_on_its_own():
    clock, coord = coordinator(offsets_retention_check_interval_ms=1_000)
    coord.commit_offsets("s", -1, "", None, {("t", 0): (1, -1, "")}, retention_time_ms=5_000)
    coord.commit_offsets("s", -1, "", None, {("t", 1): (1, -1, "")})
    clock.advance(5_000)
    assert coord.fetch_offsets("s").offsets == {("t", 1): (1, -1, "")}


# -- transactional offsets ------------------------------------------------------------------------------------------


def test_transactional_offsets_are_visible_only_once_committed():
    clock, coord = coordinator()
    assert coord.prepare_txn_offsets(7, "g", {("t", 0): (10, -1, "txn"), ("t", 1): (11, -1, "")}) == {
        ("t", 0): ErrorCode.NONE, ("t", 1): ErrorCode.NONE}
    assert coord.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == -1
    unstable = coord.fetch_offsets("g", [("t", 0), ("t", 2)], require_stable=True)
    assert unstable.partition_errors == {("t", 0): ErrorCode.UNSTABLE_OFFSET_COMMIT}
    coord.prepare_txn_offsets(8, "g", {("t", 2): (99, -1, "")})
    # A plain commit after the transaction wrote its offset wins over it.
    coord.commit_offsets("g", -1, "", None, {("t", 1): (50, -1, "plain")})
    assert coord.complete_txn_offsets(7, "g", commit=True) == ErrorCode.NONE
    assert coord.complete_txn_offsets(8, "g", commit=False) == ErrorCode.NONE
    assert coord.fetch_offsets("g", require_stable=True).offsets == {
        ("t", 0): (10, -1, "txn"), ("t", 1): (50, -1, "plain")}
    assert coord.complete_txn_offsets(7, "g", commit=True) == ErrorCode.NONE  # a repeated marker is harmless


def test_transactional_commit_overrides_an_earlier_plain_commit_and_checks_members():
    clock, coord = coordinator()
    gen, leader, (a,), _ = stable_group(coord, 1)
    coord.commit_offsets("g", gen, a, None, {("t", 0): (1, -1, "")})
    assert coord.prepare_txn_offsets(7, "g", {("t", 0): (2, -1, "")}, generation_id=gen + 5, member_id=a) == {
        ("t", 0): ErrorCode.ILLEGAL_GENERATION}
    assert coord.prepare_txn_offsets(7, "g", {("t", 0): (2, -1, "")}, generation_id=gen, member_id=a) == {
        ("t", 0): ErrorCode.NONE}
    # Without member fields (TxnOffsetCommit < v3) a group with members accepts it too.
    coord.prepare_txn_offsets(7, "g", {("t", 1): (3, -1, "")})
    coord.complete_txn_offsets(7, "g", commit=True)
    assert coord.fetch_offsets("g").offsets == {("t", 0): (2, -1, ""), ("t", 1): (3, -1, "")}


# -- restart --------------------------------------------------------------------------------------------------------


def test_a_restarted_coordinator_restores_offsets_groups_and_pending_transactions(tmp_path):
    path = tmp_path / "offsets.journal"
    clock = ManualClock()
    store = FileOffsetStore(path)
    _, coord = coordinator(clock, store)
    gen, leader, (a, b), assignments = stable_group(coord, 2, instances=[None, "i-b"])
    coord.commit_offsets("g", gen, a, None, {("t", 0): (10, 4, "m"), ("t", 1): (20, -1, "")})
    coord.commit_offsets("simple", -1, "", None, {("u", 0): (5, -1, "")})
    coord.prepare_txn_offsets(9, "simple", {("u", 1): (6, -1, "")})
    coord.close()
    store.close()

    store = FileOffsetStore(path)
    coord = GroupCoordinator(clock, GroupConfig(), store)
    assert coord.is_loading
    coord.load()
    assert coord.fetch_offsets("g").offsets == {("t", 0): (10, 4, "m"), ("t", 1): (20, -1, "")}
    assert coord.fetch_offsets("simple").offsets == {("u", 0): (5, -1, "")}
    # The group comes back Stable in its generation: members carry on as if nothing happened.
    assert coord.group_state("g") == "Stable" and coord.generation_id("g") == gen
    assert coord.heartbeat("g", gen, a, None) == ErrorCode.NONE
    assert ok(sync(coord, gen, b, instance="i-b")).assignment == assignments[b]
    desc = coord.describe_group("g")
    assert [(m.member_id, m.group_instance_id, m.metadata) for m in desc.members] == [
        (a, None, b"range-meta"), (b, "i-b", b"range-meta")]
    # The pending transaction can still commit.
    coord.complete_txn_offsets(9, "simple", commit=True)
    assert coord.fetch_offsets("simple", [("u", 1)]).offsets[("u", 1)].offset == 6
    # A member that does not come back times out as usual.
    clock.advance(SESSION_MS)
    assert coord.group_state("g") == "Empty"
    coord.close()
    store.close()

    # Third start: the group is remembered as Empty, with its offsets, and expiry counts from then.
    coord = GroupCoordinator(clock, GroupConfig(offsets_retention_minutes=1), FileOffsetStore(path))
    coord.load()
    assert coord.group_state("g") == "Empty" and coord.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == 10
    assert coord.expire_offsets() == 0
    clock.advance(RETENTION_MS)
    assert coord.expire_offsets() == 4  # g's two, and the standalone group's
    assert coord.group_state("g") is None and coord.group_state("simple") is None


def test_a_commit_the_store_cannot_make_durable_fails():
    class FailingStore(MemoryOffsetStore):
        def commit_offsets(self, group_id, offsets):
            raise OSError(28, "No space left on device")

    clock, coord = coordinator(store=FailingStore())
    assert coord.commit_offsets("s", -1, "", None, {("t", 0): (1, -1, "")}) == {
        ("t", 0): ErrorCode.COORDINATOR_NOT_AVAILABLE}
    assert coord.fetch_offsets("s", [("t", 0)]).offsets[("t", 0)].offset == -1
