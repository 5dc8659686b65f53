"""An idempotent producer's batch across a reassignment that moves leadership before the high watermark
passes it: the broker-side steps behind the duplicates librdkafka makes (tests/support/history.py), each
answered over a raw socket as Apache Kafka answers it.

Four brokers in one process, one partition on [0, 1, 2], min.insync.replicas 2. Broker 2 is cut off from
replication, so the leader's high watermark cannot pass a batch that broker 1 has fetched. The reassignment
to [1, 2, 3] then removes the leader:

- the old leader answers the waiting acks=all produce NOT_LEADER_OR_FOLLOWER (Kafka's DelayedProduce, with
  ``getPartitionOrError`` for a partition the broker no longer hosts), though the batch was appended;
- the new leader has the batch and the producer's state from replication: the same batch retried at its
  epoch and sequence (what Java's producer does) is answered with the original's offset, not written again;
  the next sequence is appended, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER;
- the same records at the next epoch from sequence 0 (what librdkafka sends after its own epoch bump) are a
  new epoch's first batch and are written again: Kafka finds duplicates within one epoch only.
"""

from __future__ import annotations

import time
import uuid

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.records.batch import iter_batches
from kbroker.records.builder import build_batch
from kbroker.records.record import Record, decode_records
from kbroker.wire.messages import fetch as F
from kbroker.wire.messages import init_producer_id as I
from kbroker.wire.messages import produce as P

TIMEOUT_S = 30
PRODUCE, FETCH, INIT_PRODUCER_ID = 0, 1, 22


def _connect(b: Broker, node: int) -> BlockingConnection:
    server = b.cluster.servers[node]
    return BlockingConnection(server.host, server.port)


def _batch(values: list[bytes], pid: int, epoch: int, seq: int) -> bytes:
    now = int(time.time() * 1000)
    return bytes(build_batch([Record(i, now, None, v) for i, v in enumerate(values)], producer_id=pid,
                             producer_epoch=epoch, base_sequence=seq))


def _produce_request(topic: str, records: bytes) -> P.ProduceRequest:
    return P.ProduceRequest(acks=-1, timeout_ms=TIMEOUT_S * 1000, topic_data=[P.ProduceRequest.TopicProduceData(
        name=topic, partition_data=[P.ProduceRequest.PartitionProduceData(index=0, records=records)])])


def _produce(c: BlockingConnection, topic: str, records: bytes):
    return c.request(PRODUCE, 9, _produce_request(topic, records)).responses[0].partition_responses[0]


def _written(c: BlockingConnection, topic: str) -> list[tuple[int, bytes, int]]:
    """(offset, value, producer epoch) of every record below the high watermark."""
    r = c.request(FETCH, 12, F.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
        F.FetchRequest.FetchTopic(topic=topic, partitions=[F.FetchRequest.FetchPartition(
            partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])]))
    part = r.responses[0].partitions[0]
    assert part.error_code == 0
    data = b"".join(bytes(x) for x in part.records) if isinstance(part.records, list) else bytes(part.records or b"")
    return [(rec.offset, rec.value, h.producer_epoch) for pos, h in iter_batches(data)
            for rec in decode_records(data, pos, h)]


def test_a_batch_appended_before_a_reassignment_moved_leadership(tmp_path):
    settings = {"auto.leader.rebalance.enable": "false", "replica.lag.time.max.ms": "120000"}
    with Broker(brokers=4, data_dir=tmp_path / "data", settings=settings) as b:
        topic = f"idem-move-{uuid.uuid4().hex[:8]}"
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.create_topics([NewTopic(
            topic, num_partitions=1, replica_assignment=[[0, 1, 2]], config={"min.insync.replicas": "2"})])[topic].result(TIMEOUT_S)
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)

        def replica(node: int):
            return b.cluster.servers[node].state.topics.get(topic).partitions[0]

        old = _connect(b, 0)
        try:
            r = old.request(INIT_PRODUCER_ID, 1, I.InitProducerIdRequest(transactional_id=None,
                                                                          transaction_timeout_ms=60000))
            assert r.error_code == 0
            pid, epoch = r.producer_id, r.producer_epoch
            first = _batch([b"a", b"b", b"c"], pid, epoch, 0)

            b.cut_off(2)
            old.send_bytes(old.frame(PRODUCE, 9, _produce_request(topic, first)))  # its answer waits
            assert b.call(b.cluster.wait_for, lambda: replica(1).log.log_end_offset == 3, TIMEOUT_S)
            assert b.call(lambda: (replica(0).log.log_end_offset, replica(0).high_watermark)) == (3, 0)

            b.reassign(topic, 0, [1, 2, 3])
            assert b.call(b.cluster.wait_for, lambda: replica(3).log is not None and replica(0).log is None
                          and replica(1).is_leader, TIMEOUT_S)
            answer = old.read_response(PRODUCE, 9).responses[0].partition_responses[0]
            assert (answer.error_code, answer.base_offset) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, -1)
        finally:
            old.close()
        b.restore(2)

        new = _connect(b, 1)
        try:
            retried = _produce(new, topic, first)
            assert (retried.error_code, retried.base_offset) == (0, 0)  # the original's, not written again
            assert (_produce(new, topic, _batch([b"d"], pid, epoch, 3)).error_code) == 0
            gap = _produce(new, topic, _batch([b"x"], pid, epoch, 10))
            assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            bumped = _produce(new, topic, _batch([b"a", b"b", b"c"], pid, epoch + 1, 0))
            assert (bumped.error_code, bumped.base_offset) == (0, 4)
            assert _written(new, topic) == [(0, b"a", epoch), (1, b"b", epoch), (2, b"c", epoch),
                                            (3, b"d", epoch), (4, b"a", epoch + 1), (5, b"b", epoch + 1),
                                            (6, b"c", epoch + 1)]
        finally:
            new.close()
