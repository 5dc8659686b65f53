"""Fault-injection runs against a three-broker cluster in one process, checked Jepsen-style: idempotent
``acks=all`` producers and a read_committed consumer group run while a nemesis stops and restarts brokers;
every operation is recorded (tests/support/history.py) and the history is checked against a final read of
every partition: nothing acknowledged lost, nothing written twice or out of order, no read of a record the
log does not keep. A failing run leaves its history as JSON lines in the test's temporary directory. A second
run's nemesis reassigns partitions (replication factor 3 over four brokers) instead.

Replication factor 1 for now: a stopped broker's partitions have no leader until it is back, so the
producers' sends to them wait (librdkafka retries) and then complete."""

from __future__ import annotations

import time
import uuid

from kbroker import Broker
from support.history import History, check
from support.workload import ConsumerWorker, ProducerWorker, final_read, record_producers

PARTITIONS = 6
TIMEOUT_S = 60


def _wait(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _read_and_check(b: Broker, topic: str, history: History, consumers: list, tmp_path):
    """The final read of every partition, once the group has read as much, with each record's producer id and
    epoch, then the history's check (the history saved next to the test's output)."""
    final = final_read(b.bootstrap_servers, topic, PARTITIONS)
    producers = record_producers(b.bootstrap_servers, topic, PARTITIONS, final)
    total = sum(len(r) for r in final.values())
    _wait(lambda: sum(c.reads for c in consumers) >= total, "the group to read everything")
    for c in consumers:
        c.stop()
    result = check(history, final, producers)
    history.save(tmp_path / "history.jsonl")
    print(result.summary())  # shown with -rP: the resends after an epoch bump of a passing run
    return result


def _create(bootstrap: str, topic: str, replication_factor: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor)])[topic].result(TIMEOUT_S)


def test_stop_and_restart_each_broker_loses_nothing_acknowledged(tmp_path):
    history = History()
    with Broker(brokers=3, data_dir=tmp_path / "data") as b:
        topic = f"history-{uuid.uuid4().hex[:8]}"
        _create(b.bootstrap_servers, topic, 1)
        producers = [ProducerWorker(history, b.bootstrap_servers, topic, PARTITIONS, n).start() for n in range(2)]
        consumers = [ConsumerWorker(history, b.bootstrap_servers, topic, "history-group", n).start()
                     for n in range(2)]
        try:
            for node in b.node_ids:
                acked = sum(p.acknowledged() for p in producers)
                _wait(lambda: sum(p.acknowledged() for p in producers) >= acked + 300, "traffic before a stop")
                history.nemesis(f"stop {node}")
                b.stop_broker(node)
                acked = sum(p.acknowledged() for p in producers)
                _wait(lambda: sum(p.acknowledged() for p in producers) >= acked + 100,
                      "the other brokers' partitions to go on while one is down")
                history.nemesis(f"start {node}")
                b.start_broker(node)
                assert b.wait_for_leaders(timeout_s=TIMEOUT_S)
            acked = sum(p.acknowledged() for p in producers)
            _wait(lambda: sum(p.acknowledged() for p in producers) >= acked + 300, "traffic after the last start")
        finally:
            for p in producers:
                p.stop()
        result = _read_and_check(b, topic, history, consumers, tmp_path)
    assert result.valid, result.summary()
    assert result.nemesis == ["stop 0", "start 0", "stop 1", "start 1", "stop 2", "start 2"]
    assert result.acknowledged > 1000 and result.in_doubt == 0, result.summary()


def test_reassigning_partitions_under_traffic_loses_nothing_acknowledged(tmp_path):
    """Four brokers, replication factor 3, min.insync.replicas 2: the nemesis reassigns every partition to
    the next three brokers (AlterPartitionReassignments through kbroker's Python control plane), round after
    round, while producers and a group run; each round waits for every reassignment to complete (the new
    replica caught up, the old one gone, the leader moved where it had to)."""
    history = History()
    with Broker(brokers=4, data_dir=tmp_path / "data", settings={"auto.leader.rebalance.enable": "false"}) as b:
        topic = f"history-reassign-{uuid.uuid4().hex[:8]}"
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        assignment = [[(p + r) % 4 for r in range(3)] for p in range(PARTITIONS)]
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replica_assignment=assignment,
                                      config={"min.insync.replicas": "2"})])[topic].result(TIMEOUT_S)
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        producers = [ProducerWorker(history, b.bootstrap_servers, topic, PARTITIONS, n).start() for n in range(2)]
        consumers = [ConsumerWorker(history, b.bootstrap_servers, topic, "history-reassign", n).start()
                     for n in range(2)]

        def settled():
            return all(not p.reassigning and sorted(p.isr) == sorted(p.replicas)
                       for p in b.cluster.controller.topic(topic).partitions)
        try:
            for shift in range(1, 4):
                acked = sum(p.acknowledged() for p in producers)
                _wait(lambda: sum(p.acknowledged() for p in producers) >= acked + 300, "traffic before a round")
                history.nemesis(f"reassign +{shift}")
                for index in range(PARTITIONS):
                    b.reassign(topic, index, [(index + shift + r) % 4 for r in range(3)])
                assert b.call(b.cluster.wait_for, settled, TIMEOUT_S)
            acked = sum(p.acknowledged() for p in producers)
            _wait(lambda: sum(p.acknowledged() for p in producers) >= acked + 300, "traffic after the last round")
        finally:
            for p in producers:
                p.stop()
        assert [p.replicas for p in b.call(lambda: b.cluster.controller.topic(topic).partitions)] == \
            [[(index + 3 + r) % 4 for r in range(3)] for index in range(PARTITIONS)]
        result = _read_and_check(b, topic, history, consumers, tmp_path)
    assert result.valid, result.summary()
    # librdkafka's log reached the history (what tells its resends apart): each producer's id at least.
    assert {op.process for op in history.snapshot() if op.f == "producer-id"} == {p.name for p in producers}
    assert result.nemesis == ["reassign +1", "reassign +2", "reassign +3"]
    assert result.acknowledged > 1000 and result.in_doubt == 0, result.summary()
