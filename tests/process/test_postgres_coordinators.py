"""The group and transaction coordinators of brokers as processes over PostgreSQL: kill -9 of the broker that
coordinates a group and a transactional id (the leader of their partitions of __consumer_offsets and
__transaction_state, replicated three times) hands both partitions to another replica, which loads their
records: the group's committed offsets survive, and a transaction in flight when the broker died ends
committed or aborted as a whole, as a read_committed consumer sees it."""

from __future__ import annotations

import pytest

from kbroker.client import BlockingConnection
from kbroker.wire.messages import find_coordinator as FC
from support.groupclients import commit_offsets, committed_offsets
from support.pgcluster import NODES, TIMEOUT_S, create_confluent, new_topic_name, running, wait_full_isr
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import read_committed_values, wait_until

pytestmark = needs_postgres

RECORDS = 30


@pytest.fixture()
def cluster(pg, tmp_path):
    with running(pg.new_database(), tmp_path) as c:
        yield c


def _coordinator(proc, key_type: int, key: str) -> int | None:
    """The coordinator FindCoordinator (v4) names through ``proc``; None while there is none."""
    c = BlockingConnection(proc.host, proc.port)
    try:
        r = c.request(10, 4, FC.FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key]))
    finally:
        c.close()
    (x,) = r.coordinators
    return None if x.error_code else x.node_id


def _keys_on_one_broker(proc) -> tuple[int, str, str]:
    """(node, group id, transactional id): a group and a transactional id that one broker coordinates."""
    wait_until(lambda: _coordinator(proc, 0, "probe") is not None and _coordinator(proc, 1, "probe") is not None,
               TIMEOUT_S, "the internal topics to be created and led")
    groups = {}
    while True:
        group = new_topic_name("g")
        groups.setdefault(_coordinator(proc, 0, group), group)
        tid = new_topic_name("tx")
        node = _coordinator(proc, 1, tid)
        if node in groups:
            return node, groups[node], tid


def test_kill_9_of_the_coordinators_broker_keeps_offsets_and_ends_the_transaction_whole(cluster):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    procs = cluster.procs
    out, src = new_topic_name("out"), new_topic_name("src")
    create_confluent(procs[1].bootstrap_servers, out, 3)
    create_confluent(procs[1].bootstrap_servers, src, 1)
    node, group, tid = _keys_on_one_broker(procs[1])
    survivor = next(n for n in NODES if n != node)
    commit_offsets(cluster.bootstrap(), group, src, {0: 7})  # committed before the kill: it must survive
    wait_full_isr(procs[survivor].bootstrap_servers, "__consumer_offsets")
    wait_full_isr(procs[survivor].bootstrap_servers, "__transaction_state")
    wait_full_isr(procs[survivor].bootstrap_servers, out)

    p = Producer({"bootstrap.servers": cluster.bootstrap(), "transactional.id": tid,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(RECORDS):
        p.produce(out, value=f"v{i}".encode(), partition=i % 3)
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group, "enable.auto.commit": False})
    p.send_offsets_to_transaction([TopicPartition(src, 0, 33)], c.consumer_group_metadata(), TIMEOUT_S)
    c.close()
    assert p.flush(TIMEOUT_S) == 0

    procs[node].kill()  # kill -9 of the coordinator of both, mid-transaction
    wait_until(lambda: _coordinator(procs[survivor], 1, tid) not in (None, node), TIMEOUT_S,
               "another broker to coordinate the transactional id")
    wait_until(lambda: _coordinator(procs[survivor], 0, group) not in (None, node), TIMEOUT_S,
               "another broker to coordinate the group")
    try:
        p.commit_transaction(TIMEOUT_S)
        committed = True
    except KafkaException as e:  # the commit could not be confirmed: the producer aborts, as an app would
        assert e.args[0].txn_requires_abort() or e.args[0].retriable(), e
        p.abort_transaction(TIMEOUT_S)
        committed = False
    surviving = cluster.bootstrap()
    everything = sorted(f"v{i}".encode() for i in range(RECORDS))
    # commit_transaction returns once the commit is decided; the markers reach the partitions after it (as in
    # Kafka), and until then a read_committed reader's end of partition is the open transaction's start. So
    # a committed transaction is read again until its markers are all written (or the wait fails).
    got = read_committed_values(surviving, out, 3)
    if committed and sorted(got) != everything:
        got = wait_until(lambda: (lambda v: v if sorted(v) == everything else None)(
            read_committed_values(surviving, out, 3)), TIMEOUT_S, "every partition's commit marker")
    offsets = committed_offsets(surviving, group, src, 1)
    print(f"coordinator {node} killed: the transaction ended {'committed' if committed else 'aborted'}")
    if committed:
        assert sorted(got) == everything
        assert offsets == {0: 33}
    else:
        assert got == []
        assert offsets == {0: 7}
