"""Stray partition directories at start-up (Kafka's stray logs, KAFKA-14616): a broker that was down while
one of its partitions was reassigned away, its topic deleted, or deleted and made again elsewhere (a new
topic id), finds their directories when it starts; once it has the cluster's metadata it renames them
``<topic>-<partition>.<uuid>-stray`` and removes them, and keeps every partition the metadata still gives
it. In a cluster in one process and with brokers as processes over PostgreSQL, with stock clients (kafka-python's
reassignment, confluent-kafka's topic admin) over real sockets; the data stays readable on the brokers that
have it."""

from __future__ import annotations

import uuid

from kbroker import Broker
from support.clients import CLIENTS
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

TIMEOUT_S = 30


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(bootstrap: str, assignments: dict[str, list[list[int]]]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, num_partitions=len(a), replica_assignment=a)
                                   for t, a in assignments.items()])
    for fut in futures.values():
        fut.result(TIMEOUT_S)


def _delete(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future is answered
    admin.delete_topics([topic])[topic].result(TIMEOUT_S)


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 1) -> list[bytes]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    values = [f"{topic}-{i}".encode() for i in range(count)]
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % partitions)
    assert p.flush(TIMEOUT_S) == 0
    return values


def _reassign(bootstrap: str, topic: str, partition: int, replicas: list[int]) -> None:
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        tp = TopicPartition(topic, partition)
        assert admin.alter_partition_reassignments({tp: replicas}) == {tp: None}
        wait_until(lambda: admin.list_partition_reassignments() == {}, TIMEOUT_S, "the reassignment to end")
    finally:
        admin.close()


def _values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    got = CLIENTS["kafka-python"](bootstrap).consume_assigned(topic, 1, count)
    return sorted(v for _p, _o, _k, v, _h, _ts in got)


def _partition_dirs(data_dir) -> set[str]:
    return {d.name for d in data_dir.iterdir() if d.is_dir()}


def test_stray_directories_go_at_start_up_in_one_process(tmp_path):
    """Broker 0 of three is stopped; meanwhile a partition it had moves to {1, 2}, a topic is deleted and a
    topic it had is deleted and made again on {1, 2}. When it starts those three directories are gone (the
    last one by its stored topic id: the name is still a topic), the partitions it still has are kept, and
    every record of the moved partition is read back from brokers 1 and 2."""
    with Broker(brokers=3, data_dir=tmp_path, settings={"auto.leader.rebalance.enable": "false"}) as b:
        moved, gone, again, kept = _name("moved"), _name("gone"), _name("again"), _name("kept")
        _create(b.bootstrap_servers, {moved: [[0, 1]], gone: [[0, 1]], again: [[1, 0]], kept: [[1, 0]]})
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        values = _produce(b.bootstrap_servers, moved, 50)
        kept_values = _produce(b.bootstrap_servers, kept, 20)
        _produce(b.bootstrap_servers, again, 5)
        _produce(b.bootstrap_servers, gone, 5)  # a partition's directory is made at its first write
        broker0 = tmp_path / "broker-0"
        assert {f"{t}-0" for t in (moved, gone, again, kept)} <= _partition_dirs(broker0)

        b.stop_broker(0)
        _reassign(b.bootstrap_servers, moved, 0, [1, 2])
        _delete(b.bootstrap_servers, gone)
        _delete(b.bootstrap_servers, again)
        _create(b.bootstrap_servers, {again: [[1, 2]]})
        b.start_broker(0)

        dirs = _partition_dirs(broker0)
        assert f"{kept}-0" in dirs
        assert not {f"{t}-0" for t in (moved, gone, again)} & dirs, dirs
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        assert _values(b.bootstrap_servers, moved, 50) == sorted(values)
        assert _values(b.bootstrap_servers, kept, 20) == sorted(kept_values)
        assert b.call(lambda: b.cluster.servers[0].state.topics.get(kept).partitions[0].log) is not None
    assert not [d for d in _partition_dirs(broker0) if d.endswith("-stray")]  # removed off the loop meanwhile


@needs_postgres
def test_stray_directories_go_at_start_up_as_processes(pg, tmp_path):
    """The same with three ``kbroker serve --cluster postgresql://...`` processes: broker 1 is stopped, a
    partition of it moves to {2, 3} and a topic is deleted; when it starts again both directories are gone and
    the moved partition's records are read from the others."""
    from support.pgcluster import ProcessCluster, logs_on_failure, wait_full_isr

    cluster = ProcessCluster(pg.new_database(), tmp_path, "--set", "auto.leader.rebalance.enable=false")
    cluster.start()
    with logs_on_failure(cluster):
        procs = cluster.procs
        moved, gone, kept = _name("pg-moved"), _name("pg-gone"), _name("pg-kept")
        _create(procs[2].bootstrap_servers, {moved: [[1, 2]], gone: [[1, 3]], kept: [[2, 1]]})
        for t in (moved, gone, kept):
            wait_full_isr(procs[3].bootstrap_servers, t)
        values = _produce(procs[2].bootstrap_servers, moved, 40)
        _produce(procs[2].bootstrap_servers, gone, 5)
        _produce(procs[2].bootstrap_servers, kept, 5)
        broker1 = tmp_path / "broker-1"
        assert {f"{moved}-0", f"{gone}-0", f"{kept}-0"} <= _partition_dirs(broker1)

        procs[1].stop()
        _reassign(procs[2].bootstrap_servers, moved, 0, [2, 3])
        _delete(procs[3].bootstrap_servers, gone)
        cluster.start(1)

        dirs = _partition_dirs(broker1)
        assert f"{kept}-0" in dirs
        assert not {f"{moved}-0", f"{gone}-0"} & dirs, dirs
        assert _values(procs[1].bootstrap_servers, moved, 40) == sorted(values)
