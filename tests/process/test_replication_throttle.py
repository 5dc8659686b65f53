"""Reassignment throttles (KIP-73) in a cluster in one process, set as kafka-reassign-partitions sets them,
with kafka-python's admin: the topic's ``leader.replication.throttled.replicas`` (the current replicas) or
``follower.replication.throttled.replicas`` (the new one), the brokers' ``leader.replication.throttled.rate``
or ``follower.replication.throttled.rate``, then AlterPartitionReassignments adding broker 2.

A throttled move of about 2 MB at 256 KB/s cannot end before (bytes - what the rate's window lets through at
once) / rate; without a throttle the same move ends well before that. The window is made short
(``replication.quota.window.num`` 2 of 1 s) so that the burst it allows is small next to the data; the
followers fetch 64 KB per partition, so one answer cannot overshoot by much. Meanwhile acks=all produces,
replicated by the follower in sync, are not held back."""

from __future__ import annotations

import time
import uuid

import pytest

from kbroker import Broker
from support.txn_helpers import wait_until

TIMEOUT_S = 60
RATE = 256 * 1024  # bytes per second
WINDOW_NUM, WINDOW_S = 2, 1
FETCH_MAX = 64 * 1024
RECORD = 10 * 1024
RECORDS = 200  # about 2 MB
SETTINGS = {"auto.leader.rebalance.enable": "false", "replication.quota.window.num": str(WINDOW_NUM),
            "replication.quota.window.size.seconds": str(WINDOW_S), "replica.fetch.max.bytes": str(FETCH_MAX)}


def _lower_bound_s(nbytes: int) -> float:
    """The least time ``nbytes`` can take at RATE: what the rate's samples (and the one being filled) hold may
    go at once, and every window one answer of FETCH_MAX may go out when the rate is just under the quota (the
    producer's batches are smaller than FETCH_MAX, so no answer carries more)."""
    return (nbytes - RATE * (WINDOW_NUM + 1) * WINDOW_S) / (RATE + FETCH_MAX / WINDOW_S)


def _move(b: Broker, side: str | None) -> tuple[float, int, float]:
    """Create a topic on brokers 0 and 1 with RECORDS records, throttle ``side`` (None: nothing), reassign it
    to {0, 1, 2}; (seconds the move took, bytes broker 2 copied, seconds an acks=all produce of 20 records took
    while the move ran)."""
    from confluent_kafka import Producer
    from kafka import TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    topic = f"throttle-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, replica_assignments={0: [0, 1]})])
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        producer = Producer({"bootstrap.servers": b.bootstrap_servers, "acks": "all", "linger.ms": 5,
                             "batch.size": 16384})
        for i in range(RECORDS):
            producer.produce(topic, value=bytes([i % 256]) * RECORD, partition=0)
        assert producer.flush(TIMEOUT_S) == 0
        if side is not None:
            # As kafka-reassign-partitions --throttle does: the current replicas on the leader side, the
            # new one on the follower side, the rate on every broker that takes part.
            replicas = "0:0,0:1" if side == "leader" else "0:2"
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                {f"{side}.replication.throttled.replicas": replicas})],
                                raise_on_unknown=False)
            for node in (0, 1, 2):
                admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(node),
                                                    {f"{side}.replication.throttled.rate": str(RATE)})],
                                    raise_on_unknown=False)
        tp = TopicPartition(topic, 0)
        start = time.monotonic()
        assert admin.alter_partition_reassignments({tp: [0, 1, 2]}) == {tp: None}
        produce_start = time.monotonic()
        for i in range(20):
            producer.produce(topic, value=b"in-sync-%d" % i, partition=0)
        assert producer.flush(TIMEOUT_S) == 0
        produce_s = time.monotonic() - produce_start

        def done():
            p = b.cluster.controller.topic(topic).partitions[0]
            return not p.reassigning and sorted(p.isr) == [0, 1, 2]
        assert b.call(b.cluster.wait_for, done, TIMEOUT_S)
        elapsed = time.monotonic() - start
        copied = b.call(lambda: b.cluster.servers[2].state.topics.get(topic).partitions[0].log.store.size_bytes())
        if side is not None:
            for node in (0, 1, 2):
                admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(node),
                                                    {f"{side}.replication.throttled.rate": ""})],
                                    raise_on_unknown=False)
    finally:
        admin.close()
    return elapsed, copied, produce_s


@pytest.mark.parametrize("side", ["leader", "follower"])
def test_a_throttled_reassignment_moves_no_faster_than_its_rate(side):
    with Broker(brokers=3, settings=SETTINGS) as b:
        elapsed, copied, produce_s = _move(b, side)
        bound = _lower_bound_s(copied)
        print(f"{side} throttle: {copied} bytes in {elapsed:.2f} s ({copied / elapsed / 1024:.0f} KB/s; "
              f"at least {bound:.2f} s at {RATE // 1024} KB/s); an acks=all produce meanwhile {produce_s:.2f} s")
        assert copied >= RECORDS * RECORD
        assert elapsed >= bound > 2.0
        assert produce_s < bound / 2  # the in-sync follower is not throttled
        quotas = b.call(lambda: [s.state.replication_quotas for s in b.cluster.servers.values()])
        recorded = [getattr(q, side).recorded_bytes for q in quotas]
        assert max(recorded) >= RECORDS * RECORD, recorded  # the throttled side counted what it moved


def test_an_unthrottled_reassignment_is_fast():
    with Broker(brokers=3, settings=SETTINGS) as b:
        elapsed, copied, _ = _move(b, None)
        print(f"no throttle: {copied} bytes in {elapsed:.2f} s")
        assert elapsed < _lower_bound_s(copied)
