"""kafkajs on Node.js, through the small driver scripts in compat-tests/js (one JSON argument each).

kafkajs has no ``assign()``: every consumer is a consumer-group member, so consuming needs the group
APIs. Codecs other than gzip are plug-ins (kafkajs-snappy, kafkajs-lz4, and zstd through zstd-napi,
since @kafkajs/zstd's binding no longer builds on Node 20).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import uuid
from pathlib import Path

from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec, classify
from .proc import run, run_json

JS_DIR = Path(__file__).resolve().parents[2] / "js"


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def _msg(r: Rec) -> dict:
    return {"key": _b64(r.key), "value": _b64(r.value), "headers": [[k, _b64(v)] for k, v in r.headers],
            "partition": r.partition, "timestamp": r.timestamp}


def _rec(d: dict) -> Rec:
    return Rec(_unb64(d["key"]), _unb64(d["value"]), tuple((k, _unb64(v)) for k, v in d["headers"]),
               d["timestamp"], d["partition"], d["offset"])


@functools.lru_cache(maxsize=1)
def _node() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


class KafkaJS(Adapter):
    name = "kafkajs"
    language = "Node.js"
    partitioner = "murmur2"  # kafkajs 2.x DefaultPartitioner is the Java-compatible one
    consume_needs_group = True

    @classmethod
    def missing(cls):
        if _node() is None:
            return "Node.js is not installed"
        if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
            return "not installed in compat-tests/js (compat-tests/setup.sh runs npm ci there)"
        return None

    @classmethod
    def version(cls):
        pkg = JS_DIR / "node_modules" / "kafkajs" / "package.json"
        node = run([_node(), "--version"], timeout_s=10).stdout.decode().strip()
        return f"{json.loads(pkg.read_text())['version']} (Node.js {node})"

    @classmethod
    @functools.lru_cache(maxsize=1)
    def codecs(cls):
        return tuple(run_json([_node(), str(JS_DIR / "admin.js")], {"op": "codecs"}, timeout_s=30))

    def _call(self, script: str, arg: dict, timeout_s: float = TIMEOUT_S):
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        arg = dict(arg, bootstrap=self.bootstrap)
        try:
            return run_json([_node(), str(JS_DIR / script)], arg, timeout_s=timeout_s + 20, env=env, cwd=JS_DIR)
        except ClientError as e:
            raise ClientError(classify(f"{e.kind} {e.detail}") if e.kind not in (
                "MESSAGE_TOO_LARGE", "UNKNOWN_TOPIC_OR_PARTITION") else e.kind, e.detail) from None

    def _admin(self, op: str, **arg):
        return self._call("admin.js", dict(arg, op=op))

    def cluster(self, topics):
        res = self._admin("cluster", topics=topics)
        return Cluster([tuple(b) for b in res["brokers"]], res["topics"])

    def create_topic(self, topic, partitions, configs=None):
        self._admin("createTopic", topic=topic, partitions=partitions, configs=configs or {})

    def delete_topic(self, topic):
        self._admin("deleteTopic", topic=topic)

    def describe_topic_configs(self, topic):
        return self._admin("describeConfigs", topic=topic)

    def alter_topic_configs(self, topic, configs):
        self._admin("alterConfigs", topic=topic, configs=configs)

    def list_groups(self):
        return set(self._admin("listGroups"))

    def describe_group(self, group):
        return self._admin("describeGroup", group=group)

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        res = self._admin("offsetsForTimes", topic=topic, timestamp=timestamp_ms)
        # kafkajs reports "no record at or after the time" as the high watermark.
        return {r["partition"]: (None if r["offset"] == r["high"] else r["offset"]) for r in res}

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        retries = 5 if timeout_s >= TIMEOUT_S else 1
        self._call("produce.js", {"topic": topic, "messages": [_msg(r) for r in records], "compression": compression,
                                  "idempotent": idempotent, "timeoutMs": int(timeout_s * 1000), "retries": retries},
                   timeout_s)

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        self._call("produce.js", {"topic": topic, "transactionalId": transactional_id,
                                  "committed": [_msg(r) for r in committed], "aborted": [_msg(r) for r in aborted],
                                  "timeoutMs": int(timeout_s * 1000)}, timeout_s)

    def _consume(self, topic, group, count, read_committed, commit, timeout_s):
        res = self._call("consume.js", {"topic": topic, "groupId": group, "count": count,
                                        "readCommitted": read_committed, "commit": commit,
                                        "timeoutMs": int(timeout_s * 1000)}, timeout_s)
        return [_rec(d) for d in res]

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        # A fresh group that commits nothing: kafkajs's nearest thing to reading a topic from the start.
        return self._consume(topic, f"kbroker-compat-{uuid.uuid4().hex[:8]}", count, read_committed, False, timeout_s)

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        return self._consume(topic, group, count, False, True, timeout_s)

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        res = self._call("rebalance.js", {"topic": topic, "groupId": group, "partitions": partitions,
                                          "timeoutMs": int(timeout_s * 1000)}, timeout_s)
        return [set(a) for a in res["before"]], set(res["after"])
