"""Brokers as processes cut off from their database (kbroker/postgres_controller.py): a broker whose session
ends (its backend terminated with pg_terminate_backend, as a dropped network ends it; or PostgreSQL
restarting under every broker) notices, is fenced (it leads nothing, so nothing is acknowledged on a
leadership the controller has already given away) and registers again once the database lets it, leading
at new leader epochs. An idempotent acks=all producer runs throughout; the Jepsen-style history
(tests/support/history.py) is checked against a final read_committed read: every acknowledged record once,
where it was acknowledged.

Each test runs its own PostgreSQL server (restarting it must not disturb other tests)."""

from __future__ import annotations

import time

import pytest

from support.history import History
from support.pgcluster import NODES, TIMEOUT_S, acks_after, check_history, partition_isrs, producing, running, wait_full_isr
from support.postgres import PostgresServer, needs_postgres
from support.txn_helpers import wait_until

pytestmark = needs_postgres


@pytest.fixture()
def own_pg():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture()
def cluster(own_pg, tmp_path):
    with running(own_pg.new_database(), tmp_path) as c:
        yield c


def _terminate_session(url: str, node: int) -> int:
    """End broker ``node``'s liveness session (the backend holding its advisory lock); its pid."""
    import psycopg

    from kbroker.postgres_controller import LOCK_BROKER

    with psycopg.connect(url, autocommit=True) as conn:
        (pid,) = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                              "AND objid = %s AND granted", (LOCK_BROKER, node)).fetchone()
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return pid


def _epochs(url: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, leader epoch) as the database has it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {idx: (leader, epoch) for idx, leader, epoch in conn.execute(
            "SELECT idx, leader, leader_epoch FROM kbroker_partitions WHERE topic = %s", (topic,)).fetchall()}


def _logged(proc, text: str, since: int) -> bool:
    return any(text in line for line in list(proc.stderr_lines)[since:])


def test_a_broker_whose_session_ends_is_fenced_and_registers_again(cluster, own_pg, tmp_path):
    """The session of a broker leading two of six partitions is terminated while the producer runs: the
    controller marks it dead and gives its partitions to other ISR members; the broker notices, stops
    leading, registers again and rejoins every ISR; then PostgreSQL restarts under all three, which all
    register again and lead at newer epochs. Nothing acknowledged is lost or written twice."""
    procs = cluster.procs
    history = History()
    topic, producer = producing(cluster, "fence", history)
    try:

        # One broker's session ends: it is fenced, the others lead its partitions, it comes back.
        victim = 2
        before = _epochs(cluster.url, topic)
        led = sorted(p for p, (leader, _e) in before.items() if leader == victim)
        assert len(led) == 2
        lines = len(procs[victim].stderr_lines)
        history.nemesis(f"terminate the session of broker {victim}")
        cut_at = time.monotonic()
        _terminate_session(cluster.url, victim)
        wait_until(lambda: _logged(procs[victim], "fenced", lines), 10.0, f"broker {victim} to fence itself")
        wait_until(lambda: _logged(procs[victim], "registered again", lines), TIMEOUT_S,
                   f"broker {victim} to register again")
        after = _epochs(cluster.url, topic)
        assert all(after[p][1] > before[p][1] for p in led), (before, after)  # new leader epochs
        wait_until(lambda: len(acks_after(history, cut_at, set(led))) >= 50, TIMEOUT_S,
                   "its partitions to acknowledge again")
        wait_full_isr(procs[1].bootstrap_servers, topic)

        # PostgreSQL restarts: every session ends; every broker is fenced and registers again.
        lines = {n: len(p.stderr_lines) for n, p in procs.items()}
        before = _epochs(cluster.url, topic)
        history.nemesis("restart PostgreSQL")
        restarted_at = time.monotonic()
        own_pg.restart()
        for n in NODES:
            wait_until(lambda n=n: _logged(procs[n], "registered again", lines[n]), TIMEOUT_S,
                       f"broker {n} to register again after the restart")
        wait_full_isr(procs[1].bootstrap_servers, topic)
        after = _epochs(cluster.url, topic)
        assert all(after[p][0] in NODES and after[p][1] > before[p][1] for p in after), (before, after)
        wait_until(lambda: {op.partition for op in acks_after(history, restarted_at)} == set(range(6)),
                   TIMEOUT_S, "every partition to acknowledge after the restart")
        again = time.monotonic()
        wait_until(lambda: len(acks_after(history, again)) >= 300, TIMEOUT_S, "traffic after the restart")
        leaders = {leader for leader, _r, _i in partition_isrs(procs[3].bootstrap_servers, topic).values()}
        assert leaders <= set(NODES)
    finally:
        producer.stop()
    check_history(cluster, topic, history, tmp_path / "history.jsonl")
