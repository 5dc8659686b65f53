"""kafka-python (KafkaProducer, KafkaConsumer, KafkaAdminClient), driven as its documentation shows."""

from __future__ import annotations

import time

from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec, classify, settled


def _error(e: BaseException) -> ClientError:
    return ClientError(classify(f"{type(e).__name__} {e}", getattr(e, "errno", None)), f"{type(e).__name__}: {e}")


def _rec(r) -> Rec:
    return Rec(r.key, r.value, tuple((k, v) for k, v in (r.headers or [])), r.timestamp, r.partition, r.offset)


def _prime_metadata(consumer) -> None:
    """kafka-python 3.0.12's group race, worked around as tests/support/group_member.py does: a leader that
    joins before the first metadata answer after subscribe() assigns from an empty snapshot, rejoins, and
    may never apply that second join (it keeps its old partitions and stops heartbeating until the broker
    drops it). Kafka's default group.initial.rebalance.delay.ms of 3 s hides the race; kbroker's 0 ms does
    not. Fetching the topics' metadata right after subscribe() fills the snapshot before the first join."""
    consumer.topics()


class KafkaPython(Adapter):
    name = "kafka-python"
    language = "Python"
    partitioner = "murmur2"

    @classmethod
    def missing(cls):
        try:
            import kafka  # noqa: F401
        except ImportError:
            return "not installed (pip install kafka-python)"
        return None

    @classmethod
    def version(cls):
        import kafka

        return kafka.__version__

    @classmethod
    def codecs(cls):
        from kafka import codec

        have = {"gzip": codec.has_gzip(), "snappy": codec.has_snappy(), "lz4": codec.has_lz4(),
                "zstd": codec.has_zstd()}
        return ("none",) + tuple(c for c, ok in have.items() if ok)

    def _admin(self):
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))

    def _admin_call(self, fn):
        a = self._admin()
        try:
            return fn(a)
        except Exception as e:
            raise _error(e) from e
        finally:
            a.close()

    def cluster(self, topics):
        def go(a):
            info = a.describe_cluster()
            described = a.describe_topics(topics)
            return Cluster([(b["host"], b["port"]) for b in info["brokers"]],
                           {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0})

        return self._admin_call(go)

    def create_topic(self, topic, partitions, configs=None):
        from kafka.admin import NewTopic

        self._admin_call(lambda a: a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})]))

    def delete_topic(self, topic):
        self._admin_call(lambda a: a.delete_topics([topic]))

    def describe_topic_configs(self, topic):
        from kafka.admin import ConfigResource, ConfigResourceType

        def go(a):
            res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
            entries = res["topic"][topic]
            return {k: (v["value"] if isinstance(v, dict) else v) for k, v in entries.items()}

        return self._admin_call(go)

    def alter_topic_configs(self, topic, configs):
        from kafka.admin import ConfigResource, ConfigResourceType

        self._admin_call(lambda a: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)]))

    def list_groups(self):
        def go(a):
            groups = a.list_groups()
            return {g["group_id"] if isinstance(g, dict) else g[0] for g in groups}

        return self._admin_call(go)

    def describe_group(self, group):
        def go(a):
            d = a.describe_groups([group])[group]  # kafka-python 3: {group_id: description}
            return {"state": d.get("group_state") or d.get("state"), "members": len(d.get("members") or [])}

        return self._admin_call(go)

    # -- producing ---------------------------------------------------------------

    def _producer(self, compression, idempotent, timeout_s, **extra):
        from kafka import KafkaProducer

        conf = dict(bootstrap_servers=self.bootstrap, compression_type=None if compression == "none" else compression,
                    linger_ms=5, acks="all", max_block_ms=int(timeout_s * 1000),
                    request_timeout_ms=int(timeout_s * 1000), delivery_timeout_ms=int(timeout_s * 1000) + 1000)
        if idempotent is not None:
            conf["enable_idempotence"] = idempotent
        conf.update(extra)
        return KafkaProducer(**conf)

    @staticmethod
    def _send(p, topic, r):
        return p.send(topic, key=r.key, value=r.value, headers=list(r.headers) or None, partition=r.partition,
                      timestamp_ms=r.timestamp)

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        try:
            p = self._producer(compression, idempotent, timeout_s)
        except Exception as e:
            raise _error(e) from e
        try:
            futures = [self._send(p, topic, r) for r in records]
            p.flush(timeout_s)
            for f in futures:
                f.get(timeout_s)
        except Exception as e:
            raise _error(e) from e
        finally:
            p.close(timeout=5)

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        p = self._producer("none", True, timeout_s, transactional_id=transactional_id)
        try:
            p.init_transactions()
            for batch, commit in ((committed, True), (aborted, False)):
                p.begin_transaction()
                for r in batch:
                    self._send(p, topic, r)
                p.flush(timeout_s)
                p.commit_transaction() if commit else p.abort_transaction()
        except Exception as e:
            raise _error(e) from e
        finally:
            p.close(timeout=5)

    # -- consuming ---------------------------------------------------------------

    def _consumer(self, **conf):
        from kafka import KafkaConsumer

        return KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=int(TIMEOUT_S * 1000) + 5000,
                             **conf)

    @staticmethod
    def _poll_until(c, count, timeout_s, out=None):
        out = [] if out is None else out
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200, max_records=count - len(out)).values():
                out.extend(_rec(r) for r in recs)
        return out

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        from kafka import TopicPartition

        c = self._consumer(group_id=None, isolation_level="read_committed" if read_committed else "read_uncommitted")
        try:
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            return self._poll_until(c, count, timeout_s)
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        from kafka import TopicPartition

        c = self._consumer(group_id=None)
        try:
            res = c.offsets_for_times({TopicPartition(topic, p): timestamp_ms for p in range(partitions)})
            return {tp.partition: (o.offset if o is not None else None) for tp, o in res.items()}
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        from kafka import OffsetAndMetadata, TopicPartition

        c = self._consumer(group_id=group, heartbeat_interval_ms=500)
        try:
            c.subscribe([topic])
            _prime_metadata(c)
            out = self._poll_until(c, count, timeout_s)[:count]
            last: dict[int, int] = {}
            for r in out:
                last[r.partition] = max(last.get(r.partition, -1), r.offset)
            if last:
                c.commit({TopicPartition(topic, p): OffsetAndMetadata(o + 1, "", -1) for p, o in last.items()})
            return out
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        # One thread polls both members in turn: a KafkaConsumer is not thread-safe, and reading one's
        # assignment from another thread while it polls stalled its heartbeats.
        members = [self._consumer(group_id=group, heartbeat_interval_ms=300, session_timeout_ms=6000)
                   for _ in range(2)]
        live = list(members)

        def parts(c):
            return {tp.partition for tp in c.assignment()}

        try:
            for c in members:
                c.subscribe([topic])
                _prime_metadata(c)
            deadline = time.monotonic() + timeout_s
            before = [set(), set()]
            while time.monotonic() < deadline:
                for c in members:
                    c.poll(timeout_ms=50)
                before = [parts(c) for c in members]
                if settled(before, partitions):
                    break
            members[1].close()
            live.remove(members[1])
            after = parts(members[0])
            while len(after) < partitions and time.monotonic() < deadline:
                members[0].poll(timeout_ms=50)
                after = parts(members[0])
            return before, after
        except Exception as e:
            raise _error(e) from e
        finally:
            for c in live:
                c.close()
