"""The Schema Registry in a cluster of three brokers in one process (``Broker(brokers=3, schema_registry_port=0)``):
a registry beside every broker, all over one ``_schemas`` topic (replication factor 3, compacted, as Confluent
makes it), writing through the partition's leader wherever it is (schema_registry/kafka_store.py) on condition
of the log end (schema_registry/conditional.py). With confluent-kafka's SchemaRegistryClient, its Avro
serializer and deserializer, a Producer and a Consumer over real sockets: registrations through two brokers'
registries after the leader of ``_schemas`` moved and after it was killed, two registries registering at once,
and the conditional append refusing a stale write."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

from kbroker import Broker
from support.registry import serde_roundtrip
from support.wait import wait_until

TIMEOUT_S = 30
SCHEMAS = "_schemas"


def _avro(name: str) -> str:
    return json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "int"}]})


def _get(url: str, path: str):
    """A registry's answer over plain HTTP (the SchemaRegistryClient caches what it has seen)."""
    with urllib.request.urlopen(f"{url}{path}", timeout=TIMEOUT_S) as resp:
        return json.load(resp)


def _schemas_partition(bootstrap: str) -> tuple[int, list[int], list[int]]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(SCHEMAS, timeout=10)
    p = md.topics[SCHEMAS].partitions[0]
    return p.leader, list(p.replicas), list(p.isrs)


def _lead_schemas_from(b: Broker, node: int) -> None:
    """Move the leadership of _schemas-0 to ``node`` (once every replica is in sync) and wait to see it."""
    assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)
    if _schemas_partition(b.bootstrap_servers)[0] != node:
        b.move_leader(SCHEMAS, 0, node)
    wait_until(lambda: _schemas_partition(b.bootstrap_servers)[0] == node, TIMEOUT_S, f"broker {node} to lead")


@pytest.fixture(scope="module")
def cluster():
    with Broker(brokers=3, schema_registry_port=0) as b:
        yield b


def test_schemas_topic_is_replicated_on_three_brokers_and_compacted(cluster):
    urls = cluster.schema_registry_urls
    assert sorted(urls) == cluster.node_ids  # a registry beside every broker
    SchemaRegistryClient({"url": urls[cluster.node_ids[1]]}).register_schema(
        f"t-{uuid.uuid4().hex[:6]}-value", Schema(_avro("Topic"), "AVRO"))
    _leader, replicas, _isr = _schemas_partition(cluster.bootstrap_servers)
    assert sorted(replicas) == cluster.node_ids
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, SCHEMAS)
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["cleanup.policy"].value == "compact"


def test_a_write_to_schemas_expecting_another_log_end_is_refused(cluster):
    SchemaRegistryClient({"url": cluster.schema_registry_url}).register_schema(
        f"c-{uuid.uuid4().hex[:6]}-value", Schema(_avro("Cond"), "AVRO"))  # _schemas exists
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{uuid.uuid4().hex[:6]}"})
    try:
        _low, end = consumer.get_watermark_offsets(_topic_partition(), timeout=10)
    finally:
        consumer.close()
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    outcomes = []
    key = b'{"keytype":"NOOP","magic":0}'
    for expected in (end + 5, end):
        producer.produce(SCHEMAS, key=key, value=None, headers=[("kbroker.expected.offset", str(expected).encode())],
                         on_delivery=lambda err, msg: outcomes.append((err, msg.offset())))
        assert producer.flush(TIMEOUT_S) == 0
    (refused, _), (accepted, offset) = outcomes
    assert refused is not None and refused.code() == KafkaError.INVALID_RECORD
    assert accepted is None and offset == end
    # Without the header, a record is appended as any producer's (Confluent's own registry writes so).
    producer.produce(SCHEMAS, key=key, value=None, on_delivery=lambda err, msg: outcomes.append((err, msg.offset())))
    assert producer.flush(TIMEOUT_S) == 0 and outcomes[-1] == (None, end + 1)


def _topic_partition():
    from confluent_kafka import TopicPartition

    return TopicPartition(SCHEMAS, 0)


def test_two_registries_registering_at_once_never_give_one_id_to_two_schemas(cluster):
    a, b = cluster.node_ids[:2]
    urls = cluster.schema_registry_urls
    run = uuid.uuid4().hex[:6]
    rounds = 12
    barrier = threading.Barrier(2)
    got: dict[int, dict[str, tuple[int, str]]] = {a: {}, b: {}}
    failures = []

    def register(node: int) -> None:
        client = SchemaRegistryClient({"url": urls[node]})
        try:
            barrier.wait(TIMEOUT_S)
            for i in range(rounds):
                own = f"Own_{node}_{i}"
                got[node][f"own-{run}-{node}-{i}"] = (client.register_schema(f"own-{run}-{node}-{i}",
                                                                             Schema(_avro(own), "AVRO")), own)
                shared = f"Shared_{i}"  # both registries register this one under one subject at once
                got[node][f"shared-{run}-{i}"] = (client.register_schema(f"shared-{run}-{i}",
                                                                         Schema(_avro(shared), "AVRO")), shared)
        except Exception as e:  # reported below, on the test's thread
            failures.append(e)

    threads = [threading.Thread(target=register, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S * 2)
    assert not failures, failures
    # The shared subjects: one schema each, one id, version 1, whichever registry wrote it.
    for i in range(rounds):
        assert got[a][f"shared-{run}-{i}"] == got[b][f"shared-{run}-{i}"]
    by_name = {}
    for answers in got.values():
        for sid, name in answers.values():
            assert by_name.setdefault(name, sid) == sid
    assert len(by_name) == 3 * rounds
    assert len(set(by_name.values())) == 3 * rounds, "two schemas were given one id"
    # Every registry answers the same for every id and subject.
    for node, url in urls.items():
        for name, sid in by_name.items():
            assert json.loads(_get(url, f"/schemas/ids/{sid}")["schema"])["name"] == name, (node, name)
        for i in range(rounds):
            assert _get(url, f"/subjects/shared-{run}-{i}/versions") == [1]


def test_registries_register_after_the_schemas_leader_moves_and_is_killed():
    with Broker(brokers=3, schema_registry_port=0) as cl:
        a, b, c = cl.node_ids
        urls = dict(cl.schema_registry_urls)
        sr = {n: SchemaRegistryClient({"url": u}) for n, u in urls.items()}
        ids = {"s1": sr[a].register_schema("s1-value", Schema(_avro("S1"), "AVRO"))}
        assert cl.wait_for_leaders(TIMEOUT_S, full_isr=True)
        leader = _schemas_partition(cl.bootstrap_servers)[0]
        _lead_schemas_from(cl, next(n for n in (b, c, a) if n != leader))  # leadership moved
        ids["s2"] = sr[b].register_schema("s2-value", Schema(_avro("S2"), "AVRO"))
        ids["s3"] = sr[a].register_schema("s3-value", Schema(_avro("S3"), "AVRO"))
        # The same schema under another subject, through another registry: the id it already has.
        assert sr[c].register_schema("s1-copy-value", Schema(_avro("S1"), "AVRO")) == ids["s1"]

        _lead_schemas_from(cl, c)
        killed_at = time.monotonic()
        cl.kill_broker(c)  # the leader of _schemas dies: a and b elect one of themselves
        ids["s4"] = sr[b].register_schema("s4-value", Schema(_avro("S4"), "AVRO"))
        print(f"registered through broker {b} {time.monotonic() - killed_at:.3f} s after the kill of the leader")
        ids["s5"] = sr[a].register_schema("s5-value", Schema(_avro("S5"), "AVRO"))
        assert _schemas_partition(cl.bootstrap_servers)[0] in (a, b)
        assert len(set(ids.values())) == len(ids), ids

        for node in (a, b):  # each registry reads every schema, by subject and by id
            for subject, sid in ids.items():
                assert _get(urls[node], f"/subjects/{subject}-value/versions/latest")["id"] == sid
                assert json.loads(_get(urls[node], f"/schemas/ids/{sid}")["schema"])["name"] == subject.upper()

        # Values serialized through b's registry are read through a's, the ids resolved there.
        topic = f"sr-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": cl.bootstrap_servers})
        admin.create_topics([NewTopic(topic, 1, 2)])[topic].result(TIMEOUT_S)
        value_schema = json.dumps({"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "int"}, {"name": "item", "type": "string"}]})
        ser = AvroSerializer(sr[b], value_schema)
        de = AvroDeserializer(SchemaRegistryClient({"url": urls[a]}))
        values = [{"id": 1, "item": "book"}, {"id": 2, "item": "pen"}]
        out = serde_roundtrip(cl.bootstrap_servers, topic, ser, de, values, TIMEOUT_S, {"acks": "all"})
        assert out == values
        order_id = _get(urls[a], f"/subjects/{topic}-value/versions/latest")["id"]
        assert order_id not in ids.values()

        # The killed broker comes back: its registry (same port) reads the same state from its replica.
        cl.start_broker(c)
        assert cl.schema_registry_urls[c] == urls[c]
        ids["order"] = order_id
        for subject, sid in ids.items():
            name = subject.upper() if subject != "order" else "Order"
            assert json.loads(_get(urls[c], f"/schemas/ids/{sid}")["schema"])["name"] == name
        ids["s6"] = sr[c].register_schema("s6-value", Schema(_avro("S6"), "AVRO"))
        assert len(set(ids.values())) == len(ids), ids
        assert _get(urls[a], "/subjects/s6-value/versions/latest")["id"] == ids["s6"]


def test_a_broker_without_a_replica_of_schemas_reads_and_writes_through_the_leader_and_answers_without_one():
    with Broker(brokers=4, schema_registry_port=0) as cl:
        urls = cl.schema_registry_urls
        first = SchemaRegistryClient({"url": urls[cl.node_ids[0]]}).register_schema("r1-value",
                                                                                     Schema(_avro("R1"), "AVRO"))
        _leader, replicas, _isr = _schemas_partition(cl.bootstrap_servers)
        assert len(replicas) == 3  # Confluent's default factor, not one per broker
        outside = next(n for n in cl.node_ids if n not in replicas)
        assert json.loads(_get(urls[outside], f"/schemas/ids/{first}")["schema"])["name"] == "R1"
        second = SchemaRegistryClient({"url": urls[outside]}).register_schema("r2-value", Schema(_avro("R2"), "AVRO"))
        assert second != first
        assert _get(urls[outside], "/subjects") == ["r1-value", "r2-value"]
        for url in urls.values():
            assert _get(url, "/subjects/r2-value/versions/latest")["id"] == second
        # Every replica of _schemas down: no leader to read or write, yet what was read still answers,
        # a lookup, and a registration of a schema registered already (what serializers send on first use).
        for node in replicas:
            cl.kill_broker(node)
        assert json.loads(_get(urls[outside], f"/schemas/ids/{second}")["schema"])["name"] == "R2"
        fresh = SchemaRegistryClient({"url": urls[outside]})
        assert fresh.register_schema("r1-value", Schema(_avro("R1"), "AVRO")) == first
        assert fresh.lookup_schema("r2-value", Schema(_avro("R2"), "AVRO")).schema_id == second
