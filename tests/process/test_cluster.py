"""A cluster of three brokers in one process (``Broker(brokers=3)``) and as ``kbroker serve --brokers 3``, with
stock clients: partitions spread over the brokers, produce and consume through every leader, a consumer group,
the cluster described by admin clients, NOT_LEADER_OR_FOLLOWER with KIP-951 leader hints from a broker that
does not lead, and a broker stopped and started again with nothing lost. Replication factor 1 here;
replication itself is tests/process/test_replication.py, the coordinators tests/process/test_cluster_coordinators.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.controller import InProcessController, run_now
from kbroker.errors import ErrorCode, KafkaError
from kbroker.topic_store import MemoryTopicStore
from kbroker.wire.messages import fetch as F, metadata as MD, produce as P
from support.clients import CLIENTS
from support.control_http import control_call

TIMEOUT_S = 30


@pytest.fixture(scope="module")
def cluster():
    with Broker(brokers=3) as b:
        yield b


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _metadata(bootstrap: str, topic: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    return {p.id: p.leader for p in _metadata(bootstrap, topic).topics[topic].partitions.values()}


def _address(b: Broker, node: int) -> tuple[str, int]:
    server = b.cluster.servers[node]
    return server.host, server.port


def _raw_metadata(b: Broker, node: int, topic: str):
    c = BlockingConnection(*_address(b, node))
    try:
        return c.request(3, 12, MD.MetadataRequest(topics=[MD.MetadataRequest.MetadataRequestTopic(name=topic)],
                                                   allow_auto_topic_creation=False))
    finally:
        c.close()


def _group_consume(bootstrap: str, topic: str, group: str, count: int) -> list[tuple[int, int, bytes]]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        out = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.partition(), m.offset(), m.value()))
        c.commit(asynchronous=False)
        return out
    finally:
        c.close()


def test_admin_describes_three_brokers(cluster):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    described = admin.describe_cluster(request_timeout=10).result()
    assert sorted(n.id for n in described.nodes) == [0, 1, 2]
    ports = {n.id: n.port for n in described.nodes}
    assert ports == {node: _address(cluster, node)[1] for node in (0, 1, 2)}
    assert described.controller.id == 0
    md = admin.list_topics(timeout=10)
    assert sorted(md.brokers) == [0, 1, 2]
    assert md.cluster_id == described.cluster_id


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_six_partitions_spread_over_three_brokers(cluster, client):
    c = CLIENTS[client](cluster.bootstrap_servers)
    topic = _topic("spread")
    c.create_topic(topic, 6)
    leaders = _leaders(cluster.bootstrap_servers, topic)
    assert Counter(leaders.values()) == {0: 2, 1: 2, 2: 2}  # striped: each broker leads two
    messages = [(f"k{i}".encode(), f"v{i}".encode(), [], i % 6, None) for i in range(120)]
    c.produce(topic, messages)
    got = c.consume_assigned(topic, 6, 120)
    assert len(got) == 120
    for part in range(6):  # every record once, in order per partition, on the broker that leads it
        assert [r[3] for r in got if r[0] == part] == [f"v{i}".encode() for i in range(part, 120, 6)]
        assert [r[1] for r in got if r[0] == part] == list(range(20))
    # Each broker holds only the logs of the partitions it leads.
    for node in (0, 1, 2):
        local = cluster.call(lambda n=node: sorted(p.index for p in cluster.cluster.servers[n].state.topics
                                                   .get(topic).partitions if p.log is not None))
        assert local == sorted(i for i, leader in leaders.items() if leader == node)


def test_consumer_group_over_the_cluster(cluster):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, group = _topic("group"), _topic("g")
    CLIENTS["confluent-kafka"](cluster.bootstrap_servers).create_topic(topic, 6)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(60):
        p.produce(topic, value=str(i).encode(), partition=i % 6)
    assert p.flush(TIMEOUT_S) == 0
    got = _group_consume(cluster.bootstrap_servers, topic, group, 60)
    assert sorted(int(v) for _, _, v in got) == list(range(60))
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, i) for i in range(6)], timeout=10)
    finally:
        c.close()
    assert [tp.offset for tp in committed] == [10] * 6
    assert cluster.control.group(group)["offsets"]  # the coordinator is broker 0, the first broker's state


def _kafka_python_group(bootstrap: str, topic: str, group: str, count: int) -> list[int]:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    try:
        out = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(int(r.value) for r in recs)
        c.commit()
        return out
    finally:
        c.close()


def _aiokafka_group(bootstrap: str, topic: str, group: str, count: int) -> list[int]:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def run():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False)
        await c.start()
        try:
            out = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(out) < count and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=500)).values():
                    out.extend(int(r.value) for r in recs)
            await c.commit()
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


@pytest.mark.parametrize("consume", [_kafka_python_group, _aiokafka_group], ids=["kafka-python", "aiokafka"])
def test_consumer_group_of_other_clients(cluster, consume):
    """kafka-python and aiokafka find the coordinator (broker 0), join, fetch from all three leaders, commit."""
    topic, group = _topic("group"), _topic("g")
    client = CLIENTS["confluent-kafka"](cluster.bootstrap_servers)
    client.create_topic(topic, 6)
    client.produce(topic, [(None, str(i).encode(), [], i % 6, None) for i in range(60)])
    assert sorted(consume(cluster.bootstrap_servers, topic, group, 60)) == list(range(60))
    described = cluster.control.group(group)
    assert sorted((o["partition"], o["offset"]) for o in described["offsets"]) == [(i, 10) for i in range(6)]
    # The lag is read from each partition's leader, whichever broker it is.
    assert sorted((r["partition"], r["high_watermark"], r["lag"]) for r in described["lag"]) == \
        [(i, 10, 0) for i in range(6)]


def test_not_leader_answers_name_the_leader(cluster):
    """KIP-951: Produce v10+ and Fetch v16+ from a broker that does not lead carry the current leader and its
    endpoint; Metadata from any broker lists the same leaders."""
    topic = _topic("hint")
    CLIENTS["confluent-kafka"](cluster.bootstrap_servers).create_topic(topic, 3)
    md = _raw_metadata(cluster, 1, topic)
    part = md.topics[0].partitions[0]
    leader, epoch = part.leader_id, part.leader_epoch
    assert part.replica_nodes == [leader] and part.isr_nodes == [leader] and part.offline_replicas == []
    other = next(n for n in (0, 1, 2) if n != leader)
    c = BlockingConnection(*_address(cluster, other))
    try:
        r = c.request(0, 11, P.ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[P.ProduceRequest.TopicProduceData(
            name=topic, partition_data=[P.ProduceRequest.PartitionProduceData(index=0, records=None)])]))
        pr = r.responses[0].partition_responses[0]
        assert pr.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (pr.current_leader.leader_id, pr.current_leader.leader_epoch) == (leader, epoch)
        assert [(n.node_id, n.port) for n in r.node_endpoints] == [(leader, _address(cluster, leader)[1])]
        f = c.request(1, 16, F.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                                            topics=[F.FetchRequest.FetchTopic(
                                                topic_id=md.topics[0].topic_id, partitions=[
                                                    F.FetchRequest.FetchPartition(partition=0, fetch_offset=0,
                                                                                  partition_max_bytes=1 << 20)])]))
        fp = f.responses[0].partitions[0]
        assert fp.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (fp.current_leader.leader_id, fp.current_leader.leader_epoch) == (leader, epoch)
        assert [(n.node_id, n.port) for n in f.node_endpoints] == [(leader, _address(cluster, leader)[1])]
    finally:
        c.close()


def test_replication_factor_beyond_the_cluster_is_refused(cluster):
    """More replicas than brokers: INVALID_REPLICATION_FACTOR, as Kafka. Two of three is placed, striped."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    rf4, rf2 = _topic("rf4"), _topic("rf2")
    futures = admin.create_topics([NewTopic(rf4, 3, 4), NewTopic(rf2, 3, 2)], request_timeout=10)
    with pytest.raises(Exception) as e:
        futures[rf4].result()
    assert e.value.args[0].code() == ErrorCode.INVALID_REPLICATION_FACTOR
    assert "only 3 broker(s) are registered" in str(futures[rf4].exception())
    futures[rf2].result()
    parts = _metadata(cluster.bootstrap_servers, rf2).topics[rf2].partitions.values()
    assert all(len(p.replicas) == 2 and sorted(p.isrs) == sorted(p.replicas) for p in parts)
    assert Counter(p.leader for p in parts) == {0: 1, 1: 1, 2: 1}


def test_stopped_broker_goes_offline_and_comes_back_with_everything(tmp_path):
    from confluent_kafka import Producer

    with Broker(brokers=3, data_dir=tmp_path) as b:
        topic = _topic("restart")
        CLIENTS["confluent-kafka"](b.bootstrap_servers).create_topic(topic, 6)
        p = Producer({"bootstrap.servers": b.bootstrap_servers})
        for i in range(60):
            p.produce(topic, value=str(i).encode(), partition=i % 6)
        assert p.flush(TIMEOUT_S) == 0
        before = _raw_metadata(b, 0, topic).topics[0].partitions
        on_2 = sorted(x.partition_index for x in before if x.leader_id == 2)
        assert len(on_2) == 2

        b.stop_broker(2)
        during = {x.partition_index: x for x in _raw_metadata(b, 0, topic).topics[0].partitions}
        for i in on_2:
            assert (during[i].error_code, during[i].leader_id, during[i].offline_replicas) == \
                (ErrorCode.LEADER_NOT_AVAILABLE, -1, [2])
        assert sorted(x.node_id for x in _raw_metadata(b, 1, topic).brokers) == [0, 1]
        assert not b.wait_for_leaders(timeout_s=0.1)
        # The partitions of the live brokers still take records.
        p = Producer({"bootstrap.servers": b.bootstrap_servers})
        live = [i for i in range(6) if i not in on_2]
        for i in live:
            p.produce(topic, value=b"while-down", partition=i)
        assert p.flush(TIMEOUT_S) == 0

        b.start_broker(2)
        assert b.wait_for_leaders(timeout_s=10)
        after = {x.partition_index: x for x in _raw_metadata(b, 0, topic).topics[0].partitions}
        old = {x.partition_index: x for x in before}
        for i in on_2:
            assert after[i].leader_id == 2 and after[i].error_code == 0
            assert after[i].leader_epoch > old[i].leader_epoch  # every leader change is a new epoch
        got = CLIENTS["confluent-kafka"](b.bootstrap_servers).consume_assigned(topic, 6, 64)
        assert sorted(r[3] for r in got if r[3] != b"while-down") == sorted(str(i).encode() for i in range(60))
        assert sorted(r[0] for r in got if r[3] == b"while-down") == live
        assert len(got) == 64


def _serve_brokers_3(data_dir, count: int, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """``kbroker serve --brokers 3 --port 0`` (and ``args``) over ``data_dir``, and the first ``count`` lines
    it prints (fewer if it does not print them within TIMEOUT_S)."""
    proc = subprocess.Popen([sys.executable, "-m", "kbroker", "serve", "--brokers", "3", "--port", "0",
                             "--data-dir", str(data_dir), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []

    def read():
        while len(lines) < count:
            line = proc.stdout.readline()
            if not line:
                return
            lines.append(line.strip())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(TIMEOUT_S)
    return proc, lines


def test_serve_brokers_3_as_a_process(tmp_path):
    """``kbroker serve --brokers 3``: one ready line per broker; the cluster survives a restart of the process."""
    from confluent_kafka.admin import AdminClient

    def start():
        proc, lines = _serve_brokers_3(tmp_path, 6)
        plain = [ln.rsplit(" ", 1)[1] for ln in lines if "://" not in ln]
        assert len(plain) == 3 and len(lines) == 6, lines
        return proc, ",".join(plain)

    proc, bootstrap = start()
    try:
        topic = _topic("proc")
        client = CLIENTS["confluent-kafka"](bootstrap)
        client.create_topic(topic, 6)
        assert Counter(_leaders(bootstrap, topic).values()) == {0: 2, 1: 2, 2: 2}
        client.produce(topic, [(None, f"v{i}".encode(), [], i % 6, None) for i in range(30)])
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future is answered
        described = admin.describe_cluster(request_timeout=10).result()
        assert sorted(n.id for n in described.nodes) == [0, 1, 2]
    finally:
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0
    assert sorted(os.listdir(tmp_path)) == [".kbroker", "broker-0", "broker-1", "broker-2"]
    proc, bootstrap = start()
    try:
        got = CLIENTS["confluent-kafka"](bootstrap).consume_assigned(topic, 6, 30)
        assert sorted(r[3] for r in got) == sorted(f"v{i}".encode() for i in range(30))
    finally:
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0


def test_serve_brokers_3_prints_the_control_planes_ready_line(tmp_path):
    """``--control-port 0`` with ``--brokers 3``: after the brokers' ready lines, one naming the cluster's
    control plane (as the single broker's console line), whose address answers GET /brokers."""
    import json
    import urllib.request

    proc, lines = _serve_brokers_3(tmp_path, 7, "--control-port", "0")
    try:
        assert len(lines) == 7, lines
        assert lines[-1].startswith("kbroker control plane on http://"), lines
        url = lines[-1].split()[4].rstrip("/")
        with urllib.request.urlopen(url + "/brokers", timeout=10) as r:
            brokers = json.loads(r.read())
        assert len(brokers) == 3, brokers
    finally:
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0


def test_controller_changes_partitions_by_compare_and_set():
    """alter_partition applies only at the leader epoch and partition epoch the caller read (what the
    PostgreSQL controller does with one conditional UPDATE)."""
    from kbroker.controller import BrokerRegistration, MetadataListener

    c = InProcessController(MemoryTopicStore())
    seen = []

    class Listener(MetadataListener):
        def on_topic_change(self, topic):
            seen.append((topic.name, [(p.leader, p.leader_epoch, p.partition_epoch) for p in topic.partitions]))

    run_now(c.register_broker(BrokerRegistration(1, {"PLAINTEXT": ("h", 1)}), Listener()))
    run_now(c.register_broker(BrokerRegistration(2, {"PLAINTEXT": ("h", 2)}), Listener()))
    run_now(c.create_topic("t", 1, 1, [[1]], {}))
    p = c.topic("t").partitions[0]
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (1, 0, 0)
    with pytest.raises(KafkaError) as e:
        run_now(c.alter_partition("t", 0, 1, 0, -1, [1]))  # a leader epoch the partition is not at
    assert e.value.code == ErrorCode.FENCED_LEADER_EPOCH
    with pytest.raises(KafkaError) as e:
        run_now(c.alter_partition("t", 0, 0, 5, -1, [1]))  # a partition epoch it is not at
    assert e.value.code == ErrorCode.INVALID_UPDATE_VERSION
    assert c.topic("t").partitions[0] is p  # nothing changed
    run_now(c.unregister_broker(1))
    p = c.topic("t").partitions[0]
    assert (p.leader, p.isr, p.leader_epoch, p.partition_epoch) == (-1, [1], 1, 1)
    run_now(c.register_broker(BrokerRegistration(1, {"PLAINTEXT": ("h", 1)}), Listener()))
    p = c.topic("t").partitions[0]
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (1, 2, 2)
    assert seen[-1] == ("t", [(1, 2, 2)])
    first, end = run_now(c.allocate_producer_ids())
    assert run_now(c.allocate_producer_ids())[0] == end > first


def test_transactions_over_the_cluster(cluster):
    """A transactional producer writes to partitions led by all three brokers; the coordinator (broker 0) has
    each leader write the markers: a read_committed consumer sees the committed transaction, not the aborted."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = _topic("txn")
    CLIENTS["confluent-kafka"](cluster.bootstrap_servers).create_topic(topic, 6)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": _topic("tid")})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(12):
        p.produce(topic, value=f"c{i}".encode(), partition=i % 6)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b"aborted", partition=i)
    assert p.flush(TIMEOUT_S) == 0  # written to every leader before the abort (else librdkafka drops them unsent)
    p.abort_transaction(TIMEOUT_S)
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": _topic("g"),
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, i, 0) for i in range(6)])
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        # Per partition: two committed records, the commit marker, an aborted record, the abort marker; the
        # consumer's position passes all five once both markers are written.
        while time.monotonic() < deadline and not (
                len(got) >= 12 and all(tp.offset == 5 for tp in c.position([TopicPartition(topic, i)
                                                                           for i in range(6)]))):
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
    finally:
        c.close()
    assert sorted(got) == sorted(f"c{i}".encode() for i in range(12))


def test_cluster_control_plane_over_http():
    """The HTTP control plane of ``--brokers N``: list the brokers, stop one, wait for leaders (times out while
    it is down), start it, wait again; the broker operations (faults, records) work across the cluster."""
    with Broker(brokers=3, control_port=0) as b:
        def call(method, path, body=None):
            return control_call(b.control_url, method, path, body, TIMEOUT_S)

        status, brokers = call("GET", "/brokers")
        assert status == 200 and [(x["node_id"], x["running"]) for x in brokers] == [(0, True), (1, True), (2, True)]
        topic = _topic("http")
        client = CLIENTS["confluent-kafka"](b.bootstrap_servers)
        client.create_topic(topic, 3)
        client.produce(topic, [(None, f"v{i}".encode(), [], i % 3, None) for i in range(9)])
        assert call("POST", "/wait", {"topic": topic, "records": 9, "timeout_ms": 10000})[0] == 200
        assert all(len(call("GET", f"/topics/{topic}/records?partition={i}")[1]) == 3 for i in range(3))
        assert call("POST", "/brokers/1/stop") == (200, {"stopped": True})
        assert [x["running"] for x in call("GET", "/brokers")[1]] == [True, False, True]
        assert call("POST", "/wait", {"leaders": True, "timeout_ms": 100})[0] == 408
        assert call("POST", "/brokers/1/start") == (200, {"started": True})
        assert call("POST", "/wait", {"leaders": True, "timeout_ms": 10000})[0] == 200
        assert call("POST", "/brokers/7/stop")[0] == 404
        assert sorted(r[3] for r in client.consume_assigned(topic, 3, 9)) == sorted(f"v{i}".encode() for i in range(9))
