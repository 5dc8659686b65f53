"""What the clients driven as child processes share (the Go drivers for franz-go and sarama, the Java
client): every operation is a JSON argument and a JSON answer, records travel base64-encoded as in the
Node.js driver, and every operation has the same name and fields in each driver. A driver runs once per
operation (``proc.run_json``) or, when the subclass names a ``serve_command``, is started once and kept for
every operation of the session, one JSON line each way (``proc.serve_json``). A subclass says only how to
start its driver and where its client differs.
"""

from __future__ import annotations

import functools

from . import gomod
from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec
from .kafkajs import _b64, _unb64
from .proc import run_json, serve_json


def _rec(d: dict) -> Rec:
    return Rec(_unb64(d["key"]), _unb64(d["value"]), tuple((k, _unb64(v)) for k, v in d["headers"] or ()),
               d["timestamp"], d["partition"], d["offset"])


def _msg(r: Rec) -> dict:
    return {"key": _b64(r.key), "value": _b64(r.value), "headers": [[k, _b64(v)] for k, v in r.headers],
            "partition": r.partition, "timestamp": r.timestamp}


class DriverAdapter(Adapter):
    startup_s = 20.0  # what one driver run may take beyond the operation's own timeout (process start)

    def command(self) -> list[str]:
        raise NotImplementedError

    def serve_command(self) -> list[str] | None:
        """How to start the driver as a long-lived process serving one operation per line; None: it runs
        once per operation (``command``)."""
        return None

    def produce_args(self, timeout_s: float) -> dict:
        """Driver-specific fields of a produce operation."""
        return {}

    def group_args(self) -> dict:
        """Driver-specific fields of a group consume."""
        return {}

    def _call(self, op: str, timeout_s: float = TIMEOUT_S, **arg):
        arg = dict(arg, op=op, bootstrap=self.bootstrap, timeoutMs=int(timeout_s * 1000))
        try:
            serve = self.serve_command()
            if serve:
                return serve_json(serve, arg, timeout_s=timeout_s + self.startup_s)
            return run_json(self.command(), arg, timeout_s=timeout_s + self.startup_s)
        except ClientError as e:
            if e.kind == "UNSUPPORTED":
                raise self.unsupported(e.detail.removeprefix("unsupported: ")) from None
            raise

    def cluster(self, topics):
        res = self._call("cluster", topics=topics)
        return Cluster([tuple(b) for b in res["brokers"]], res["topics"])

    def create_topic(self, topic, partitions, configs=None):
        self._call("createTopic", topic=topic, partitions=partitions, configs=configs or {})

    def delete_topic(self, topic):
        self._call("deleteTopic", topic=topic)

    def describe_topic_configs(self, topic):
        return self._call("describeConfigs", topic=topic)

    def alter_topic_configs(self, topic, configs):
        self._call("alterConfigs", topic=topic, configs=configs)

    def list_groups(self):
        return set(self._call("listGroups"))

    def describe_group(self, group):
        return self._call("describeGroup", group=group)

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        self._call("produce", timeout_s, topic=topic, messages=[_msg(r) for r in records], compression=compression,
                   idempotent=idempotent, **self.produce_args(timeout_s))

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        self._call("transactions", timeout_s, topic=topic, committed=[_msg(r) for r in committed],
                   aborted=[_msg(r) for r in aborted], transactionalId=transactional_id)

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        return [_rec(d) for d in self._call("consume", timeout_s, topic=topic, count=count,
                                            readCommitted=read_committed) or []]

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        res = self._call("offsetsForTimes", topic=topic, partitions=partitions, timestamp=timestamp_ms)
        return {int(p): (o if o >= 0 else None) for p, o in res.items()}

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        return [_rec(d) for d in self._call("groupConsume", timeout_s, topic=topic, group=group, count=count,
                                            **self.group_args()) or []]

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        res = self._call("rebalance", timeout_s, topic=topic, group=group, partitions=partitions,
                         **self.group_args())
        return [set(a or ()) for a in res["before"]], set(res["after"] or ())

    # A driver with ``kip848`` takes groupProtocol "consumer" in its groupConsume and rebalance operations.

    def group_consume_kip848(self, topic, group, count, timeout_s=TIMEOUT_S):
        if not self.kip848:
            raise self.no_kip848()
        return [_rec(d) for d in self._call("groupConsume", timeout_s, topic=topic, group=group, count=count,
                                            groupProtocol="consumer") or []]

    def group_rebalance_kip848(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        if not self.kip848:
            raise self.no_kip848()
        res = self._call("rebalance", timeout_s, topic=topic, group=group, partitions=partitions,
                         groupProtocol="consumer")
        return [set(a or ()) for a in res["before"]], set(res["after"] or ())


class GoDriverAdapter(DriverAdapter):
    """A driver under compat-tests/go/<driver>, built in module mode from the Go module proxy."""

    language = "Go"
    driver = ""   # the directory under compat-tests/go
    module = ""   # the Go module whose version the report shows

    @classmethod
    @functools.lru_cache(maxsize=None)
    def missing(cls):
        return gomod.build(cls.driver)

    @classmethod
    def version(cls):
        return f"{gomod.module_version(cls.driver, cls.module)} (Go {gomod.go_version()})"

    def command(self) -> list[str]:
        return [str(gomod.binary(self.driver))]
