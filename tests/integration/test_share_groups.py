"""Share groups (KIP-932), the coordinator half, with confluent-kafka's ShareConsumer (librdkafka) over real
sockets: its ShareGroupHeartbeat joins and gets an assignment, a second member shares the work, the group is listed
(ListGroups) and deleted (DeleteGroups) through the AdminClient, closing leaves the group, and a group survives a
broker restart (its ShareGroup* records in __consumer_offsets)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker import Broker

TIMEOUT_MS = 20_000


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _consumer(b: Broker, group: str, topic: str, client_id: str) -> ShareConsumer:
    c = ShareConsumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group, "client.id": client_id})
    c.subscribe([topic])
    return c


def _assigned(group: dict) -> dict[str, set[int]]:
    return {m["client_id"]: {p for a in m["assignment"] for p in a["partitions"]} for m in group["members"]}


@pytest.fixture
def broker():
    with Broker(port=0, storage="memory") as b:
        yield b


def test_share_consumers_get_assignments_and_the_admin_client_sees_the_group(broker):
    topic, group = _name("t"), _name("sg")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)
    first = _consumer(broker, group, topic, "first")
    try:
        assert broker.control.wait_for_group(group, "Stable", members=1, timeout_ms=TIMEOUT_MS)
        g = broker.control.group(group)
        assert (g["group_type"], g["protocol_type"], g["protocol"]) == ("share", "share", "simple")
        assert _assigned(g) == {"first": {0, 1, 2}}
        assert [m["subscribed_topic_names"] for m in g["members"]] == [[topic]]
        second = _consumer(broker, group, topic, "second")
        try:
            assert broker.control.wait_for_group(group, "Stable", members=2, timeout_ms=TIMEOUT_MS)
            g = broker.control.group(group)
            parts = _assigned(g)
            # Three partitions for two members: each partition to one of them (the simple assignor shares a
            # partition only when members outnumber partitions); "first" gives one up on its next heartbeat.
            assert parts["second"] and parts["second"] <= {0, 1, 2}
            assert g["generation_id"] == 2 and g["assignment_epoch"] == 2

            listed = {x.id: x for x in admin.list_groups(timeout=10)}
            assert group in listed
            # The consumer-group listing asks for the consumer and classic types (KIP-848's types filter), as
            # Kafka answers it: a share group is not among them.
            consumer_groups = admin.list_consumer_groups(request_timeout=10).result()
            assert group not in {x.group_id for x in consumer_groups.valid}
            # DeleteGroups refuses a group with members.
            with pytest.raises(Exception, match="NON_EMPTY_GROUP|not empty"):
                admin.delete_consumer_groups([group], request_timeout=10)[group].result()
        finally:
            second.close()  # a heartbeat with epoch -1
        assert broker.control.wait_for_group(group, "Stable", members=1, timeout_ms=TIMEOUT_MS)
    finally:
        first.close()
    assert broker.control.wait_for_group(group, "Empty", members=0, timeout_ms=TIMEOUT_MS)
    admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert group not in {x.id for x in admin.list_groups(timeout=10)}


def test_a_share_group_survives_a_broker_restart(tmp_path):
    """The member, its epoch and its assignment come back from __consumer_offsets; its session starts again."""
    topic, group = _name("t"), _name("sg")
    c = None
    try:
        with Broker(port=0, data_dir=tmp_path) as b:
            admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
            admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
            c = _consumer(b, group, topic, "restarted")
            assert b.control.wait_for_group(group, "Stable", members=1, timeout_ms=TIMEOUT_MS)
            before = b.control.group(group)
        with Broker(port=0, data_dir=tmp_path) as b:
            assert b.control.wait_for_group(group, "Stable", members=1, timeout_ms=TIMEOUT_MS)
            after = b.control.group(group)
            for key in ("generation_id", "assignment_epoch", "members"):
                assert after[key] == before[key]
            assert _assigned(after) == {"restarted": {0, 1}}
            admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
            assert group in {x.id for x in admin.list_groups(timeout=10)}
    finally:
        if c is not None:
            c.close()
