"""Preferred-leader election, the automatic leader rebalance and partition reassignment in a cluster in one
process, with stock clients over real sockets: confluent-kafka's AdminClient.elect_leaders after a broker
restart (ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, every partition
with null), ``auto.leader.rebalance.enable`` moving leaders back on its own, and kafka-python's
alter_partition_reassignments / list_partition_reassignments moving an RF 3 partition from {0,1,2} to
{1,2,3} while an idempotent acks=all producer and a consumer group run, checked with the history checker.

Waits are on conditions (``ClusterServers.wait_for``, woken by the controller's changes), never sleeps."""

from __future__ import annotations

import os
import time
import uuid

from kbroker import Broker
from kbroker.errors import ErrorCode
from support.history import History, check
from support.workload import ConsumerWorker, ProducerWorker, final_read, record_producers

TIMEOUT_S = 30


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(b: Broker, topic: str, assignment: list[list[int]], configs: dict | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment, config=configs or {})
    admin.create_topics([new])[topic].result(TIMEOUT_S)
    assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)


def _partition(b: Broker, topic: str, index: int):
    return b.call(lambda: b.cluster.controller.topic(topic).partitions[index])


def _leaders(b: Broker, topic: str) -> list[int]:
    return b.call(lambda: [p.leader for p in b.cluster.controller.topic(topic).partitions])


def _wait(b: Broker, condition, timeout_s: float = TIMEOUT_S) -> bool:
    return b.call(b.cluster.wait_for, condition, timeout_s)


def _restart(b: Broker, node: int) -> None:
    b.stop_broker(node)
    b.start_broker(node)
    assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)


def _codes(result: dict) -> dict:
    """confluent-kafka's elect_leaders result as {(topic, partition): error code or 0}."""
    return {(tp.topic, tp.partition): 0 if e is None else e.code() for tp, e in result.items()}


def test_preferred_leader_election_after_a_restart_with_confluent_kafka():
    from confluent_kafka import ElectionType, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    with Broker(brokers=3, settings={"auto.leader.rebalance.enable": "false"}) as b:
        topic = _topic("elect")
        _create(b, topic, [[0, 1, 2], [1, 2, 0], [2, 0, 1]])
        assert _leaders(b, topic) == [0, 1, 2]
        _restart(b, 0)
        assert _leaders(b, topic) == [1, 1, 2]  # broker 0 is back in the ISR but leads nothing
        epoch = _partition(b, topic, 0).leader_epoch
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        result = admin.elect_leaders(ElectionType.PREFERRED, [
            TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition("no-such-topic", 0),
            TopicPartition(topic, 7)]).result(TIMEOUT_S)
        assert _codes(result) == {(topic, 0): 0, (topic, 1): ErrorCode.ELECTION_NOT_NEEDED,
                                  ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                  (topic, 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        assert _leaders(b, topic) == [0, 1, 2] and _partition(b, topic, 0).leader_epoch == epoch + 1
        # Every partition (null): those that needed no election are left out of the answer.
        assert admin.elect_leaders(ElectionType.PREFERRED, None).result(TIMEOUT_S) == {}
        # An unclean election where there is a leader is not needed either.
        assert _codes(admin.elect_leaders(ElectionType.UNCLEAN, [TopicPartition(topic, 2)]).result(TIMEOUT_S)) \
            == {(topic, 2): ErrorCode.ELECTION_NOT_NEEDED}

        # The preferred replica down: its partition's leader is a live ISR member, so nothing moves.
        b.stop_broker(2)
        assert _leaders(b, topic)[2] == 0
        assert _codes(admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 2)]).result(TIMEOUT_S)) \
            == {(topic, 2): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE}
        b.start_broker(2)
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        assert _codes(admin.elect_leaders(ElectionType.PREFERRED, None).result(TIMEOUT_S)) == {(topic, 2): 0}
        assert _leaders(b, topic) == [0, 1, 2]

        # Clients follow the moved leaders.
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
        for i in range(30):
            p.produce(topic, value=b"v%d" % i, partition=i % 3)
        assert p.flush(TIMEOUT_S) == 0


def test_elect_leaders_is_refused_without_cluster_alter(tmp_path):
    """With an authorizer and no ACL for ANONYMOUS, ElectLeaders, ListPartitionReassignments and
    AlterPartitionReassignments are CLUSTER_AUTHORIZATION_FAILED (kafka-python raises the top-level error)."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import ClusterAuthorizationFailedError

    settings = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "false"}
    with Broker(brokers=1, settings=settings) as b:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
        try:
            for refused in (lambda: admin.elect_leaders(0, [TopicPartition("t", 0)]),
                            lambda: admin.list_partition_reassignments(),
                            lambda: admin.alter_partition_reassignments({TopicPartition("t", 0): [0]})):
                try:
                    refused()
                except ClusterAuthorizationFailedError:
                    pass
                else:
                    raise AssertionError("allowed without an ACL")
        finally:
            admin.close()


def test_reassignment_over_the_control_plane():
    """``POST /topics/{t}/partitions/{p}/reassign``: a reassignment, its state in the answer, a cancel with
    none in progress and an unregistered broker (409 with Kafka's error)."""
    from support.control_http import control_call

    with Broker(brokers=3, control_port=0, settings={"auto.leader.rebalance.enable": "false"}) as b:
        topic = _topic("http")
        _create(b, topic, [[0, 1]])

        def call(body):
            return control_call(b.control_url, "POST", f"/topics/{topic}/partitions/0/reassign", body, TIMEOUT_S)
        status, answer = call({"replicas": [2, 1]})
        assert status == 200 and answer["removing"] in ([0], []), answer

        def done():
            p = b.cluster.controller.topic(topic).partitions[0]
            return p.replicas == [2, 1] and sorted(p.isr) == [1, 2]
        assert _wait(b, done)
        status, answer = call({"replicas": None})
        assert status == 409 and "NO_REASSIGNMENT_IN_PROGRESS" in answer["error"]
        status, answer = call({"replicas": [2, 7]})
        assert status == 409 and "INVALID_REPLICA_ASSIGNMENT" in answer["error"]
        assert b.reassign(topic, 0, [1, 2])["replicas"] == [1, 2]  # a reorder completes at once


def test_auto_leader_rebalance_moves_leaders_back():
    with Broker(brokers=3, settings={"leader.imbalance.check.interval.seconds": "0.2"}) as b:
        topic = _topic("rebalance")
        _create(b, topic, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]])
        b.stop_broker(0)
        assert _leaders(b, topic) == [1, 1, 2, 2]
        b.start_broker(0)

        def balanced():
            return [p.leader for p in b.cluster.controller.topic(topic).partitions] == [0, 1, 2, 0]
        assert _wait(b, balanced), _leaders(b, topic)


def test_reassignment_under_load_loses_nothing_acknowledged(tmp_path):
    """RF 3 {0,1,2} -> {1,2,3} with kafka-python's admin while traffic runs: the reassignment is listed while
    broker 3 cannot catch up (cut off), completes once it is in the ISR, the leader moves off broker 0, broker
    0 deletes its copy; a cancel, and the errors Kafka answers with."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    history = History()
    settings = {"auto.leader.rebalance.enable": "false", "replica.lag.time.max.ms": "3000"}
    with Broker(brokers=4, data_dir=tmp_path / "data", settings=settings) as b:
        topic = _topic("reassign")
        _create(b, topic, [[0, 1, 2], [1, 2, 0]], {"min.insync.replicas": "2"})
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
        producer = ProducerWorker(history, b.bootstrap_servers, topic, 2, 0).start()
        consumer = ConsumerWorker(history, b.bootstrap_servers, topic, "reassign-group", 0).start()
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        try:
            _until(lambda: producer.acknowledged() >= 200, "traffic before the reassignment")
            b.cut_off(3)  # it cannot fetch yet: the reassignment stays in progress, to be listed
            history.nemesis("reassign 0 to [1, 2, 3]")
            assert admin.alter_partition_reassignments({tp0: [1, 2, 3]}) == {tp0: None}
            assert admin.list_partition_reassignments() == {
                tp0: {"replicas": [1, 2, 3, 0], "adding_replicas": [3], "removing_replicas": [0]}}
            assert admin.list_partition_reassignments({topic: [1]}) == {}
            acked = producer.acknowledged()
            _until(lambda: producer.acknowledged() >= acked + 100, "traffic during the reassignment")
            b.restore(3)

            def done():
                p = b.cluster.controller.topic(topic).partitions[0]
                return p.replicas == [1, 2, 3] and sorted(p.isr) == [1, 2, 3] and not p.reassigning
            assert _wait(b, done), _partition(b, topic, 0)
            assert _partition(b, topic, 0).leader == 1  # broker 0 led it; the first of the target in sync leads
            assert admin.list_partition_reassignments() == {}
            on_0 = b.call(lambda: b.cluster.servers[0].state.topics.get(topic).partitions[0].log)
            assert on_0 is None
            assert not os.path.exists(tmp_path / "data" / "broker-0" / f"{topic}-0")
            acked = producer.acknowledged()
            _until(lambda: producer.acknowledged() >= acked + 200, "traffic after the reassignment")

            # A reassignment cancelled while the new replica cannot catch up: back to what it was.
            b.cut_off(3)
            history.nemesis("reassign 1 to [3, 2, 0], then cancel")
            assert admin.alter_partition_reassignments({tp1: [3, 2, 0]}) == {tp1: None}
            assert _partition(b, topic, 1).replicas == [3, 2, 0, 1]
            assert admin.alter_partition_reassignments({tp1: None}) == {tp1: None}
            p1 = _partition(b, topic, 1)
            assert (p1.replicas, p1.adding, p1.removing) == ([2, 0, 1], [], [])
            b.restore(3)
            errors = admin.alter_partition_reassignments({tp1: None, tp0: [1, 2, 9],
                                                          TopicPartition("no-such-topic", 0): [1]})
            assert {tp: e.errno if e is not None else 0 for tp, e in errors.items()} == {
                tp1: ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, tp0: ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                TopicPartition("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
            acked = producer.acknowledged()
            _until(lambda: producer.acknowledged() >= acked + 100, "traffic after the cancel")
        finally:
            producer.stop()
            admin.close()
        final = final_read(b.bootstrap_servers, topic, 2)
        producers = record_producers(b.bootstrap_servers, topic, 2, final)
        total = sum(len(r) for r in final.values())
        _until(lambda: consumer.reads >= total, "the group to read everything")
        consumer.stop()
    result = check(history, final, producers)
    history.save(tmp_path / "history.jsonl")
    assert result.valid, result.summary()
    assert result.acknowledged >= 600 and result.in_doubt == 0, result.summary()


def _until(condition, what: str, timeout_s: float = 60) -> None:
    """Wait for the clients' progress (their threads, not the broker's loop, move it)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
