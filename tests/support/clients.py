"""Small adapters that drive each stock client the way its documentation does.

Every adapter offers the same few operations so that one scenario runs with every client:
create_topic, delete_topic, produce, consume_assigned, offsets_for_times.
A consumed record is a tuple (partition, offset, key, value, headers, timestamp).
"""

from __future__ import annotations

import asyncio
import time

TIMEOUT_S = 30


class KafkaPythonClient:
    name = "kafka-python"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def admin(self):
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)

    def create_topic(self, topic: str, partitions: int, configs: dict | None = None) -> None:
        from kafka.admin import NewTopic

        a = self.admin()
        try:
            a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
        finally:
            a.close()

    def delete_topic(self, topic: str) -> None:
        a = self.admin()
        try:
            a.delete_topics([topic])
        finally:
            a.close()

    def list_topics(self) -> set[str]:
        a = self.admin()
        try:
            return set(a.list_topics())
        finally:
            a.close()

    def produce(self, topic: str, messages, compression: str | None = None, **kw) -> None:
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=self.bootstrap, compression_type=compression, linger_ms=5,
                          acks="all", **kw)
        try:
            futures = [p.send(topic, key=k, value=v, headers=h, partition=part, timestamp_ms=ts)
                       for (k, v, h, part, ts) in messages]
            p.flush(TIMEOUT_S)
            for f in futures:
                f.get(TIMEOUT_S)
        finally:
            p.close()

    def consume_assigned(self, topic: str, partitions: int, count: int) -> list[tuple]:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None,
                          auto_offset_reset="earliest")
        try:
            tps = [TopicPartition(topic, i) for i in range(partitions)]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            out = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(out) < count and time.monotonic() < deadline:
                for tp, recs in c.poll(timeout_ms=500).items():
                    for r in recs:
                        out.append((tp.partition, r.offset, r.key, r.value,
                                    [(k, v) for k, v in r.headers], r.timestamp))
            return out
        finally:
            c.close()

    def offsets_for_times(self, topic: str, partitions: int, ts: int) -> dict[int, int | None]:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        try:
            res = c.offsets_for_times({TopicPartition(topic, i): ts for i in range(partitions)})
            return {tp.partition: (o.offset if o is not None else None) for tp, o in res.items()}
        finally:
            c.close()


class ConfluentClient:
    name = "confluent-kafka"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, topic: str, partitions: int, configs: dict | None = None) -> None:
        from confluent_kafka.admin import NewTopic

        admin = self.admin()
        fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                           config=configs or {})])
        for f in fs.values():
            f.result(TIMEOUT_S)

    def delete_topic(self, topic: str) -> None:
        admin = self.admin()
        fs = admin.delete_topics([topic], operation_timeout=10)
        for f in fs.values():
            f.result(TIMEOUT_S)

    def list_topics(self) -> set[str]:
        return set(self.admin().list_topics(timeout=TIMEOUT_S).topics)

    def produce(self, topic: str, messages, compression: str | None = None, **kw) -> None:
        from confluent_kafka import Producer

        conf = {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all",
                "compression.type": compression or "none"}
        conf.update(kw)
        p = Producer(conf)
        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)

        for (k, v, h, part, ts) in messages:
            args = {"key": k, "value": v, "headers": h, "on_delivery": on_delivery}
            if part is not None:
                args["partition"] = part
            if ts is not None:
                args["timestamp"] = ts
            while True:
                try:
                    p.produce(topic, **args)
                    break
                except BufferError:
                    p.poll(0.1)
        remaining = p.flush(TIMEOUT_S)
        assert remaining == 0, f"{remaining} messages not delivered"
        assert not errors, errors[:3]

    def consume_assigned(self, topic: str, partitions: int, count: int) -> list[tuple]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "unused-assign-only",
                      "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
            out = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(out) < count and time.monotonic() < deadline:
                for m in c.consume(num_messages=1000, timeout=0.5):
                    if m.error():
                        raise AssertionError(m.error())
                    out.append((m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or []),
                                m.timestamp()[1]))
            return out
        finally:
            c.close()

    def offsets_for_times(self, topic: str, partitions: int, ts: int) -> dict[int, int | None]:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "unused-assign-only"})
        try:
            res = c.offsets_for_times([TopicPartition(topic, i, ts) for i in range(partitions)], timeout=TIMEOUT_S)
            return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in res}
        finally:
            c.close()


class AioKafkaClient:
    name = "aiokafka"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def _run(self, coro):
        return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S * 2))

    def create_topic(self, topic: str, partitions: int, configs: dict | None = None) -> None:
        async def go():
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            a = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await a.start()
            try:
                await a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
            finally:
                await a.close()

        self._run(go())

    def delete_topic(self, topic: str) -> None:
        async def go():
            from aiokafka.admin import AIOKafkaAdminClient

            a = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await a.start()
            try:
                await a.delete_topics([topic])
            finally:
                await a.close()

        self._run(go())

    def list_topics(self) -> set[str]:
        async def go():
            from aiokafka.admin import AIOKafkaAdminClient

            a = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await a.start()
            try:
                return set(await a.list_topics())
            finally:
                await a.close()

        return self._run(go())

    def produce(self, topic: str, messages, compression: str | None = None, **kw) -> None:
        async def go():
            from aiokafka import AIOKafkaProducer

            p = AIOKafkaProducer(bootstrap_servers=self.bootstrap, compression_type=compression, linger_ms=5,
                                 acks="all", **kw)
            await p.start()
            try:
                futs = [await p.send(topic, key=k, value=v, headers=h, partition=part, timestamp_ms=ts)
                        for (k, v, h, part, ts) in messages]
                await asyncio.gather(*futs)
            finally:
                await p.stop()

        self._run(go())

    def consume_assigned(self, topic: str, partitions: int, count: int) -> list[tuple]:
        async def go():
            from aiokafka import AIOKafkaConsumer, TopicPartition

            c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 auto_offset_reset="earliest")
            await c.start()
            try:
                tps = [TopicPartition(topic, i) for i in range(partitions)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                out = []
                deadline = time.monotonic() + TIMEOUT_S
                while len(out) < count and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500)
                    for tp, recs in batch.items():
                        for r in recs:
                            out.append((tp.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp))
                return out
            finally:
                await c.stop()

        return self._run(go())

    def offsets_for_times(self, topic: str, partitions: int, ts: int) -> dict[int, int | None]:
        async def go():
            from aiokafka import AIOKafkaConsumer, TopicPartition

            c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await c.start()
            try:
                res = await c.offsets_for_times({TopicPartition(topic, i): ts for i in range(partitions)})
                return {tp.partition: (o.offset if o is not None else None) for tp, o in res.items()}
            finally:
                await c.stop()

        return self._run(go())


CLIENTS = {c.name: c for c in (KafkaPythonClient, ConfluentClient, AioKafkaClient)}
