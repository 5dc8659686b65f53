"""Share groups (KIP-932), the coordinator half, with confluent-kafka's ShareConsumer (librdkafka) over real
sockets: its ShareGroupHeartbeat joins and gets an assignment, a second member shares the work, the group is listed
(ListGroups) and deleted (DeleteGroups) through the AdminClient, closing leaves the group, a group survives a
broker restart (its ShareGroup* records in __consumer_offsets), group configs set its settings, and three members
sharing one partition consume every record once (with the share-partition half)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.wire.messages import find_coordinator as FC
from kbroker.wire.messages import list_config_resources as LCR
from kbroker.wire.messages import share_group_heartbeat as SGH

TIMEOUT_MS = 20_000
TIMEOUT_S = 30


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


def test_group_configs_through_the_admin_client_set_the_share_groups_settings(broker):
    """IncrementalAlterConfigs and DescribeConfigs on a GROUP resource (Kafka's GroupConfig): the group's value
    (source GROUP_CONFIG) over the broker's group.share.* setting (DEFAULT_CONFIG), checked against the broker's
    bounds; the share group's heartbeats then carry the group's heartbeat interval."""
    topic, group = _name("t"), _name("sg")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)

    def alter(*entries):
        r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries])
        return admin.incremental_alter_configs([r])[r].result(10)

    alter(("share.auto.offset.reset", "earliest", AlterConfigOpType.SET),
          ("share.heartbeat.interval.ms", "7000", AlterConfigOpType.SET),
          ("share.record.lock.duration.ms", "20000", AlterConfigOpType.SET))
    resource = ConfigResource(ResourceType.GROUP, group)
    described = admin.describe_configs([resource])[resource].result(10)
    assert {n: (e.value, e.source) for n, e in described.items() if n.startswith("share.")} == {
        "share.auto.offset.reset": ("earliest", 8), "share.heartbeat.interval.ms": ("7000", 8),
        "share.record.lock.duration.ms": ("20000", 8), "share.session.timeout.ms": ("45000", 5),
        "share.delivery.count.limit": ("5", 5), "share.partition.max.record.locks": ("2000", 5),
        "share.isolation.level": ("read_uncommitted", 5), "share.renew.acknowledge.enable": ("true", 5)}
    for bad, message in [("1000", "must be greater than or equal to group.share.min.record.lock.duration.ms"),
                         ("x", "Not a number of type INT")]:
        with pytest.raises(Exception, match=message):
            alter(("share.record.lock.duration.ms", bad, AlterConfigOpType.SET))
    with pytest.raises(Exception, match="INVALID_CONFIG"):
        alter(("share.auto.offset.reset", "sometimes", AlterConfigOpType.SET))

    with BlockingConnection(broker.host, broker.port) as conn:
        # ListConfigResources (v1, KIP-1142) lists the group among the GROUP resources with configs.
        listed = conn.request(74, 1, LCR.ListConfigResourcesRequest(resource_types=[32]))
        assert [(r.resource_name, r.resource_type) for r in listed.config_resources] == [(group, 32)]
        for _ in range(100):  # the coordinator's partition is created, then loaded, as a client finds it
            r = conn.request(76, 1, SGH.ShareGroupHeartbeatRequest(group_id=group, member_id="m", member_epoch=0,
                                                                   subscribed_topic_names=[topic]))
            if r.error_code not in (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR,
                                    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS):
                break
            conn.request(10, 4, FC.FindCoordinatorRequest(key_type=0, coordinator_keys=[group]))
        assert (r.error_code, r.member_epoch, r.heartbeat_interval_ms) == (0, 1, 7000)
        alter(("share.heartbeat.interval.ms", None, AlterConfigOpType.DELETE))
        r = conn.request(76, 1, SGH.ShareGroupHeartbeatRequest(group_id=group, member_id="m", member_epoch=1))
        assert (r.error_code, r.heartbeat_interval_ms, r.assignment) == (0, 5000, None)
        r = conn.request(76, 1, SGH.ShareGroupHeartbeatRequest(group_id=group, member_id="m", member_epoch=-1))
        assert (r.error_code, r.member_epoch) == (0, -1)


def test_three_share_consumers_on_one_partition_together_receive_every_record_once(broker):
    """End to end with the share-partition half (ShareFetch, acknowledgements): the coordinator gives the one
    partition to all three members, each record is acquired by one of them, and acknowledged (implicit mode)."""
    topic, group = _name("t"), _name("sg")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    # The group starts at the earliest offset, so that what is produced before the members join is delivered.
    r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap_servers})
    sent = {f"v{i}" for i in range(60)}
    for v in sorted(sent):
        p.produce(topic, v.encode())
    assert p.flush(10) == 0
    consumers = [_consumer(broker, group, topic, f"c{i}") for i in range(3)]
    try:
        assert broker.control.wait_for_group(group, "Stable", members=3, timeout_ms=TIMEOUT_MS)
        g = broker.control.group(group)
        assert _assigned(g) == {"c0": {0}, "c1": {0}, "c2": {0}}  # the partition shared by the three
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < len(sent) and time.monotonic() < deadline:
            for c, name in zip(consumers, ("c0", "c1", "c2")):
                for m in c.poll(0.2):
                    assert m.error() is None, m.error()
                    got.append((name, m.value().decode()))
        values = [v for _, v in got]
        assert sorted(values) == sorted(sent)  # every record, none twice
    finally:
        for c in consumers:
            c.close()
    assert broker.control.wait_for_group(group, "Empty", members=0, timeout_ms=TIMEOUT_MS)
