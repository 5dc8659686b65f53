"""producer.id.expiration.ms: the idempotence state of a producer that has been idle that long is forgotten
by the retention task (memory stays bounded by configuration), and one with an open transaction is kept."""

from __future__ import annotations

import time

from kbroker import Broker
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import produce
from kbroker.client import BlockingConnection
from support.topics import auto_create

P = produce.ProduceRequest


def _produce(c, batch, topic="pe"):
    auto_create(c, topic)
    req = P(acks=-1, timeout_ms=1000, topic_data=[P.TopicProduceData(name=topic, partition_data=[
        P.PartitionProduceData(index=0, records=bytes(batch))])])
    return c.request(0, 9, req).responses[0].partition_responses[0]


def test_idle_producers_are_forgotten_and_open_transactions_kept():
    with Broker(port=0, storage="memory", producer_id_expiration_ms=60_000) as b:
        c = BlockingConnection(b.host, b.port)
        now = int(time.time() * 1000)
        old = simple_batch(b"a", producer_id=7, producer_epoch=0, base_sequence=0, timestamp_ms=now - 120_000)
        fresh = simple_batch(b"b", producer_id=8, producer_epoch=0, base_sequence=0, timestamp_ms=now)
        txn = simple_batch(b"c", producer_id=9, producer_epoch=0, base_sequence=0, timestamp_ms=now - 120_000,
                           transactional=True)
        for batch in (old, fresh, txn):
            assert _produce(c, batch).error_code == 0
        partition = b.state.topics.get("pe").partitions[0]
        assert set(partition.log.producer_state.producers) == {7, 8, 9}
        b.call(lambda: b.state.log_manager.run_retention_once())
        # 7 is idle past the expiration; 8 is recent; 9 is old but inside an open transaction.
        assert set(partition.log.producer_state.producers) == {8, 9}
        # A forgotten producer may start again at any sequence, as Kafka allows for unknown producers.
        again = simple_batch(b"d", producer_id=7, producer_epoch=0, base_sequence=5, timestamp_ms=now)
        assert _produce(c, again).error_code == 0
