"""Consumer groups with stock clients over real sockets (issue #3): rebalancing on leave and on a killed member,
committed offsets across a broker restart, cooperative incremental rebalancing, static membership.

Group members that must be killed run as subprocesses (tests/support/group_member.py); the group is checked through the
broker's control plane (in-process `Broker.control`, or the HTTP one of a broker process), and every wait is for a
condition with a deadline.
"""

from __future__ import annotations

import time
import uuid

import pytest

from support.brokerproc import BrokerProcess
from support.clients import ConfluentClient
from support.groupclients import (
    GROUP_CLIENTS,
    GROUP_CONSUMERS,
    ConfluentCommitEachMember,
    KafkaPythonCommitEachMember,
    MemberProcess,
    assignments,
    consume_until,
    http_control_of,
    on_the_wire,
    wait_until,
)
from kbroker import Broker

SESSION_MS = 2000
HEARTBEAT_MS = 300
# Long enough for a member process to start again (Python and the client library load) before its session ends.
STATIC_SESSION_MS = 15000
PARTITIONS = 6


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def gbroker():
    """An in-process broker that accepts short session timeouts, so a killed member is noticed in seconds."""
    with Broker(port=0, storage="memory", group_min_session_timeout_ms=500) as b:
        yield b


@pytest.fixture
def spawn():
    """Starts group member processes; every one still running is killed at the end."""
    started: list[MemberProcess] = []

    def start(*args, **kw) -> MemberProcess:
        m = MemberProcess(*args, **kw)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


def _stable_view(control, group: str, members: int, topic: str, timeout_ms: int = 20000,
                 partitions: int = PARTITIONS) -> dict:
    """The group once Stable with `members` members and every partition of `topic` assigned (control plane
    view, assignments decoded). A leader that does not know the topic's partitions yet (kafka-python right after
    it starts) hands out empty assignments, then rejoins to assign again: that Stable generation is skipped."""
    deadline = time.monotonic() + timeout_ms / 1000

    def complete(g: dict) -> bool:
        return (g["state"] == "Stable" and len(g["members"]) == members
                and sorted(p for parts in assignments(g, topic).values() for p in parts) == list(range(partitions)))

    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        assert remaining_ms > 0, control.group(group)
        assert control.wait_for_group(group, "Stable", members=members, timeout_ms=remaining_ms), control.group(group)
        g = control.group(group)
        if complete(g):
            return g
        # Stable but not fully assigned: the leader rejoins at once; wait for the group to leave Stable.
        wait_until(lambda: control.group(group)["generation_id"] != g["generation_id"],
                   max(deadline - time.monotonic(), 0.1), lambda: f"a new generation after {g}")


def _assert_partition_split(asg: dict[str, set[int]], sizes: list[int]) -> None:
    """Every partition assigned to exactly one member, and the members' shares have these sizes."""
    every = [p for parts in asg.values() for p in parts]
    assert sorted(every) == list(range(PARTITIONS)), asg
    assert sorted(len(parts) for parts in asg.values()) == sorted(sizes), asg


def _wait_clients_agree(members, asg: dict[str, set[int]], timeout: float = 20.0) -> None:
    """Each member process reports (from its rebalance callbacks) the partitions the broker says it has."""
    wait_until(lambda: all(m.owned() == asg[m.client_id] for m in members), timeout,
               lambda: f"clients to own {asg}: {[(m.client_id, m.owned()) for m in members]}")


def _requests_from(control, client_id: str, api: str | None = None) -> list[dict]:
    return [r for r in control.requests(limit=1000)
            if r["client_id"] == client_id and (api is None or r["api"] == api)]


# --- 1. leave and kill ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_three_members_leave_and_kill(client, gbroker, spawn):
    topic, group = _name("t"), _name("g")
    ConfluentClient(gbroker.bootstrap_servers).create_topic(topic, PARTITIONS)
    control = gbroker.control
    opts = ("--session-timeout-ms", str(SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS))

    def member(tag: str) -> MemberProcess:
        return spawn(client, gbroker.bootstrap_servers, topic, group, f"{client}-{tag}", *opts)

    a, b, c = member("a"), member("b"), member("c")
    asg = assignments(_stable_view(control, group, 3, topic), topic)
    assert set(asg) == {a.client_id, b.client_id, c.client_id}
    _assert_partition_split(asg, [2, 2, 2])  # range and round robin alike: 6 partitions, 3 members
    _wait_clients_agree([a, b, c], asg)

    # A member that closes sends LeaveGroup: the other two share all six partitions at once.
    assert a.terminate() == 0
    a.wait_for(lambda e: e["ev"] == "closed", what="closed")
    assert _requests_from(control, a.client_id, "LeaveGroup"), "close() did not send LeaveGroup"
    asg = assignments(_stable_view(control, group, 2, topic), topic)
    assert set(asg) == {b.client_id, c.client_id}
    _assert_partition_split(asg, [3, 3])
    _wait_clients_agree([b, c], asg)

    # A third member again, then one is killed: no LeaveGroup; its partitions move when its session expires.
    d = member("d")
    asg = assignments(_stable_view(control, group, 3, topic), topic)
    assert set(asg) == {b.client_id, c.client_id, d.client_id}
    _assert_partition_split(asg, [2, 2, 2])
    _wait_clients_agree([b, c, d], asg)

    killed_at = time.monotonic()
    b.kill()
    asg = assignments(_stable_view(control, group, 2, topic, timeout_ms=SESSION_MS + 15000), topic)
    noticed_after = time.monotonic() - killed_at
    assert set(asg) == {c.client_id, d.client_id}
    _assert_partition_split(asg, [3, 3])
    _wait_clients_agree([c, d], asg)
    # Only the session timeout can have removed it: it said nothing, and that took about a session.
    assert _requests_from(control, b.client_id, "Heartbeat"), "the request log no longer reaches back to b"
    assert not _requests_from(control, b.client_id, "LeaveGroup")
    assert noticed_after >= (SESSION_MS - HEARTBEAT_MS) / 1000 * 0.9, noticed_after
    for m in (b, c, d):
        assert not m.errors(), (m.client_id, m.errors())


# --- 2. committed offsets survive a broker restart ---------------------------------------------------------------


@pytest.mark.parametrize("client, stop", [(c, "sigterm") for c in GROUP_CLIENTS] + [("confluent-kafka", "sigkill")])
def test_group_resumes_after_broker_restart_exactly_at_committed_offsets(client, stop, tmp_path):
    topic, group = _name("t"), _name("g")
    partitions, total, first_part = 3, 90, 40
    proc = BrokerProcess(tmp_path / "data", "--control-port", "0")  # segment storage: the state is on disk
    proc.start()
    try:
        ConfluentClient(proc.bootstrap_servers).create_topic(topic, partitions)
        values = [f"r{i:03d}".encode() for i in range(total)]
        ConfluentClient(proc.bootstrap_servers).produce(topic, [(None, v, None, i % partitions, None)
                                                                for i, v in enumerate(values)])

        # The first consumer processes a prefix of what it is given (a prefix of each partition, since a
        # partition's records arrive in order), commits exactly that and closes.
        first = GROUP_CONSUMERS[client](proc.bootstrap_servers, topic, group)
        try:
            got = consume_until(first, first_part)
            assert len(got) >= first_part, got
            done = got[:first_part]
            commit = {}
            for p, o, _v in done:
                commit[p] = (o + 1, f"{client} before restart")
            first.commit(commit)
        finally:
            first.close()
        control = http_control_of(proc)
        before = {(o["partition"]): o["offset"] for o in control.group(group)["offsets"] if o["topic"] == topic}
        assert before == {p: o for p, (o, _m) in commit.items()}

        # SIGTERM (a clean stop), or SIGKILL: an acknowledged commit must survive the process either way. Then a new
        # process on the same data directory (and another port).
        if stop == "sigterm":
            assert proc.stop() == 0
        else:
            proc.kill()
        proc.start()
        control = http_control_of(proc)
        g = control.group(group)
        assert g["state"] == "Empty", g
        after = {o["partition"]: (o["offset"], o["metadata"]) for o in g["offsets"] if o["topic"] == topic}
        assert after == {p: (o, on_the_wire(client, m)) for p, (o, m) in commit.items()}

        # A new member of the group takes up exactly after the committed offsets: no gap, no duplicate.
        second = GROUP_CONSUMERS[client](proc.bootstrap_servers, topic, group)
        try:
            rest = consume_until(second, total - first_part)
        finally:
            second.close()
        first_seen = sorted((p, o) for p, o, _v in done)
        second_seen = sorted((p, o) for p, o, _v in rest)
        assert not set(first_seen) & set(second_seen), "records consumed again after the restart"
        assert len(second_seen) == len(set(second_seen)), "records consumed twice after the restart"
        everything = {(i % partitions, i // partitions) for i in range(total)}
        assert set(first_seen) | set(second_seen) == everything, sorted(everything - set(first_seen) - set(second_seen))
        assert sorted(v for _p, _o, v in done + rest) == values
        for p, (o, _m) in commit.items():
            resumed = [off for q, off in second_seen if q == p]
            assert resumed == list(range(o, total // partitions)), (p, o, resumed)  # exactly from the commit
    finally:
        proc.kill()


# --- 3. cooperative incremental rebalancing (KIP-429) with a member joining mid-stream ------------------------------


def _coop_member(client: str, name: str, bootstrap: str, topic: str, group: str):
    if client == "confluent-kafka":
        return ConfluentCommitEachMember(name, bootstrap, topic, group, **{
            "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": HEARTBEAT_MS, "max.poll.interval.ms": 20000})
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

    return KafkaPythonCommitEachMember(name, bootstrap, topic, group,
                                       partition_assignment_strategy=[CooperativeStickyAssignor],
                                       session_timeout_ms=6000, heartbeat_interval_ms=HEARTBEAT_MS,
                                       max_poll_interval_ms=20000)


# aiokafka has no cooperative protocol (its assignors are all eager).
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_cooperative_sticky_member_joins_midstream(client, gbroker):
    from confluent_kafka import Producer

    topic, group = _name("t"), _name("g")
    bootstrap, control = gbroker.bootstrap_servers, gbroker.control
    ConfluentClient(bootstrap).create_topic(topic, PARTITIONS)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    produced = [0] * PARTITIONS

    def produce_round() -> None:
        """One record to every partition, acknowledged, once the consumers are at most two rounds behind."""
        if b is not None:
            wait_until(lambda: len(a.consumed) + len(b.consumed) >= sum(produced) - 2 * PARTITIONS, 30,
                       lambda: f"consumers to catch up: {len(a.consumed)} + {len(b.consumed)} of {sum(produced)}")
        for p in range(PARTITIONS):
            producer.produce(topic, value=f"{p}:{produced[p]}".encode(), partition=p)
            produced[p] += 1
        assert producer.flush(30) == 0

    first_wave = 10
    a = b = None
    for _ in range(first_wave):
        produce_round()
    a = _coop_member(client, "member-a", bootstrap, topic, group).start()
    try:
        # A alone consumes the first wave: it owns all six partitions and has committed offset 10 on each.
        wait_until(lambda: len(a.consumed) >= PARTITIONS * first_wave or a.failure, 30, "A to consume the first wave")
        assert sorted(a.consumed) == [(p, o) for p in range(PARTITIONS) for o in range(first_wave)]
        assert a.owned() == set(range(PARTITIONS)), a.events
        a_events_before = len(a.events)

        # Records keep coming, one round at a time, while B joins, while the group rebalances and until B has
        # consumed from each partition it took over; then a few more rounds. A commits each record it takes.
        for _ in range(5):
            produce_round()
        b = _coop_member(client, "member-b", bootstrap, topic, group).start()
        deadline = time.monotonic() + 30
        while not (len(b.owned()) == PARTITIONS // 2 and b.owned() <= {p for p, _o in b.consumed}):
            assert time.monotonic() < deadline, f"B never consumed its partitions: {b.events} {a.events}"
            assert a.failure is None and b.failure is None, (a.failure, b.failure)
            produce_round()
        for _ in range(5):
            produce_round()
        total = sum(produced)
        print(f"{total} records, {len(a.consumed)} by A and {len(b.consumed)} by B when production stopped")
        wait_until(lambda: len(a.consumed) + len(b.consumed) >= total, 30,
                   lambda: f"{total} records consumed: A {len(a.consumed)}, B {len(b.consumed)}")
        g = _stable_view(control, group, 2, topic)
        assert g["protocol"] == "cooperative-sticky", g
        asg = assignments(g, topic)
        _assert_partition_split(asg, [3, 3])
        a_events, b_events = list(a.events), list(b.events)  # before stop(): closing revokes everything
        a.request_stop()
        b.request_stop()
        a.stop()
        b.stop()
        # Commits may fail while the group rebalances (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, as from Kafka):
        # they stay pending and are retried, at the latest when the partition is revoked.
        print("commit errors:", a.commit_errors, b.commit_errors)

        # Every record consumed exactly once, across A and B.
        both = a.consumed + b.consumed
        assert len(both) == len(set(both)), sorted({x for x in both if both.count(x) > 1})[:20]
        assert set(both) == {(p, o) for p in range(PARTITIONS) for o in range(produced[p])}

        # Incremental: A gave up only the partitions moving to B (a partial revoke), never all of them, and kept
        # the rest throughout; B was assigned just those.
        later = a_events[a_events_before:]
        revoked = [parts for kind, parts in later if kind in ("revoke", "lost")]
        assert revoked, a_events
        assert not any(kind == "lost" for kind, _ in later), a_events
        assert all(0 < len(parts) < PARTITIONS for parts in revoked), a_events
        moved = set().union(*map(set, revoked))
        owned = set(range(PARTITIONS))
        for kind, parts in later:
            (owned.update if kind == "assign" else owned.difference_update)(parts)
            assert owned, f"A owned nothing at some point: {a_events}"
        assert owned == asg["member-a"] == set(range(PARTITIONS)) - moved, (a_events, asg)
        b_owned = set()
        for kind, parts in b_events:
            (b_owned.update if kind == "assign" else b_owned.difference_update)(parts)
        assert moved == asg["member-b"] == b_owned, (a_events, b_events, asg)
        # Mid-stream: A had consumed past the first wave on partitions that then moved, and B took each moved
        # partition over exactly where A's last commit left it.
        assert any(o >= first_wave for p, o in a.consumed if p in moved), "the rebalance came before A read on"
        for p in moved:
            a_offsets = [o for q, o in a.consumed if q == p]
            b_offsets = [o for q, o in b.consumed if q == p]
            assert b_offsets[0] == max(a_offsets) + 1 and max(a_offsets) < min(b_offsets), (p, a_offsets[-3:],
                                                                                              b_offsets[:3])
        # A kept consuming its partitions after B appeared.
        assert any(p in asg["member-a"] and o >= first_wave + 5 for p, o in a.consumed)
    finally:
        a.stop()
        if b is not None:
            b.stop()


# --- 4. static membership (KIP-345): a restarted member gets its partitions back with no rebalance ------------------


@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_static_member_restart_keeps_partitions_without_rebalance(client, gbroker, spawn):
    topic, group = _name("t"), _name("g")
    bootstrap, control = gbroker.bootstrap_servers, gbroker.control
    ConfluentClient(bootstrap).create_topic(topic, PARTITIONS)
    # librdkafka wants max.poll.interval.ms >= session.timeout.ms.
    opts = ("--session-timeout-ms", str(STATIC_SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS),
            "--max-poll-interval-ms", str(2 * STATIC_SESSION_MS))

    def member(tag: str) -> MemberProcess:
        return spawn(client, bootstrap, topic, group, f"{client}-{tag}", "--instance-id", f"instance-{tag}", *opts)

    members = {tag: member(tag) for tag in "abc"}
    g0 = _stable_view(control, group, 3, topic)
    asg0 = assignments(g0, topic)
    _assert_partition_split(asg0, [2, 2, 2])
    _wait_clients_agree(members.values(), asg0)
    generation = g0["generation_id"]
    ids = {m["group_instance_id"]: m["member_id"] for m in g0["members"]}
    assert set(ids) == {"instance-a", "instance-b", "instance-c"}

    # Each member in turn (so the leader is among them) goes away without leaving, by close() or by SIGKILL,
    # and comes back under the same group.instance.id before its session expires.
    for tag, how in (("a", "close"), ("b", "kill"), ("c", "close")):
        old = members[tag]
        others = [m for t, m in members.items() if t != tag]
        seen = {m.client_id: len(m.rebalance_events()) for m in others}
        if how == "close":
            assert old.terminate() == 0
            old.wait_for(lambda e: e["ev"] == "closed", what="closed")
        else:
            old.kill()
        assert control.group(group)["generation_id"] == generation  # a static member's close is not a leave
        new = members[tag] = member(tag)
        _wait_clients_agree([new], asg0)
        g = control.group(group)
        assert g["state"] == "Stable" and g["generation_id"] == generation, (tag, how, g)
        assert assignments(g, topic) == asg0
        now = {m["group_instance_id"]: m["member_id"] for m in g["members"]}
        assert now[f"instance-{tag}"] != ids[f"instance-{tag}"], "the new incarnation has a new member id"
        assert {i: m for i, m in now.items() if i != f"instance-{tag}"} == \
            {i: m for i, m in ids.items() if i != f"instance-{tag}"}, "the others were not touched"
        ids = now
        for m in others:
            assert len(m.rebalance_events()) == seen[m.client_id], (m.client_id, m.rebalance_events())
    leaves = [r for r in control.requests(limit=1000) if r["api"] == "LeaveGroup"]
    assert not leaves, leaves
    for m in members.values():
        assert not m.errors(), (m.client_id, m.errors())


# --- the control plane's wait, woken by the coordinator's timers -------------------------------------------------


def test_wait_for_group_notices_a_session_expiry(gbroker, spawn):
    """control.wait_for_group (and POST /wait) must return once the condition holds, also when what changed the
    group was one of the coordinator's timers (a session expiring) rather than a request."""
    topic, group = _name("t"), _name("g")
    ConfluentClient(gbroker.bootstrap_servers).create_topic(topic, 2)
    control = gbroker.control
    solo = spawn("confluent-kafka", gbroker.bootstrap_servers, topic, group, "solo",
                 "--session-timeout-ms", "1000", "--heartbeat-ms", "200")
    _stable_view(control, group, 1, topic, partitions=2)
    solo.kill()
    killed_at = time.monotonic()
    assert control.wait_for_group(group, "Empty", members=0, timeout_ms=8000)
    waited = time.monotonic() - killed_at
    assert control.group(group)["state"] == "Empty"
    # The session ends about 1 s after the kill; the wait should not sit out its whole 8 s timeout.
    assert waited < 4, f"wait_for_group returned {waited:.1f} s after the kill"
