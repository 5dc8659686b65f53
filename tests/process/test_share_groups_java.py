"""Share groups (KIP-932) with the Java client (kafka-clients 4.4): KafkaShareConsumers join through
ShareGroupHeartbeat and consume, and the Java admin lists (ListGroups with the share type) and describes
(ShareGroupDescribe) the group."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from kbroker import Broker
from support.java_client import java_client_or_skip


def test_java_share_consumer_and_admin():
    java = java_client_or_skip()
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"sg-{uuid.uuid4().hex[:8]}"
    with Broker(port=0, storage="memory") as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
        r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([r])[r].result(10)
        p = Producer({"bootstrap.servers": b.bootstrap_servers})
        for i in range(20):
            p.produce(topic, f"v{i}".encode(), partition=i % 2)
        assert p.flush(10) == 0

        client = java(b.bootstrap_servers)
        got = client.share_consume(topic, group, 20, client_id="java-share")
        assert sorted(rec.value for rec, _ in got) == sorted(f"v{i}".encode() for i in range(20))
        assert {count for _, count in got} == {1}  # each delivered once

        # The consumer left when it closed: the group is Empty, with the epochs its member moved it to.
        assert b.control.wait_for_group(group, "Empty", members=0, timeout_ms=20_000)
        assert client.list_share_groups() == {group: "Empty"}
        d = client.describe_share_group(group)
        assert (d["state"], d["members"], d["groupEpoch"], d["assignmentEpoch"]) == ("Empty", [], 2, 2)

        # With a member: its client id, epoch and both partitions, as the Java admin reads ShareGroupDescribe.
        c = ShareConsumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group, "client.id": "py-share"})
        c.subscribe([topic])
        try:
            assert b.control.wait_for_group(group, "Stable", members=1, timeout_ms=20_000)
            d = client.describe_share_group(group)
            assert d["state"] == "Stable" and d["groupEpoch"] == 3 == d["assignmentEpoch"]
            assert d["members"] == [{"clientId": "py-share", "memberEpoch": 3,
                                     "partitions": [f"{topic}-0", f"{topic}-1"]}]
            assert client.list_share_groups() == {group: "Stable"}
        finally:
            c.close()
