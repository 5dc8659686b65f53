"""Consumer groups with stock clients over real sockets (issue #3): rebalancing on leave and on a killed member,
committed offsets across a broker restart, cooperative incremental rebalancing, static membership.

Group members that must be killed run as subprocesses (tests/group_member.py); the group is checked through the
broker's control plane (in-process `Broker.control`, or the HTTP one of a broker process), and every wait is for a
condition with a deadline.
"""

from __future__ import annotations

import time
import uuid

import pytest

from brokerproc import BrokerProcess
from clients import ConfluentClient
from groupclients import (
    GROUP_CLIENTS,
    GROUP_CONSUMERS,
    MemberProcess,
    assignments,
    by_client_id,
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


def _stable_view(control, group: str, members: int, topic: str, timeout_ms: int = 20000) -> dict:
    """The group once Stable with `members` members, each assignment decoded (control plane view)."""
    assert control.wait_for_group(group, "Stable", members=members, timeout_ms=timeout_ms), control.group(group)
    g = control.group(group)
    assert g["state"] == "Stable" and len(g["members"]) == members, g
    return g


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


@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_group_resumes_after_broker_restart_exactly_at_committed_offsets(client, tmp_path):
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

        proc.restart()  # SIGTERM, then a new process on the same data directory (and another port)
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
