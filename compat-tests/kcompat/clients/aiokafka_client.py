"""aiokafka (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient) on asyncio, as its documentation shows.

aiokafka's admin client returns the raw protocol responses; like its users, the adapter reads the
error codes out of them.
"""

from __future__ import annotations

import asyncio
import time

from .base import ERROR_CODES, TIMEOUT_S, Adapter, ClientError, Cluster, Rec, classify, settled


def _error(e: BaseException) -> ClientError:
    if isinstance(e, ClientError):
        return e
    return ClientError(classify(f"{type(e).__name__} {e}", getattr(e, "errno", None)), f"{type(e).__name__}: {e}")


def _check(code: int, what: str) -> None:
    if code:
        raise ClientError(ERROR_CODES.get(code, "OTHER"), f"{what}: error code {code}")


def _rec(tp, r) -> Rec:
    return Rec(r.key, r.value, tuple(r.headers or ()), r.timestamp, tp.partition, r.offset)


class AioKafka(Adapter):
    name = "aiokafka"
    language = "Python (asyncio)"
    partitioner = "murmur2"

    @classmethod
    def missing(cls):
        try:
            import aiokafka  # noqa: F401
        except ImportError:
            return "not installed (pip install aiokafka)"
        return None

    @classmethod
    def version(cls):
        import aiokafka

        return aiokafka.__version__

    @classmethod
    def codecs(cls):
        from aiokafka import codec

        have = {"gzip": codec.has_gzip(), "snappy": codec.has_snappy(), "lz4": codec.has_lz4(),
                "zstd": codec.has_zstd()}
        return ("none",) + tuple(c for c, ok in have.items() if ok)

    def _run(self, coro, timeout_s=TIMEOUT_S):
        async def bounded():
            return await asyncio.wait_for(coro, timeout_s + 10)

        try:
            return asyncio.run(bounded())
        except ClientError:
            raise
        except Exception as e:
            raise _error(e) from e

    async def _with_admin(self, fn):
        from aiokafka.admin import AIOKafkaAdminClient

        a = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))
        await a.start()
        try:
            return await fn(a)
        finally:
            await a.close()

    def cluster(self, topics):
        async def go(a):
            info = await a.describe_cluster()
            described = await a.describe_topics(topics)
            return Cluster([(b["host"], b["port"]) for b in info["brokers"]],
                           {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0})

        return self._run(self._with_admin(go))

    def create_topic(self, topic, partitions, configs=None):
        from aiokafka.admin import NewTopic

        async def go(a):
            resp = await a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
            for t in resp.to_object()["topic_errors"]:
                _check(t["error_code"], f"create {t['topic']}")

        self._run(self._with_admin(go))

    def delete_topic(self, topic):
        async def go(a):
            resp = await a.delete_topics([topic])
            for t in resp.to_object()["topic_error_codes"]:
                _check(t["error_code"], f"delete {t['topic']}")

        self._run(self._with_admin(go))

    def describe_topic_configs(self, topic):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        async def go(a):
            out = {}
            for resp in await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]):
                for res in resp.to_object()["resources"]:
                    _check(res["error_code"], f"describe configs of {topic}")
                    for e in res["config_entries"]:
                        out[e["config_names"]] = e["config_value"]
            return out

        return self._run(self._with_admin(go))

    def alter_topic_configs(self, topic, configs):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        async def go(a):
            for resp in await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)]):
                for res in resp.to_object()["resources"]:
                    _check(res["error_code"], f"alter configs of {topic}")

        self._run(self._with_admin(go))

    def list_groups(self):
        async def go(a):
            return {g[0] for g in await a.list_consumer_groups()}

        return self._run(self._with_admin(go))

    def describe_group(self, group):
        async def go(a):
            (resp,) = await a.describe_consumer_groups([group])
            (g,) = resp.to_object()["groups"]
            _check(g["error_code"], f"describe group {group}")
            return {"state": g["state"], "members": len(g["members"])}

        return self._run(self._with_admin(go))

    # -- producing ---------------------------------------------------------------

    def _producer(self, compression, idempotent, timeout_s, **extra):
        from aiokafka import AIOKafkaProducer

        conf = dict(bootstrap_servers=self.bootstrap, compression_type=None if compression == "none" else compression,
                    linger_ms=5, acks="all", request_timeout_ms=int(timeout_s * 1000))
        if idempotent is not None:
            conf["enable_idempotence"] = idempotent
        conf.update(extra)
        return AIOKafkaProducer(**conf)

    @staticmethod
    async def _send(p, topic, r):
        return await p.send(topic, key=r.key, value=r.value, headers=list(r.headers) or None,
                            partition=r.partition, timestamp_ms=r.timestamp)

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        async def go():
            p = self._producer(compression, idempotent, timeout_s)
            await p.start()
            try:
                futures = [await self._send(p, topic, r) for r in records]
                await asyncio.gather(*futures)
            finally:
                await p.stop()

        self._run(go(), timeout_s)

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        async def go():
            p = self._producer("none", True, timeout_s, transactional_id=transactional_id)
            await p.start()
            try:
                async with p.transaction():
                    await asyncio.gather(*[await self._send(p, topic, r) for r in committed])
                await p.begin_transaction()
                await asyncio.gather(*[await self._send(p, topic, r) for r in aborted])
                await p.abort_transaction()
            finally:
                await p.stop()

        self._run(go(), timeout_s)

    # -- consuming ---------------------------------------------------------------

    def _consumer(self, *topics, **conf):
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(*topics, bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **conf)

    @staticmethod
    async def _take(c, count, timeout_s):
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=200, max_records=count - len(out))
            for tp, recs in batch.items():
                out.extend(_rec(tp, r) for r in recs)
        return out

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        from aiokafka import TopicPartition

        async def go():
            # The consumer's metadata holds only the topics it is interested in, so the partitions to
            # assign come from the admin client, as an aiokafka user assigning a whole topic finds them.
            described = await self._with_admin(lambda a: a.describe_topics([topic]))
            parts = sorted(p["partition"] for t in described if t["topic"] == topic for p in t["partitions"])
            c = self._consumer(isolation_level="read_committed" if read_committed else "read_uncommitted")
            await c.start()
            try:
                tps = [TopicPartition(topic, p) for p in parts]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                return await self._take(c, count, timeout_s)
            finally:
                await c.stop()

        return self._run(go(), timeout_s)

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        from aiokafka import TopicPartition

        async def go():
            c = self._consumer()
            await c.start()
            try:
                res = await c.offsets_for_times({TopicPartition(topic, p): timestamp_ms for p in range(partitions)})
                return {tp.partition: (o.offset if o is not None else None) for tp, o in res.items()}
            finally:
                await c.stop()

        return self._run(go())

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        from aiokafka import TopicPartition

        async def go():
            c = self._consumer(topic, group_id=group, heartbeat_interval_ms=500)
            await c.start()
            try:
                out = (await self._take(c, count, timeout_s))[:count]
                last: dict[int, int] = {}
                for r in out:
                    last[r.partition] = max(last.get(r.partition, -1), r.offset)
                if last:
                    await c.commit({TopicPartition(topic, p): o + 1 for p, o in last.items()})
                return out
            finally:
                await c.stop()

        return self._run(go(), timeout_s)

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        async def go():
            members = [self._consumer(topic, group_id=group, heartbeat_interval_ms=300, session_timeout_ms=6000)
                       for _ in range(2)]
            live = []
            stop = [asyncio.Event(), asyncio.Event()]

            async def pump(c, ev):  # a member keeps its membership by fetching
                while not ev.is_set():
                    await c.getmany(timeout_ms=100)

            def parts(c):
                return {tp.partition for tp in c.assignment()}

            tasks = []
            try:
                for c, ev in zip(members, stop, strict=True):
                    await c.start()
                    live.append(c)
                    tasks.append(asyncio.create_task(pump(c, ev)))
                deadline = time.monotonic() + timeout_s
                before = [parts(c) for c in members]
                while not settled(before, partitions) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    before = [parts(c) for c in members]
                stop[1].set()
                await tasks[1]
                await members[1].stop()
                live.remove(members[1])
                after = parts(members[0])
                while len(after) < partitions and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    after = parts(members[0])
                return before, after
            finally:
                for ev in stop:
                    ev.set()
                for t in tasks:
                    if not t.done():
                        t.cancel()
                for c in live:
                    await c.stop()

        return self._run(go(), timeout_s)
