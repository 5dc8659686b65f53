"""The suite's own hands on the broker: topics for the scenarios, seed records, and reading back.

A scenario has one client under test; everything around it (creating its topic, writing the records it
should read, reading back what it wrote, partition by partition) is done here, with confluent-kafka
(librdkafka, the most widely deployed client) used through plain assign()-style consumers that need no
consumer-group APIs. Batch-level facts (codec, producer id, control batches) come from kcompat.wire.
"""

from __future__ import annotations

import time

from .clients.base import Rec
from .wire import topic_state

TIMEOUT_S = 20.0


class ReferenceError_(AssertionError):
    """The reference client failed: the scenario's premise, not the client under test."""


class Reference:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def _admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        from confluent_kafka.admin import NewTopic

        admin = self._admin()  # kept referenced: the futures die with it
        fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                           config=configs or {})], operation_timeout=10)
        try:
            for f in fs.values():
                f.result(TIMEOUT_S)
        except Exception as e:
            raise ReferenceError_(f"reference: creating topic {name} failed: {e}") from e
        self.wait_for_topic(name, partitions)

    def wait_for_topic(self, name: str, partitions: int, timeout_s: float = 10.0) -> None:
        """Until Metadata shows every partition with a leader (a real cluster takes a moment)."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = topic_state(self.bootstrap, name)
            if info and len(info.partitions) == partitions and all(p.leader >= 0 for p in info.partitions.values()):
                return
            if time.monotonic() > deadline:
                raise ReferenceError_(f"reference: topic {name} not ready after {timeout_s} s: {info}")
            time.sleep(0.05)

    def group_type(self, group: str) -> str | None:
        """The group's type as ListGroups v5 reports it ("consumer" or "classic"); None when it is not listed."""
        admin = self._admin()
        try:
            listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
        except Exception as e:
            raise ReferenceError_(f"reference: listing groups failed: {e}") from e
        for g in listed.valid:
            if g.group_id == group:
                return g.type.name.lower()
        return None

    def delete_topic(self, name: str) -> None:
        admin = self._admin()
        fs = admin.delete_topics([name], operation_timeout=10)
        for f in fs.values():
            f.result(TIMEOUT_S)

    def produce(self, topic: str, records: list[Rec], compression: str = "none") -> None:
        from confluent_kafka import Producer

        errors = []
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5,
                      "compression.type": compression, "enable.idempotence": False})
        for r in records:
            args = {"key": r.key, "value": r.value,
                    "on_delivery": lambda err, msg: errors.append(err) if err else None}
            if r.headers:
                args["headers"] = list(r.headers)
            if r.partition is not None:
                args["partition"] = r.partition
            if r.timestamp is not None:
                args["timestamp"] = r.timestamp
            p.produce(topic, **args)
        left = p.flush(TIMEOUT_S)
        if errors or left:
            raise ReferenceError_(f"reference: producing to {topic} failed: {errors[:3]} ({left} undelivered)")

    def read_partition(self, topic: str, partition: int, read_committed: bool = False) -> list[Rec]:
        """Every record of one partition from the start up to its end (high watermark, or the last
        stable offset with ``read_committed``)."""
        return self.read_partitions(topic, [partition], read_committed)[partition]

    def read_partitions(self, topic: str, partitions: list[int], read_committed: bool = False) -> dict[int, list[Rec]]:
        """read_partition for several partitions through one consumer (each read costs about half a
        second of librdkafka start-up and end-of-partition detection)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "kbroker-compat-reference",
                      "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 10,
                      "isolation.level": "read_committed" if read_committed else "read_uncommitted"})
        out: dict[int, list[Rec]] = {p: [] for p in partitions}
        pending = set(partitions)
        try:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            deadline = time.monotonic() + TIMEOUT_S
            while pending and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise ReferenceError_(f"reference: reading {topic}-{m.partition()}: {m.error()}")
                out[m.partition()].append(Rec(m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()[1],
                                              m.partition(), m.offset()))
            if pending:
                raise ReferenceError_(f"reference: reading {topic} partitions {sorted(pending)} did not reach "
                                      f"their end in {TIMEOUT_S} s")
            return out
        finally:
            c.close()

    def read_all(self, topic: str, partitions: int, read_committed: bool = False) -> list[Rec]:
        by_partition = self.read_partitions(topic, list(range(partitions)), read_committed)
        return [r for p in range(partitions) for r in by_partition[p]]
