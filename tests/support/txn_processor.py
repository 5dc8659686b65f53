"""A consume-transform-produce processor as a separate process, so that a test can SIGKILL it mid-transaction.

    python tests/support/txn_processor.py CLIENT BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TRANSACTIONAL_ID --partitions P
        [--batch N] [--hang-after K] [--session-timeout-ms MS]

CLIENT is confluent-kafka, kafka-python or aiokafka. The processor joins GROUP (read_committed, no auto
commit), and for every batch it polls: begins a transaction, produces ``b"out-" + value`` for every input
record to OUT_TOPIC (same key and partition), adds the consumed positions to the transaction
(send_offsets_to_transaction) and commits. With ``--hang-after K``, after K committed transactions it begins
one more, produces its records, flushes them to the broker, adds the offsets, reports "hanging" and then
blocks with the transaction open until it is killed. Without it, it stops once its positions reach the end
of every input partition (the input is complete before it starts) and reports "done".

It reports on stdout, one JSON object a line, flushed at once:

    {"ev": "started"}
    {"ev": "committed", "txns": K, "records": N}      (N: records in that transaction)
    {"ev": "hanging", "txns": K, "records": N}
    {"ev": "done", "txns": K}
    {"ev": "error", "error": "..."}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading

hang = threading.Event()  # never set: a hanging processor waits for SIGKILL


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def run_confluent(a) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": a.session_timeout_ms, "heartbeat.interval.ms": 200})
    p = Producer({"bootstrap.servers": a.bootstrap, "transactional.id": a.transactional_id, "linger.ms": 5})
    p.init_transactions(30)
    tps = [TopicPartition(a.in_topic, i) for i in range(a.partitions)]
    ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in tps}
    c.subscribe([a.in_topic])
    emit(ev="started")
    txns = 0
    while True:
        msgs = [m for m in c.consume(num_messages=a.batch, timeout=0.2) if m.error() is None]
        if msgs:
            p.begin_transaction()
            for m in msgs:
                p.produce(a.out_topic, key=m.key(), value=b"out-" + m.value(), partition=m.partition())
            positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
            if a.hang_after is not None and txns == a.hang_after:
                assert p.flush(30) == 0
                emit(ev="hanging", txns=txns, records=len(msgs))
                hang.wait()
            p.commit_transaction(30)
            txns += 1
            emit(ev="committed", txns=txns, records=len(msgs))
        assigned = c.assignment()
        if len(assigned) == len(ends):
            pos = {tp.partition: tp.offset for tp in c.position(assigned)}
            if all(pos.get(i, -1) >= end for i, end in ends.items()):
                break
    c.close()
    emit(ev="done", txns=txns)


def run_kafka_python(a) -> None:
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, isolation_level="read_committed",
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=a.session_timeout_ms, heartbeat_interval_ms=200)
    p = KafkaProducer(bootstrap_servers=a.bootstrap, transactional_id=a.transactional_id, linger_ms=5)
    p.init_transactions()
    tps = [TopicPartition(a.in_topic, i) for i in range(a.partitions)]
    ends = {tp.partition: off for tp, off in c.end_offsets(tps).items()}
    c.subscribe([a.in_topic])
    emit(ev="started")
    txns = 0
    while True:
        polled = c.poll(timeout_ms=200, max_records=a.batch)
        if polled:
            p.begin_transaction()
            for tp, records in polled.items():
                for r in records:
                    p.send(a.out_topic, key=r.key, value=b"out-" + r.value, partition=tp.partition)
            offsets = {tp: OffsetAndMetadata(c.position(tp), "", -1) for tp in c.assignment()}
            p.send_offsets_to_transaction(offsets, c.group_metadata())
            n = sum(len(r) for r in polled.values())
            if a.hang_after is not None and txns == a.hang_after:
                p.flush()
                emit(ev="hanging", txns=txns, records=n)
                hang.wait()
            p.commit_transaction()
            txns += 1
            emit(ev="committed", txns=txns, records=n)
        assigned = c.assignment()
        if len(assigned) == len(ends) and all(c.position(tp) >= ends[tp.partition] for tp in assigned):
            break
    c.close()
    emit(ev="done", txns=txns)


def run_aiokafka(a) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def main():
        c = AIOKafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, isolation_level="read_committed",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=a.session_timeout_ms, heartbeat_interval_ms=200)
        p = AIOKafkaProducer(bootstrap_servers=a.bootstrap, transactional_id=a.transactional_id, linger_ms=5)
        await p.start()
        await c.start()
        tps = [TopicPartition(a.in_topic, i) for i in range(a.partitions)]
        ends = {tp.partition: off for tp, off in (await c.end_offsets(tps)).items()}
        c.subscribe([a.in_topic])
        emit(ev="started")
        txns = 0
        while True:
            polled = await c.getmany(timeout_ms=200, max_records=a.batch)
            if polled:
                await p.begin_transaction()
                futs = []
                for tp, records in polled.items():
                    for r in records:
                        futs.append(await p.send(a.out_topic, key=r.key, value=b"out-" + r.value,
                                                 partition=tp.partition))
                offsets = {tp: await c.position(tp) for tp in c.assignment()}
                await p.send_offsets_to_transaction(offsets, a.group)
                n = sum(len(r) for r in polled.values())
                if a.hang_after is not None and txns == a.hang_after:
                    await asyncio.gather(*futs)
                    emit(ev="hanging", txns=txns, records=n)
                    await asyncio.get_running_loop().run_in_executor(None, hang.wait)
                await p.commit_transaction()
                txns += 1
                emit(ev="committed", txns=txns, records=n)
            assigned = c.assignment()
            if len(assigned) == len(ends):
                positions = {tp.partition: await c.position(tp) for tp in assigned}
                if all(positions[i] >= end for i, end in ends.items()):
                    break
        await c.stop()
        await p.stop()
        emit(ev="done", txns=txns)

    asyncio.run(main())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("client", choices=["kafka-python", "confluent-kafka", "aiokafka"])
    ap.add_argument("bootstrap")
    ap.add_argument("in_topic")
    ap.add_argument("out_topic")
    ap.add_argument("group")
    ap.add_argument("transactional_id")
    ap.add_argument("--partitions", type=int, required=True, help="how many partitions IN_TOPIC has")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--hang-after", type=int, default=None)
    ap.add_argument("--session-timeout-ms", type=int, default=1000)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    runner = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent, "aiokafka": run_aiokafka}
    try:
        runner[a.client](a)
    except Exception as e:  # reported, so that the test shows why
        emit(ev="error", error=f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
