"""A consumer-group member as a separate process, so that a test can SIGKILL it (no LeaveGroup, no goodbye).

    python tests/support/group_member.py CLIENT BOOTSTRAP TOPIC GROUP [--client-id ID] [--instance-id ID]
        [--session-timeout-ms MS] [--heartbeat-ms MS] [--max-poll-interval-ms MS] [--assignor NAME]
        [--group-protocol consumer] [--commit-each]

CLIENT is kafka-python, confluent-kafka or aiokafka. The member subscribes to TOPIC in GROUP and polls until
SIGTERM, then closes the consumer the way an application does (a dynamic member sends LeaveGroup; a static
member does not). It reports on stdout, one JSON object a line, flushed at once:

    {"ev": "started"}
    {"ev": "assigned", "partitions": [...], "owned": [...]}     (partitions: what the callback got)
    {"ev": "revoked", "partitions": [...], "owned": [...]}      ("lost" partitions are reported as revoked)
    {"ev": "record", "p": P, "o": OFFSET}
    {"ev": "committed", "p": P, "o": OFFSET}                    (--commit-each: the record's next offset is committed)
    {"ev": "commit_failed", "p": P, "o": OFFSET, "error": "..."} (--commit-each: it will be read again)
    {"ev": "closed"}
    {"ev": "error", "error": "..."}

"owned" is the member's assignment after the callback: eager assignors revoke everything and assign
everything, cooperative ones (KIP-429) pass only what changes; the same bookkeeping fits both.

--group-protocol consumer (confluent-kafka only) joins with the consumer group protocol (KIP-848): the broker sets
the session and heartbeat interval, and --assignor names the server assignor (group.remote.assignor). With
--commit-each the member commits each record's next offset synchronously before it polls again, and after a failed
commit seeks back to the record, so that a record counts as consumed once its commit is acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading

stop = threading.Event()
owned: set[int] = set()


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def assigned(partitions) -> None:
    parts = sorted(partitions)
    owned.update(parts)
    emit(ev="assigned", partitions=parts, owned=sorted(owned))


def revoked(partitions) -> None:
    parts = sorted(partitions)
    owned.difference_update(parts)
    emit(ev="revoked", partitions=parts, owned=sorted(owned))


def run_confluent(a) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": a.bootstrap, "group.id": a.group, "client.id": a.client_id,
        "max.poll.interval.ms": a.max_poll_interval_ms, "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if a.group_protocol == "consumer":
        conf["group.protocol"] = "consumer"
        if a.assignor:
            conf["group.remote.assignor"] = a.assignor
    else:
        conf.update({"session.timeout.ms": a.session_timeout_ms, "heartbeat.interval.ms": a.heartbeat_ms,
                     "partition.assignment.strategy": a.assignor or "range,roundrobin"})
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    c = Consumer(conf)
    c.subscribe([a.topic],
                on_assign=lambda _c, tps: assigned(tp.partition for tp in tps),
                on_revoke=lambda _c, tps: revoked(tp.partition for tp in tps),
                on_lost=lambda _c, tps: revoked(tp.partition for tp in tps))
    emit(ev="started")
    while not stop.is_set():
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            emit(ev="error", error=str(m.error()))
            continue
        emit(ev="record", p=m.partition(), o=m.offset())
        if a.commit_each:
            tp = TopicPartition(m.topic(), m.partition(), m.offset() + 1)
            try:
                failed = [t for t in c.commit(offsets=[tp], asynchronous=False) if t.error is not None]
            except KafkaException as e:
                failed = [e]
            if failed:
                emit(ev="commit_failed", p=m.partition(), o=m.offset(), error=str(failed))
                try:
                    c.seek(TopicPartition(m.topic(), m.partition(), m.offset()))
                except KafkaException:
                    pass  # no longer ours: its next owner starts from the last commit
            else:
                emit(ev="committed", p=m.partition(), o=m.offset())
    c.close()
    emit(ev="closed")


def kafka_python_prime_metadata(consumer) -> None:
    """Works around a kafka-python 3.0.12 race, for a consumer that has just subscribed.

    Its coordinator keeps a snapshot of the subscribed topics' partitions, filled by the first metadata answer
    after subscribe(). A leader that joins before that answer assigns, then sees the snapshot change and rejoins.
    If poll() times out while that JoinGroup/SyncGroup is in flight, the completed join is never applied:
    join_group_async resumes only while need_rejoin() holds, and the leader's own assignment made it False. The
    member then stops heartbeating and keeps its old partitions until the broker drops it. Fetching the metadata
    right after subscribe() fills the snapshot before the first join, so there is no such rejoin."""
    consumer.topics()


def run_kafka_python(a) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                 "cooperative-sticky": CooperativeStickyAssignor}
    kw = {}
    if a.assignor:
        kw["partition_assignment_strategy"] = [assignors[n] for n in a.assignor.split(",")]
    if a.instance_id:
        kw["group_instance_id"] = a.instance_id

    class KafkaPythonListener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, tps):
            revoked(tp.partition for tp in tps)

        def on_partitions_assigned(self, tps):
            assigned(tp.partition for tp in tps)

        def on_partitions_lost(self, tps):
            revoked(tp.partition for tp in tps)

    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.client_id,
                      session_timeout_ms=a.session_timeout_ms, heartbeat_interval_ms=a.heartbeat_ms,
                      max_poll_interval_ms=a.max_poll_interval_ms, auto_offset_reset="earliest",
                      enable_auto_commit=False, **kw)
    c.subscribe([a.topic], listener=KafkaPythonListener())
    kafka_python_prime_metadata(c)
    emit(ev="started")
    while not stop.is_set():
        for tp, records in c.poll(timeout_ms=500).items():
            for r in records:
                emit(ev="record", p=tp.partition, o=r.offset)
    c.close()
    emit(ev="closed")


def run_aiokafka(a) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, tps):
            revoked(tp.partition for tp in tps)

        def on_partitions_assigned(self, tps):
            assigned(tp.partition for tp in tps)

    async def main():
        kw = {}
        if a.assignor:
            kw["partition_assignment_strategy"] = tuple(assignors[n] for n in a.assignor.split(","))
        if a.instance_id:
            kw["group_instance_id"] = a.instance_id
        c = AIOKafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.client_id,
                             session_timeout_ms=a.session_timeout_ms, heartbeat_interval_ms=a.heartbeat_ms,
                             max_poll_interval_ms=a.max_poll_interval_ms, auto_offset_reset="earliest",
                             enable_auto_commit=False, **kw)
        c.subscribe([a.topic], listener=Listener())
        await c.start()
        emit(ev="started")
        while not stop.is_set():
            for tp, records in (await c.getmany(timeout_ms=100)).items():
                for r in records:
                    emit(ev="record", p=tp.partition, o=r.offset)
        await c.stop()
        emit(ev="closed")

    asyncio.run(main())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("client", choices=["kafka-python", "confluent-kafka", "aiokafka"])
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("group")
    p.add_argument("--client-id", default="group-member")
    p.add_argument("--instance-id", default=None)
    p.add_argument("--session-timeout-ms", type=int, default=2000)
    p.add_argument("--heartbeat-ms", type=int, default=300)
    p.add_argument("--max-poll-interval-ms", type=int, default=10000)
    p.add_argument("--assignor", default=None, help="range, roundrobin, cooperative-sticky (comma separated)")
    p.add_argument("--group-protocol", default="classic", choices=["classic", "consumer"])
    p.add_argument("--commit-each", action="store_true")
    p.add_argument("--debug-log", default=None, help="write the client's debug log to this file")
    a = p.parse_args()
    if a.debug_log:
        import logging

        logging.basicConfig(filename=a.debug_log, level=logging.DEBUG,
                            format="%(asctime)s %(threadName)s %(name)s %(message)s")
    # The handler only sets a flag: every poll loop above wakes within 100 ms and closes its consumer.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent, "aiokafka": run_aiokafka}
    runner[a.client](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
