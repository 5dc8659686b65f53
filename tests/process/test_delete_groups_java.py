"""The Java admin client (kafka-clients 4.4) deletes consumer groups with DeleteGroups v3, the version Kafka 4.4
serves (its per-group error_message, null for these outcomes as Kafka sends it): a group with only committed
offsets is deleted (its offsets go), an unknown one is GroupIdNotFoundException, one with a member
GroupNotEmptyException."""

from __future__ import annotations

import uuid

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.wire.messages import offset_fetch as OF
from support.java_client import java_client_or_skip
from support.txn_helpers import TIMEOUT_S, create_topic, wait_until


def _commit(b: Broker, group: str, topic: str, offset: int) -> None:
    """Offsets for a group that has no member (librdkafka finds the coordinator first)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def _committed(b: Broker, group: str, topic: str) -> int:
    Q = OF.OffsetFetchRequest
    with BlockingConnection(b.host, b.port) as c:
        r = c.request(9, 7, Q(group_id=group, topics=[Q.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])]))
    return r.topics[0].partitions[0].committed_offset


def test_java_admin_deletes_groups_with_delete_groups_v3():
    java = java_client_or_skip()
    from confluent_kafka import Consumer

    with Broker(port=0, storage="memory") as b:
        topic = f"dg-{uuid.uuid4().hex[:8]}"
        done, busy, unknown = (f"{x}-{uuid.uuid4().hex[:8]}" for x in ("done", "busy", "unknown"))
        create_topic(b.bootstrap_servers, topic, 1)
        _commit(b, done, topic, 5)
        member = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": busy, "session.timeout.ms": 30000})
        try:
            member.subscribe([topic])
            wait_until(lambda: member.poll(0.2) is None and bool(member.assignment()), TIMEOUT_S, "an assignment")
            out = java(b.bootstrap_servers)._call("deleteGroups", groups=[done, busy, unknown])
        finally:
            member.close()
        assert out == {done: None, busy: "GroupNotEmptyException", unknown: "GroupIdNotFoundException"}
        assert b.call(lambda: b.broker_server.metrics.requests.get(("DeleteGroups", 3))) == 1
        assert _committed(b, done, topic) == -1
