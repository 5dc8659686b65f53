"""Group configs of a consumer-protocol (KIP-848) group with stock clients over real sockets: confluent-kafka's
AdminClient sets consumer.heartbeat.interval.ms and consumer.session.timeout.ms on a GROUP resource
(IncrementalAlterConfigs) and reads them back (DescribeConfigs: GROUP_CONFIG over DEFAULT_CONFIG); librdkafka's
`group.protocol=consumer` member then heartbeats at the group's interval from its next heartbeat on (counted in the
control plane's request log), and a killed member leaves the group after the group's session timeout, not the
broker's 45 s."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from support.groupclients import MemberProcess, wait_until
from kbroker import Broker

CONSUMER_GROUP_HEARTBEAT = 68
GROUP_CONFIG, DEFAULT_CONFIG = 8, 5


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker():
    # Kafka's 45 s session with the lower bounds lowered, so that a group may ask for less; a 2 s heartbeat
    # interval (Kafka's is 5 s), so that the member's changes of pace are seen in seconds.
    with Broker(port=0, storage="memory", group_consumer_min_session_timeout_ms=1000,
                group_consumer_min_heartbeat_interval_ms=100, group_consumer_heartbeat_interval_ms=2000) as b:
        yield b


def _alter(admin: AdminClient, group: str, *entries):
    r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op) for name, value, op in entries])
    return admin.incremental_alter_configs([r])[r].result(10)


def _described(admin: AdminClient, group: str) -> dict[str, tuple[str, int]]:
    resource = ConfigResource(ResourceType.GROUP, group)
    described = admin.describe_configs([resource])[resource].result(10)
    return {n: (e.value, e.source) for n, e in described.items() if n.startswith("consumer.")}


def _heartbeat_times(broker: Broker, client_id: str) -> list[float]:
    return [r["time"] for r in broker.control.requests(1000)
            if r["api_key"] == CONSUMER_GROUP_HEARTBEAT and r["client_id"] == client_id]


def test_group_configs_are_validated_described_and_set_the_members_heartbeat_interval(broker):
    topic, group = _name("t"), _name("g")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    assert _described(admin, group) == {"consumer.session.timeout.ms": ("45000", DEFAULT_CONFIG),
                                        "consumer.heartbeat.interval.ms": ("2000", DEFAULT_CONFIG)}
    for name, bad, message in [
            ("consumer.heartbeat.interval.ms", "50", "consumer.heartbeat.interval.ms must be in the range 100 to 15000"),
            ("consumer.session.timeout.ms", "60001", "consumer.session.timeout.ms must be in the range 1000 to 60000"),
            ("consumer.session.timeout.ms", "2000", "consumer.session.timeout.ms must be greater than "
                                                    "consumer.heartbeat.interval.ms"),
            ("consumer.heartbeat.interval.ms", "x", "Not a number of type INT"),
            ("consumer.assignment.interval.ms", "100", "not supported by kbroker")]:
        with pytest.raises(KafkaException, match=message):
            _alter(admin, group, (name, bad, AlterConfigOpType.SET))

    client_id = _name("hb")
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group, "group.protocol": "consumer",
                  "client.id": client_id})
    try:
        c.subscribe([topic])

        def stable():
            c.poll(0.1)
            d = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
            return d.state == ConsumerGroupState.STABLE and len(d.members) == 1
        wait_until(stable, 20, "the member joined")
        # The broker's 2 s interval until the group asks for 200 ms: the member's next heartbeat carries it, and
        # from then on it heartbeats about five times a second (at 2 s, 15 would take half a minute).
        _alter(admin, group, ("consumer.heartbeat.interval.ms", "200", AlterConfigOpType.SET))
        assert _described(admin, group)["consumer.heartbeat.interval.ms"] == ("200", GROUP_CONFIG)
        changed = time.time()

        def frequent():
            c.poll(0.1)
            return len([t for t in _heartbeat_times(broker, client_id) if t > changed]) >= 15
        wait_until(frequent, 15, "heartbeats at the group's interval")
        # Back to the broker's interval once the group config is deleted.
        _alter(admin, group, ("consumer.heartbeat.interval.ms", None, AlterConfigOpType.DELETE))
        assert _described(admin, group)["consumer.heartbeat.interval.ms"] == ("2000", DEFAULT_CONFIG)
        deleted = time.time()

        def slow_again():
            c.poll(0.1)
            times = [t for t in _heartbeat_times(broker, client_id) if t > deleted]
            return len(times) >= 3 and times[-1] - times[-2] > 1.0
        wait_until(slow_again, 20, "heartbeats at the broker's interval again")
    finally:
        c.close()


def test_a_killed_member_leaves_after_the_groups_session_timeout(broker):
    topic, group = _name("t"), _name("g")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    _alter(admin, group, ("consumer.session.timeout.ms", "3000", AlterConfigOpType.SET),
           ("consumer.heartbeat.interval.ms", "500", AlterConfigOpType.SET))
    assert _described(admin, group) == {"consumer.session.timeout.ms": ("3000", GROUP_CONFIG),
                                        "consumer.heartbeat.interval.ms": ("500", GROUP_CONFIG)}
    members = [MemberProcess("confluent-kafka", broker.bootstrap_servers, topic, group, f"s{i}",
                             "--group-protocol", "consumer") for i in range(2)]
    try:
        def describe():
            return admin.describe_consumer_groups([group], request_timeout=10)[group].result()
        wait_until(lambda: len(describe().members) == 2, 20, "both members joined")
        members[0].kill()
        # Within 20 s, well before the broker's 45 s session: the group's 3 s.
        wait_until(lambda: {m.client_id for m in describe().members} == {"s1"}, 20,
                   "the killed member removed")
    finally:
        for m in members:
            m.kill()
