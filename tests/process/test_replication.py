"""Replication in a cluster of three in one process (``Broker(brokers=3)``), with stock clients over real
sockets: followers fetch from leaders, acks=all waits for the ISR, min.insync.replicas, a killed leader's
partitions move to an in-sync follower with nothing acknowledged lost, a cut-off follower leaves the ISR and
comes back, a cut-off leader's unreplicated writes are truncated away after a leader change, leadership
moves, and a partition whose ISR is gone stays offline unless unclean election is allowed.

Waits are on conditions (``ClusterServers.wait_for``: woken by the controller's changes and by appends),
never sleeps."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode, KafkaError
from kbroker.records.builder import build_batch
from kbroker.records.record import Record
from kbroker.wire.messages import produce as P
from support.clients import CLIENTS
from support.control_http import control_call

TIMEOUT_S = 30


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(b: Broker, topic: str, partitions: int = 1, rf: int = 3, configs: dict | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, rf, config=configs or {})])[topic].result(TIMEOUT_S)


def _state(b: Broker, topic: str, index: int = 0):
    """The controller's (leader, isr, leader epoch) of a partition."""
    return b.call(lambda: (lambda p: (p.leader, sorted(p.isr), p.leader_epoch))(
        b.cluster.controller.topic(topic).partitions[index]))


def _logs_now(b: Broker, topic: str, index: int = 0) -> dict[int, tuple[int, int]]:
    """Per running broker holding a replica: (log end offset, high watermark). On the broker's loop."""
    out = {}
    for node, server in b.cluster.servers.items():
        p = server.state.topics.get(topic).partitions[index]
        if p.log is not None:
            out[node] = (p.log.log_end_offset, p.log.high_watermark)
    return out


def _logs(b: Broker, topic: str, index: int = 0) -> dict[int, tuple[int, int]]:
    return b.call(_logs_now, b, topic, index)


def _wait(b: Broker, condition, timeout_s: float = TIMEOUT_S) -> bool:
    return b.call(b.cluster.wait_for, condition, timeout_s)


def _partition_state(b: Broker, topic: str, index: int = 0):
    return b.cluster.controller.topic(topic).partitions[index]


def _in_sync_everywhere(b: Broker, topic: str, index: int = 0):
    """A condition (run on the loop): full ISR, and every running replica at the leader's log end with the
    high watermark there."""
    def cond():
        p = _partition_state(b, topic, index)
        if sorted(p.isr) != sorted(p.replicas) or p.leader not in b.cluster.servers:
            return False
        ends = set()
        for server in b.cluster.servers.values():
            q = server.state.topics.get(topic).partitions[index]
            if q.log is not None:
                ends.add((q.log.log_end_offset, q.log.high_watermark))
        return len(ends) == 1 and next(iter(ends))[0] == next(iter(ends))[1]
    return cond


def _records(b: Broker, node: int, topic: str, index: int = 0) -> list[bytes]:
    """Every record value in a broker's replica of the partition (leader or follower), straight from its log."""
    from kbroker.records.batch import iter_batches
    from kbroker.records.record import decode_records

    def read():
        p = b.cluster.servers[node].state.topics.get(topic).partitions[index]
        out = []
        for chunk in p.log.read(p.log.log_start_offset, 1 << 30):
            for pos, h in iter_batches(chunk):
                if not h.is_control:
                    out.extend(r.value for r in decode_records(chunk, pos, h))
        return out
    return b.call(read)


def _produce_raw(b: Broker, node: int, topic: str, values: list[bytes], acks: int, index: int = 0,
                 timeout_ms: int = 10000):
    """One Produce request straight to a broker (no client retries): the partition's answer."""
    server = b.cluster.servers[node]
    c = BlockingConnection(server.host, server.port)
    try:
        r = c.request(0, 9, P.ProduceRequest(acks=acks, timeout_ms=timeout_ms, topic_data=[
            P.ProduceRequest.TopicProduceData(name=topic, partition_data=[P.ProduceRequest.PartitionProduceData(
                index=index, records=build_batch([Record(i, int(time.time() * 1000), None, v)
                                                    for i, v in enumerate(values)]))])]))
    finally:
        c.close()
    return r.responses[0].partition_responses[0]


def _fetch_raw(b: Broker, node: int, topic: str, index: int = 0) -> tuple[int, list[bytes]]:
    """A consumer's Fetch (read_uncommitted, no waiting) from offset 0: (high watermark, record values)."""
    from kbroker.records.batch import iter_batches
    from kbroker.records.record import decode_records
    from kbroker.wire.messages import fetch as F

    server = b.cluster.servers[node]
    c = BlockingConnection(server.host, server.port)
    try:
        r = c.request(1, 12, F.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                                            topics=[F.FetchRequest.FetchTopic(topic=topic, partitions=[
                                                F.FetchRequest.FetchPartition(partition=index, fetch_offset=0,
                                                                              partition_max_bytes=1 << 20)])]))
    finally:
        c.close()
    part = r.responses[0].partitions[0]
    data = b"".join(bytes(x) for x in part.records) if isinstance(part.records, list) else bytes(part.records or b"")
    values = []
    for pos, h in iter_batches(data):
        values.extend(rec.value for rec in decode_records(data, pos, h))
    return part.high_watermark, values


def _replica_fetch(b: Broker, node: int, topic: str, replica_id: int, fetch_offset: int, last_fetched_epoch: int):
    """A follower's Fetch v12 (replica id, last fetched epoch) to a broker: the partition's answer."""
    from kbroker.wire.messages import fetch as F

    server = b.cluster.servers[node]
    epoch = b.call(lambda: _partition_state(b, topic).leader_epoch)
    c = BlockingConnection(server.host, server.port)
    try:
        r = c.request(1, 12, F.FetchRequest(replica_id=replica_id, max_wait_ms=5000, min_bytes=1, max_bytes=1 << 20,
                                            topics=[F.FetchRequest.FetchTopic(topic=topic, partitions=[
                                                F.FetchRequest.FetchPartition(
                                                    partition=0, current_leader_epoch=epoch, fetch_offset=fetch_offset,
                                                    last_fetched_epoch=last_fetched_epoch,
                                                    partition_max_bytes=1 << 20)])]))
    finally:
        c.close()
    return r.responses[0].partitions[0]


def _metric(b: Broker, node: int, name: str) -> float:
    """An unlabelled sample of a broker's /metrics."""
    text = b.call(lambda: b.cluster.servers[node].metrics.exposition()).decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def _consume_all(bootstrap: str, topic: str, partitions: int, count: int, isolation: str = "read_committed"):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": _topic("g"), "isolation.level": isolation,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
        out = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append((m.partition(), m.offset(), m.value()))
        return out
    finally:
        c.close()


# -- the basics -------------------------------------------------------------------------------------------

def test_followers_replicate_and_acks_all_waits_for_the_isr():
    """RF 3: every broker holds the partition; an acks=all Produce is answered with the high watermark past
    it on the leader, and the followers end with the same log."""
    from confluent_kafka import Producer

    with Broker(brokers=3) as b:
        topic = _topic("rep")
        _create(b, topic, 3, 3, {"min.insync.replicas": "2"})
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
        for i in range(300):
            p.produce(topic, value=str(i).encode(), partition=i % 3)
        assert p.flush(TIMEOUT_S) == 0
        for index in range(3):
            assert _wait(b, _in_sync_everywhere(b, topic, index))
            assert set(_logs(b, topic, index).values()) == {(100, 100)}
            leader = _state(b, topic, index)[0]
            assert _records(b, (leader + 1) % 3, topic, index) == [str(i).encode() for i in range(index, 300, 3)]
        got = _consume_all(b.bootstrap_servers, topic, 3, 300)
        assert sorted(int(v) for _, _, v in got) == list(range(300))


def test_acks_all_waits_for_a_lagging_follower_and_consumers_see_only_the_high_watermark():
    """A follower cut off from replication holds the high watermark back (it is still in the ISR): acks=all
    times out (REQUEST_TIMED_OUT), acks=1 is answered, and no consumer sees records above the high
    watermark. Once it is back the records become visible."""
    with Broker(brokers=3) as b:
        topic = _topic("hw")
        _create(b, topic, 1, 3)
        leader = _state(b, topic)[0]
        follower = (leader + 1) % 3
        assert _produce_raw(b, leader, topic, [b"a"], acks=-1).error_code == 0
        b.cut_off(follower)
        r = _produce_raw(b, leader, topic, [b"b"], acks=-1, timeout_ms=300)
        assert r.error_code == ErrorCode.REQUEST_TIMED_OUT
        assert _produce_raw(b, leader, topic, [b"c"], acks=1).error_code == 0
        assert _logs(b, topic)[leader] == (3, 1)  # written, not committed
        hw, values = _fetch_raw(b, leader, topic)
        assert (hw, values) == (1, [b"a"])
        b.restore(follower)
        assert _wait(b, _in_sync_everywhere(b, topic))
        assert [v for _, _, v in _consume_all(b.bootstrap_servers, topic, 1, 3, "read_uncommitted")] == \
            [b"a", b"b", b"c"]


def test_produce_requests_behind_one_awaiting_replication_are_appended_and_answered_in_order():
    """Produce requests pipelined on one connection behind an acks=all one that awaits a cut-off follower are
    appended meanwhile (as Redpanda pipelines produce; Kafka would hold them unread), at most
    MAX_AWAITING_REPLICATION at a time; every answer still comes in request order, and a request of another API
    waits behind them. Once the follower is back, all of them are answered."""
    from kbroker.server import MAX_AWAITING_REPLICATION
    from kbroker.wire.messages import api_versions

    with Broker(brokers=3) as b:
        topic = _topic("pipe")
        _create(b, topic, 1, 3)
        leader = _state(b, topic)[0]
        assert _produce_raw(b, leader, topic, [b"0"], acks=-1).error_code == 0
        b.cut_off((leader + 1) % 3)
        server = b.cluster.servers[leader]
        c = BlockingConnection(server.host, server.port)
        try:
            def produce_frame(value: bytes, acks: int) -> bytes:
                return c.frame(0, 9, P.ProduceRequest(acks=acks, timeout_ms=60_000, topic_data=[
                    P.ProduceRequest.TopicProduceData(name=topic, partition_data=[
                        P.ProduceRequest.PartitionProduceData(index=0, records=build_batch(
                            [Record(0, int(time.time() * 1000), None, value)]))])]))
            acks = [-1, -1, 1, -1] + [-1] * MAX_AWAITING_REPLICATION
            frames = [produce_frame(str(i + 1).encode(), a) for i, a in enumerate(acks)]
            frames.append(c.frame(18, 0, api_versions.ApiVersionsRequest()))
            frames.append(produce_frame(b"last", 1))
            c.send_bytes(b"".join(frames))
            # MAX_AWAITING_REPLICATION requests (the acks=1 one among them, answered behind the others) are
            # appended while the first awaits the cut-off follower; the rest wait.
            appended = 1 + MAX_AWAITING_REPLICATION
            assert _wait(b, lambda: _logs_now(b, topic)[leader] == (appended, 1))
            assert _logs(b, topic)[leader] == (appended, 1)
            b.restore((leader + 1) % 3)
            answers = [c.read_response(0) for _ in acks]
            assert [a.responses[0].partition_responses[0].error_code for a in answers] == [0] * len(acks)
            assert [a.responses[0].partition_responses[0].base_offset for a in answers] == \
                list(range(1, len(acks) + 1))
            assert c.read_response(18).error_code == 0
            last = c.read_response(0).responses[0].partition_responses[0]
            assert (last.error_code, last.base_offset) == (0, len(acks) + 1)
        finally:
            c.close()
        assert _wait(b, _in_sync_everywhere(b, topic))


def test_acks_all_produce_waiting_on_a_deleted_topic_is_answered_at_once():
    """An acks=all produce waiting for a cut-off follower is answered UNKNOWN_TOPIC_OR_PARTITION when its topic
    is deleted meanwhile (Kafka's DelayedProduce finds the partition gone), not REQUEST_TIMED_OUT when its
    timeout ends."""
    from confluent_kafka.admin import AdminClient

    with Broker(brokers=3) as b:
        topic = _topic("delwait")
        _create(b, topic, 1, 3)
        leader = _state(b, topic)[0]
        b.cut_off((leader + 1) % 3)
        answers = []
        t = threading.Thread(target=lambda: answers.append(
            _produce_raw(b, leader, topic, [b"x"], acks=-1, timeout_ms=120_000)))
        t.start()
        waiting = lambda: bool(b.cluster.servers[leader].state.topics.get(topic).partitions[0]._hw_waiters)  # noqa: E731
        assert _wait(b, waiting)
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.delete_topics([topic])[topic].result(TIMEOUT_S)
        t.join(TIMEOUT_S)
        assert not t.is_alive()
        assert answers[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


# -- min.insync.replicas ----------------------------------------------------------------------------------

def test_min_insync_replicas_one_down_works_two_down_refuses_and_resumes():
    """min.insync.replicas=2 of 3: one broker down, the ISR is two and acks=all works; two down,
    NOT_ENOUGH_REPLICAS before anything is appended (and confluent-kafka retries it until its message
    timeout); one back, it catches up, rejoins the ISR and producing resumes."""
    from confluent_kafka import KafkaError as CKafkaError
    from confluent_kafka import Producer

    with Broker(brokers=3) as b:
        topic = _topic("minisr")
        _create(b, topic, 1, 3, {"min.insync.replicas": "2"})
        leader = _state(b, topic)[0]
        others = [n for n in (0, 1, 2) if n != leader]
        b.kill_broker(others[0])
        assert _state(b, topic)[1] == sorted([leader, others[1]])
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
        for i in range(10):
            p.produce(topic, value=f"one-down-{i}".encode())
        assert p.flush(TIMEOUT_S) == 0

        b.kill_broker(others[1])
        assert _state(b, topic)[:2] == (leader, [leader])
        r = _produce_raw(b, leader, topic, [b"refused"], acks=-1)
        assert r.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
        assert _logs(b, topic)[leader][0] == 10  # nothing appended
        assert _produce_raw(b, leader, topic, [b"acks-1"], acks=1).error_code == 0  # acks=1 is not bound by it

        errors = []
        q = Producer({"bootstrap.servers": b.bootstrap_servers, "acks": "all", "message.timeout.ms": 1500,
                      "retry.backoff.ms": 50})
        q.produce(topic, value=b"times-out", on_delivery=lambda err, msg: errors.append(err))
        q.flush(TIMEOUT_S)
        # librdkafka retries NOT_ENOUGH_REPLICAS (retriable) and reports it when the message times out.
        assert [e.code() for e in errors] in ([CKafkaError.NOT_ENOUGH_REPLICAS], [CKafkaError._MSG_TIMED_OUT])

        b.start_broker(others[0])
        assert _wait(b, lambda: len(_partition_state(b, topic).isr) == 2)
        for i in range(10):
            p.produce(topic, value=f"resumed-{i}".encode())
        assert p.flush(TIMEOUT_S) == 0
        values = [v for _, _, v in _consume_all(b.bootstrap_servers, topic, 1, 21)]
        assert values == [f"one-down-{i}".encode() for i in range(10)] + [b"acks-1"] + \
            [f"resumed-{i}".encode() for i in range(10)]


# -- failover ---------------------------------------------------------------------------------------------

def test_leader_killed_idempotent_producer_goes_on_nothing_acknowledged_lost():
    """An idempotent acks=all producer writes while the leader of every partition is killed in turn: it goes
    on; a read_committed consumer reads every acknowledged record exactly once, in order per partition."""
    from confluent_kafka import Producer

    with Broker(brokers=3, settings={"replica.fetch.backoff.ms": "100"}) as b:
        topic = _topic("failover")
        _create(b, topic, 3, 3, {"min.insync.replicas": "2"})
        acked: dict[int, list[int]] = {0: [], 1: [], 2: []}
        failed = []
        stop = threading.Event()
        sent = [0]

        def on_delivery(err, msg):
            if err is None:
                acked[msg.partition()].append(int(msg.value()))
            else:
                failed.append(err)

        def produce():
            p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "acks": "all",
                          "linger.ms": 2})
            i = 0
            while not stop.is_set():
                p.produce(topic, value=str(i).encode(), partition=i % 3, on_delivery=on_delivery)
                i += 1
                p.poll(0.001 if i % 20 == 0 else 0)
            sent[0] = i
            p.flush(TIMEOUT_S)

        t = threading.Thread(target=produce)
        t.start()
        kills = 0
        try:
            for round_ in range(2):
                target = sum(map(len, acked.values())) + 300
                deadline = time.monotonic() + TIMEOUT_S
                while sum(map(len, acked.values())) < target and time.monotonic() < deadline:
                    t.join(0.05)  # the producer runs; this thread only watches the count
                victim = _state(b, topic, round_)[0]
                b.kill_broker(victim)
                kills += 1
                assert _wait(b, lambda: _partition_state(b, topic, round_).leader not in (victim, -1), 5)
                target = sum(map(len, acked.values())) + 300
                deadline = time.monotonic() + TIMEOUT_S
                while sum(map(len, acked.values())) < target and time.monotonic() < deadline:
                    t.join(0.05)
                assert sum(map(len, acked.values())) >= target, "the producer did not go on after the kill"
                b.start_broker(victim)
                assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)
        finally:
            stop.set()
            t.join(TIMEOUT_S)
        assert failed == []
        total = sum(map(len, acked.values()))
        assert total == sent[0]
        got = _consume_all(b.bootstrap_servers, topic, 3, total)
        for part in range(3):
            values = [int(v) for p_, _, v in got if p_ == part]
            assert values == sorted(acked[part]), f"partition {part}: lost, repeated or out of order"
        assert kills == 2


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_client_reads_what_it_wrote_before_and_after_a_leader_kill(client):
    """kafka-python, aiokafka and confluent-kafka: acks=all writes to an RF 3 topic, the leader of every
    partition is killed, more writes go to the new leaders, and the client reads all of it back in order
    from the new leaders (replicated before the kill)."""
    c = CLIENTS[client]
    with Broker(brokers=3) as b:
        topic = _topic("clients")
        _create(b, topic, 2, 3, {"min.insync.replicas": "2"})
        c(b.bootstrap_servers).produce(topic, [(None, f"before-{i}".encode(), [], i % 2, None) for i in range(40)])
        victim = _state(b, topic, 0)[0]
        b.kill_broker(victim)
        assert all(_state(b, topic, i)[0] not in (victim, -1) for i in range(2))
        live = ",".join(f"{s.host}:{s.port}" for n, s in sorted(b.cluster.servers.items()))
        c(live).produce(topic, [(None, f"after-{i}".encode(), [], i % 2, None) for i in range(40)])
        got = c(live).consume_assigned(topic, 2, 80)
        for part in range(2):
            assert [r[3] for r in got if r[0] == part] == \
                [f"before-{i}".encode() for i in range(part, 40, 2)] + [f"after-{i}".encode() for i in range(part, 40, 2)]
        b.start_broker(victim)
        assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)


# -- cut-off, truncation ----------------------------------------------------------------------------------

def test_cut_off_follower_leaves_the_isr_and_comes_back_to_catch_up():
    with Broker(brokers=3, settings={"replica.lag.time.max.ms": "500", "replica.fetch.backoff.ms": "100",
                                           "replica.fetch.wait.max.ms": "100"}) as b:
        topic = _topic("cut")
        _create(b, topic, 1, 3, {"min.insync.replicas": "2"})
        leader = _state(b, topic)[0]
        follower = (leader + 1) % 3
        b.cut_off(follower)
        # acks=all waits for the cut-off follower until the leader drops it from the ISR, then goes on.
        r = _produce_raw(b, leader, topic, [b"x%d" % i for i in range(5)], acks=-1, timeout_ms=10000)
        assert r.error_code == 0
        assert follower not in _state(b, topic)[1]
        for i in range(5):
            assert _produce_raw(b, leader, topic, [b"y%d" % i], acks=-1).error_code == 0
        assert _logs(b, topic)[follower][0] == 0
        assert _metric(b, leader, "kafka_server_replicamanager_underreplicatedpartitions") == 1
        assert _metric(b, leader, "kafka_server_replicamanager_isrshrinks_total") == 1
        b.restore(follower)
        assert _wait(b, _in_sync_everywhere(b, topic))
        assert _records(b, follower, topic) == [b"x%d" % i for i in range(5)] + [b"y%d" % i for i in range(5)]
        assert _metric(b, leader, "kafka_server_replicamanager_underreplicatedpartitions") == 0
        assert _metric(b, leader, "kafka_server_replicamanager_isrexpands_total") == 1


def test_follower_behind_the_leaders_log_start_truncates_fully_and_rejoins():
    """A follower cut off while DeleteRecords moves the leader's log start past the follower's log end gets
    OFFSET_OUT_OF_RANGE when it is back; as Kafka's follower it drops its whole log, starts at the leader's
    log start offset, catches up and rejoins the ISR."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    with Broker(brokers=3, settings={"replica.lag.time.max.ms": "500", "replica.fetch.backoff.ms": "100",
                                           "replica.fetch.wait.max.ms": "100"}) as b:
        topic = _topic("behind")
        _create(b, topic, 1, 3, {"min.insync.replicas": "2"})
        leader = _state(b, topic)[0]
        follower = (leader + 1) % 3
        assert _produce_raw(b, leader, topic, [b"old-%d" % i for i in range(3)], acks=1).error_code == 0
        assert _wait(b, lambda: _in_sync_everywhere(b, topic)() and _logs_now(b, topic)[follower][0] == 3)
        b.cut_off(follower)
        # acks=all goes on once the leader has dropped the cut-off follower from the ISR.
        assert _produce_raw(b, leader, topic, [b"x%d" % i for i in range(5)], acks=-1).error_code == 0
        assert follower not in _state(b, topic)[1]
        assert _produce_raw(b, leader, topic, [b"y%d" % i for i in range(3)], acks=-1).error_code == 0
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        deleted = admin.delete_records([TopicPartition(topic, 0, 9)])
        assert next(iter(deleted.values())).result(TIMEOUT_S).low_watermark == 9
        assert _logs(b, topic)[follower][0] == 3  # its log ends before the leader's log start, 9
        b.restore(follower)
        assert _wait(b, _in_sync_everywhere(b, topic))
        assert _state(b, topic)[1] == [0, 1, 2]
        assert b.call(lambda: b.cluster.servers[follower].state.topics.get(topic).partitions[0].log_start_offset) == 9
        # The leader's log start, 9, falls inside the batch 8..10: the follower keeps the batch whole, as Kafka.
        assert _records(b, follower, topic) == [b"y0", b"y1", b"y2"]
        assert _logs(b, topic)[follower] == (11, 11)
        # As the leader it serves what it fetched, from the log start on, to a stock consumer.
        b.move_leader(topic, 0, follower)
        assert [(o, v) for _, o, v in _consume_all(b.bootstrap_servers, topic, 1, 2)] == [(9, b"y1"), (10, b"y2")]


def test_restarted_broker_starts_at_its_checkpointed_high_watermark():
    """The high watermark survives a restart (Kafka's replication-offset-checkpoint): a clean stop writes it,
    a kill keeps the last periodic checkpoint (the interval is an hour here, so the one the test writes).
    The restarted broker is cut off, so nothing but the checkpoint can give it a high watermark."""
    import os

    from kbroker.storage.checkpoint import REPLICATION_OFFSET_CHECKPOINT_FILE, read_offset_checkpoint

    with Broker(brokers=3, settings={"replica.fetch.backoff.ms": "100",
                                     "replica.high.watermark.checkpoint.interval.ms": "3600000"}) as b:
        topic = _topic("hwcp")
        _create(b, topic, 1, 3)
        leader = _state(b, topic)[0]
        x = (leader + 1) % 3
        values = [b"v%d" % i for i in range(5)]
        assert _produce_raw(b, leader, topic, values, acks=-1).error_code == 0
        assert _wait(b, _in_sync_everywhere(b, topic))
        data_dir = b.call(lambda: b.cluster.servers[x].state.config.data_dir)
        b.stop_broker(x)
        assert read_offset_checkpoint(os.path.join(data_dir, REPLICATION_OFFSET_CHECKPOINT_FILE))[(topic, 0)] == 5
        b.cut_off(x)
        b.start_broker(x)
        assert _logs(b, topic)[x] == (5, 5)
        # Back in the ISR, it leads and serves the same records.
        b.restore(x)
        assert _wait(b, _in_sync_everywhere(b, topic))
        b.move_leader(topic, 0, x)
        assert _fetch_raw(b, x, topic) == (5, values)

        # A kill writes nothing: the broker starts from the last periodic checkpoint (5), capped at its log
        # end, not from the high watermark it had when it died (8).
        assert b.call(lambda: b.cluster.servers[x].state.log_manager.checkpoint_high_watermarks()) >= 1
        assert _produce_raw(b, x, topic, [b"w%d" % i for i in range(3)], acks=-1).error_code == 0
        assert _wait(b, _in_sync_everywhere(b, topic))
        assert _logs(b, topic)[x] == (8, 8)
        b.kill_broker(x)
        b.cut_off(x)
        b.start_broker(x)
        assert _logs(b, topic)[x] == (8, 5)


def test_divergent_log_of_a_cut_off_leader_is_truncated():
    """The leader is cut off and takes acks=1 writes no follower gets; leadership moves to an in-sync
    follower, which takes other writes; when the old leader's link is back it truncates by leader epoch
    (OffsetForLeaderEpoch / the diverging epoch of Fetch) and ends with the new leader's log."""
    with Broker(brokers=3, settings={"replica.fetch.backoff.ms": "100"}) as b:
        topic = _topic("diverge")
        _create(b, topic, 1, 3)
        old, _isr, epoch = _state(b, topic)
        assert _produce_raw(b, old, topic, [b"common-0", b"common-1"], acks=-1).error_code == 0
        b.cut_off(old)
        for i in range(3):
            assert _produce_raw(b, old, topic, [b"lost-%d" % i], acks=1).error_code == 0
        assert _logs(b, topic)[old] == (5, 2)
        new = (old + 1) % 3
        b.move_leader(topic, 0, new)
        assert _state(b, topic)[0] == new and _state(b, topic)[2] > epoch
        assert _produce_raw(b, new, topic, [b"kept-0", b"kept-1"], acks=1).error_code == 0
        assert _wait(b, lambda: _logs_now(b, topic)[(new + 1) % 3][0] == 4)
        assert _records(b, old, topic)[2:] == [b"lost-0", b"lost-1", b"lost-2"]
        # What the old leader's fetch would be told (Fetch v12+): its epoch ends at 2 on the new leader.
        diverging = _replica_fetch(b, new, topic, replica_id=old, fetch_offset=5, last_fetched_epoch=epoch)
        assert (diverging.error_code, diverging.diverging_epoch.epoch, diverging.diverging_epoch.end_offset,
                bytes(diverging.records or b"")) == (0, epoch, 2, b"")
        b.restore(old)
        assert _wait(b, _in_sync_everywhere(b, topic))
        expected = [b"common-0", b"common-1", b"kept-0", b"kept-1"]
        for node in (0, 1, 2):
            assert _records(b, node, topic) == expected
        assert [v for _, _, v in _consume_all(b.bootstrap_servers, topic, 1, 4)] == expected


# -- leadership ---------------------------------------------------------------------------------------

def test_move_leadership_and_the_control_plane_over_http():
    """Move a partition's leadership to another ISR member (Python and HTTP): a new epoch, clients follow it;
    a broker not in the ISR is refused (409); kill, cut-off and restore over HTTP; wait for the full ISR."""
    from confluent_kafka import Producer

    with Broker(brokers=3, control_port=0, settings={"replica.lag.time.max.ms": "500",
                                                           "replica.fetch.wait.max.ms": "100"}) as b:
        def call(method, path, body=None):
            return control_call(b.control_url, method, path, body, TIMEOUT_S)

        topic = _topic("move")
        _create(b, topic, 1, 3)
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
        leader, _isr, epoch = _state(b, topic)
        for target in [(leader + 1) % 3, (leader + 2) % 3]:
            if target == (leader + 1) % 3:
                b.move_leader(topic, 0, target)
            else:
                assert call("POST", f"/topics/{topic}/partitions/0/leader", {"broker": target}) == \
                    (200, {"leader": target})
            new_leader, _isr, new_epoch = _state(b, topic)
            assert new_leader == target and new_epoch > epoch
            epoch = new_epoch
            for i in range(5):
                p.produce(topic, value=f"{target}-{i}".encode())
            assert p.flush(TIMEOUT_S) == 0
        assert len(_consume_all(b.bootstrap_servers, topic, 1, 10)) == 10

        epoch_leader = _state(b, topic)[0]
        victim = (epoch_leader + 1) % 3
        assert call("POST", f"/brokers/{victim}/cut-off") == (200, {"cut_off": True})
        assert _produce_raw(b, epoch_leader, topic, [b"z"], acks=-1).error_code == 0  # after the ISR shrank
        assert victim not in _state(b, topic)[1]
        status, body = call("POST", f"/topics/{topic}/partitions/0/leader", {"broker": victim})
        assert status == 409 and "ELIGIBLE_LEADERS_NOT_AVAILABLE" in body["error"]
        with pytest.raises(KafkaError) as e:
            b.move_leader(topic, 0, victim)
        assert e.value.code == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
        assert call("POST", "/wait", {"full_isr": True, "timeout_ms": 200})[0] == 408
        assert call("POST", f"/brokers/{victim}/restore") == (200, {"cut_off": False})
        assert call("POST", "/wait", {"full_isr": True, "timeout_ms": 10000})[0] == 200
        assert call("POST", f"/brokers/{epoch_leader}/kill") == (200, {"killed": True})
        assert _state(b, topic)[0] not in (epoch_leader, -1)
        assert call("POST", "/wait", {"leaders": True, "timeout_ms": 10000})[0] == 200
        assert [x["running"] for x in call("GET", "/brokers")[1]].count(False) == 1


@pytest.mark.parametrize("unclean", [False, True])
def test_partition_whose_isr_is_gone_stays_offline_unless_unclean_election(unclean):
    """RF 2: the follower falls out of the ISR (cut off), then the leader is killed. Without
    unclean.leader.election.enable the partition has no leader (LEADER_NOT_AVAILABLE) although a replica is
    alive; with it, that replica leads with what it has, and it alone is the ISR."""
    from confluent_kafka.admin import AdminClient

    configs = {"unclean.leader.election.enable": "true"} if unclean else {}
    with Broker(brokers=3, settings={"replica.lag.time.max.ms": "300", "replica.fetch.wait.max.ms": "100"}) as b:
        topic = _topic("offline")
        _create(b, topic, 1, 2, configs)
        leader = _state(b, topic)[0]
        follower = next(r for r in b.call(lambda: _partition_state(b, topic).replicas) if r != leader)
        assert _produce_raw(b, leader, topic, [b"both"], acks=-1).error_code == 0
        assert _wait(b, _in_sync_everywhere(b, topic))
        b.cut_off(follower)
        assert _produce_raw(b, leader, topic, [b"leader-only"], acks=-1).error_code == 0  # after the shrink
        assert _state(b, topic)[1] == [leader]
        b.kill_broker(leader)
        b.restore(follower)
        md = AdminClient({"bootstrap.servers": b.bootstrap_servers}).list_topics(topic, timeout=10)
        part = md.topics[topic].partitions[0]
        if unclean:
            assert (part.leader, part.isrs) == (follower, [follower])
            assert [v for _, _, v in _consume_all(b.bootstrap_servers, topic, 1, 1)] == [b"both"]
        else:
            assert part.leader == -1 and part.isrs == [leader]
            assert not b.wait_for_leaders(0.2)
            b.start_broker(leader)
            assert b.wait_for_leaders(TIMEOUT_S)
            assert _state(b, topic)[0] == leader


# -- a Jepsen-style run ---------------------------------------------------------------------------------

def test_leader_kills_checked_jepsen_style(tmp_path):
    """RF 3, min.insync.replicas 2: two idempotent acks=all producers and a read_committed group run while the
    nemesis kills the leader of one partition after another (kill: no flush, no controlled shutdown) and
    starts it again once the others went on. The history (tests/support/history.py) is checked against a
    final read: nothing acknowledged lost or moved, nothing duplicated, reordered or unexpected, and no read
    of a record the final log does not have at that offset (no read above the high watermark)."""
    from support.history import History, check
    from support.workload import ConsumerWorker, ProducerWorker, final_read, record_producers

    partitions, kills = 6, 6
    history = History()
    with Broker(brokers=3, data_dir=tmp_path / "data", settings={"replica.fetch.backoff.ms": "100"}) as b:
        topic = _topic("jepsen")
        _create(b, topic, partitions, 3, {"min.insync.replicas": "2"})
        producers = [ProducerWorker(history, b.bootstrap_servers, topic, partitions, n).start() for n in range(2)]
        consumers = [ConsumerWorker(history, b.bootstrap_servers, topic, "jepsen-group", n).start()
                     for n in range(2)]

        def acked() -> int:
            return sum(p.acknowledged() for p in producers)

        def wait_acks(n: int, what: str) -> None:
            deadline = time.monotonic() + TIMEOUT_S
            while acked() < n:
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                threading.Event().wait(0.05)

        survived = 0
        try:
            for k in range(kills):
                wait_acks(acked() + 200, "traffic before a kill")
                victim = _state(b, topic, k % partitions)[0]
                history.nemesis(f"kill {victim}")
                started = time.monotonic()
                b.kill_broker(victim)
                wait_acks(acked() + 100, "the producers to go on after the kill")
                history.nemesis(f"start {victim} ({time.monotonic() - started:.2f} s to 100 more acks)")
                b.start_broker(victim)
                assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)
                survived += 1
            wait_acks(acked() + 200, "traffic after the last start")
        finally:
            for p in producers:
                p.stop()
        final = final_read(b.bootstrap_servers, topic, partitions)
        producers = record_producers(b.bootstrap_servers, topic, partitions, final)
        total = sum(len(r) for r in final.values())
        deadline = time.monotonic() + TIMEOUT_S
        while sum(c.reads for c in consumers) < total and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        for c in consumers:
            c.stop()
    result = check(history, final, producers)
    history.save(tmp_path / "history.jsonl")
    assert result.valid, result.summary()
    assert survived == kills and result.acknowledged > 1500 and result.in_doubt == 0, result.summary()
