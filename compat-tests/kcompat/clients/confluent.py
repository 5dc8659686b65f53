"""confluent-kafka (librdkafka): Producer, Consumer and AdminClient, driven as its documentation shows."""

from __future__ import annotations

import time

from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec, classify, settled

# librdkafka error names (KafkaError.name()) for the kinds the scenarios look for.
_KINDS = {
    "MSG_SIZE_TOO_LARGE": "MESSAGE_TOO_LARGE",
    "UNKNOWN_TOPIC_OR_PART": "UNKNOWN_TOPIC_OR_PARTITION",
    "_UNKNOWN_TOPIC": "UNKNOWN_TOPIC_OR_PARTITION",
    "_UNKNOWN_PARTITION": "UNKNOWN_TOPIC_OR_PARTITION",
    "_MSG_TIMED_OUT": "TIMEOUT",
    "_TIMED_OUT": "TIMEOUT",
    "REQUEST_TIMED_OUT": "TIMEOUT",
}


def _kafka_error(err) -> ClientError:
    name = err.name()
    return ClientError(_KINDS.get(name) or classify(f"{name} {err.str()}"), f"{name}: {err.str()}")


def _error(e: BaseException) -> ClientError:
    from confluent_kafka import KafkaException

    if isinstance(e, KafkaException) and e.args and hasattr(e.args[0], "name"):
        return _kafka_error(e.args[0])
    if isinstance(e, ClientError):
        return e
    return ClientError(classify(f"{type(e).__name__} {e}"), f"{type(e).__name__}: {e}")


def _rec(m) -> Rec:
    return Rec(m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()[1], m.partition(), m.offset())


class ConfluentKafka(Adapter):
    name = "confluent-kafka"
    language = "Python (librdkafka)"
    partitioner = "crc32"  # librdkafka's default partitioner is consistent_random

    @classmethod
    def missing(cls):
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            return "not installed (pip install confluent-kafka)"
        return None

    @classmethod
    def version(cls):
        import confluent_kafka

        return f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"

    def _admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    @staticmethod
    def _wait(futures):
        try:
            return {k: f.result(TIMEOUT_S) for k, f in futures.items()}
        except Exception as e:
            raise _error(e) from e

    def cluster(self, topics):
        try:
            md = self._admin().list_topics(timeout=TIMEOUT_S)
        except Exception as e:
            raise _error(e) from e
        return Cluster([(b.host, b.port) for b in md.brokers.values()],
                       {t: len(md.topics[t].partitions) for t in topics
                        if t in md.topics and md.topics[t].error is None})

    def create_topic(self, topic, partitions, configs=None):
        from confluent_kafka.admin import NewTopic

        admin = self._admin()  # kept referenced while its futures are awaited
        self._wait(admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs or {})],
            operation_timeout=10))

    def delete_topic(self, topic):
        admin = self._admin()
        self._wait(admin.delete_topics([topic], operation_timeout=10))

    def describe_topic_configs(self, topic):
        from confluent_kafka.admin import ConfigResource

        admin = self._admin()
        res = self._wait(admin.describe_configs([ConfigResource("topic", topic)]))
        (entries,) = res.values()
        return {name: e.value for name, e in entries.items()}

    def alter_topic_configs(self, topic, configs):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
        admin = self._admin()
        self._wait(admin.incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=entries)]))

    def list_groups(self):
        try:
            admin = self._admin()
            res = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
        except Exception as e:
            raise _error(e) from e
        return {g.group_id for g in res.valid}

    def describe_group(self, group):
        admin = self._admin()
        (d,) = self._wait(admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)).values()
        state = d.state.name if hasattr(d.state, "name") else str(d.state)
        return {"state": state.replace("ConsumerGroupState.", "").title().replace("_", ""),
                "members": len(d.members)}

    # -- producing ---------------------------------------------------------------

    def _producer_conf(self, compression, idempotent, timeout_s):
        ms = int(timeout_s * 1000)
        conf = {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all", "compression.type": compression,
                "message.timeout.ms": ms, "topic.metadata.propagation.max.ms": min(ms, 30000) // 2}
        if idempotent is not None:
            conf["enable.idempotence"] = idempotent
        return conf

    @staticmethod
    def _send(p, topic, r, on_delivery):
        args = {"key": r.key, "value": r.value, "on_delivery": on_delivery}
        if r.headers:
            args["headers"] = list(r.headers)
        if r.partition is not None:
            args["partition"] = r.partition
        if r.timestamp is not None:
            args["timestamp"] = r.timestamp
        while True:
            try:
                p.produce(topic, **args)
                return
            except BufferError:
                p.poll(0.1)

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        from confluent_kafka import Producer

        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)

        try:
            p = Producer(self._producer_conf(compression, idempotent, timeout_s))
            for r in records:
                self._send(p, topic, r, on_delivery)
            remaining = p.flush(timeout_s + 5)
        except Exception as e:
            raise _error(e) from e
        if errors:
            raise _kafka_error(errors[0])
        if remaining:
            raise ClientError("TIMEOUT", f"{remaining} messages still undelivered after {timeout_s} s")

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        from confluent_kafka import Producer

        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)

        try:
            conf = self._producer_conf("none", True, timeout_s)
            conf["transactional.id"] = transactional_id
            p = Producer(conf)
            p.init_transactions(timeout_s)
            for batch, commit in ((committed, True), (aborted, False)):
                p.begin_transaction()
                for r in batch:
                    self._send(p, topic, r, on_delivery)
                p.flush(timeout_s)
                p.commit_transaction(timeout_s) if commit else p.abort_transaction(timeout_s)
        except Exception as e:
            raise _error(e) from e
        if errors:
            raise _kafka_error(errors[0])

    # -- consuming ---------------------------------------------------------------

    def _consumer(self, group, **extra):
        from confluent_kafka import Consumer

        # librdkafka wants a group.id even for assign(); nothing is committed without subscribe/commit.
        conf = {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest"}
        conf.update(extra)
        return Consumer(conf)

    @staticmethod
    def _consume_until(c, count, timeout_s):
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=count - len(out), timeout=0.2):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF, only when asked for
                        continue
                    raise _kafka_error(m.error())
                out.append(_rec(m))
        return out

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        c = self._consumer("kbroker-compat-assign-only",
                           **{"isolation.level": "read_committed" if read_committed else "read_uncommitted"})
        try:
            md = c.list_topics(topic, timeout=TIMEOUT_S)
            parts = sorted(md.topics[topic].partitions)
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            return self._consume_until(c, count, timeout_s)
        except ClientError:
            raise
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        from confluent_kafka import TopicPartition

        c = self._consumer("kbroker-compat-assign-only")
        try:
            res = c.offsets_for_times([TopicPartition(topic, p, timestamp_ms) for p in range(partitions)],
                                      timeout=TIMEOUT_S)
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in res}

    kip848 = True  # librdkafka 2.x: group.protocol=consumer

    def group_consume_kip848(self, topic, group, count, timeout_s=TIMEOUT_S):
        return self.group_consume(topic, group, count, timeout_s, **{"group.protocol": "consumer"})

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S, **extra):
        c = self._consumer(group, **extra)
        try:
            c.subscribe([topic])
            out = self._consume_until(c, count, timeout_s)
            if out:
                from confluent_kafka import TopicPartition

                last: dict[int, int] = {}
                for r in out:
                    last[r.partition] = max(last.get(r.partition, -1), r.offset)
                c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
            return out
        except ClientError:
            raise
        except Exception as e:
            raise _error(e) from e
        finally:
            c.close()

    def group_rebalance_kip848(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        # The heartbeat interval and session timeout are the broker's under this protocol (librdkafka
        # refuses to set them).
        return self.group_rebalance(topic, group, partitions, timeout_s, **{"group.protocol": "consumer"})

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S, **extra):
        conf = extra or {"heartbeat.interval.ms": 300, "session.timeout.ms": 6000}
        members = [self._consumer(group, **conf) for _ in range(2)]
        live = list(members)

        def parts(c):
            return {tp.partition for tp in c.assignment()}

        try:
            for c in members:
                c.subscribe([topic])
            deadline = time.monotonic() + timeout_s
            before = [set(), set()]
            while time.monotonic() < deadline:
                for c in live:
                    c.poll(0.05)  # callbacks and rebalances are served from poll()
                before = [parts(c) for c in members]
                if settled(before, partitions):
                    break
            members[1].close()
            live.remove(members[1])
            after = parts(members[0])
            while len(after) < partitions and time.monotonic() < deadline:
                members[0].poll(0.05)
                after = parts(members[0])
            return before, after
        except Exception as e:
            raise _error(e) from e
        finally:
            for c in live:
                c.close()
