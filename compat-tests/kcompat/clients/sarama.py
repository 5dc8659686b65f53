"""sarama (Go), through the driver in compat-tests/go/sarama, built offline from Debian's packages.

Debian ships sarama 1.22 as source under /usr/share/gocode (golang-github-shopify-sarama-dev); the
driver is built once in GOPATH mode (no module download) into compat-tests/.build. Sarama's default
partitioner is its own FNV-1a hash, not Java's murmur2.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec
from .kafkajs import _b64, _unb64
from .proc import run, run_json

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "go" / "sarama" / "main.go"
BUILD = ROOT / ".build"
BINARY = BUILD / "sarama-driver"
GOPATH = "/usr/share/gocode"
SARAMA_SRC = Path(GOPATH) / "src" / "github.com" / "Shopify" / "sarama"


def _go_env() -> dict:
    return dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOCACHE=str(BUILD / "gocache"), GOFLAGS="",
                CGO_CFLAGS="-O2 -Wno-deprecated-declarations")


@functools.lru_cache(maxsize=1)
def build() -> str | None:
    """Build the driver if it is missing or older than its source; the reason it cannot be, or None."""
    go = shutil.which("go")
    if go is None:
        return "Go is not installed (apt-get install golang-go; compat-tests/setup.sh does it)"
    if not SARAMA_SRC.is_dir():
        return "sarama's source is not installed (apt-get install golang-github-shopify-sarama-dev)"
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / "sarama.lock", "w") as lock:  # pytest-xdist workers build it once between them
        fcntl.flock(lock, fcntl.LOCK_EX)
        if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
            return None
        try:
            p = subprocess.run([go, "build", "-o", str(BINARY) + ".tmp", "."], cwd=SOURCE.parent, env=_go_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        except subprocess.TimeoutExpired:
            return "building the sarama driver took over 5 minutes"
        if p.returncode:
            return f"the sarama driver does not build: {p.stdout.decode(errors='replace')[-800:]}"
        os.replace(str(BINARY) + ".tmp", BINARY)
    return None


def _rec(d: dict) -> Rec:
    return Rec(_unb64(d["key"]), _unb64(d["value"]), tuple((k, _unb64(v)) for k, v in d["headers"] or ()),
               d["timestamp"], d["partition"], d["offset"])


def _msg(r: Rec) -> dict:
    return {"key": _b64(r.key), "value": _b64(r.value), "headers": [[k, _b64(v)] for k, v in r.headers],
            "partition": r.partition, "timestamp": r.timestamp}


class Sarama(Adapter):
    name = "sarama"
    language = "Go"
    partitioner = "fnv1a"
    pinned = {
        "describe_topic_configs": (32, 0, "sarama 1.22's ClusterAdmin.DescribeConfig always sends DescribeConfigs v0"),
    }

    @classmethod
    def missing(cls):
        return build()

    @classmethod
    def version(cls):
        p = run(["dpkg-query", "-W", "-f", "${Version}", "golang-github-shopify-sarama-dev"], timeout_s=10)
        go = run(["go", "version"], timeout_s=10).stdout.decode()
        m = re.search(r"go(\d+\.\d+(\.\d+)?)", go)
        return f"{p.stdout.decode().strip() or '?'} (Go {m.group(1) if m else '?'}, protocol V2_1_0_0)"

    @classmethod
    def codec_unusable(cls, codec: str) -> str | None:
        if codec == "zstd":
            # sarama 1.22 labels zstd batches but still sends them in Produce v3 (and fetches with v4);
            # Kafka (and kbroker) answer UNSUPPORTED_COMPRESSION_TYPE below Produce v7 (KIP-110).
            # Fixed in sarama 1.26 (IBM/sarama#1574, #1582).
            return ("sarama 1.22 sends zstd in Produce v3, which brokers refuse (zstd needs Produce v7, "
                    "Fetch v10; fixed in sarama 1.26)")
        return super().codec_unusable(codec)

    def _call(self, op: str, timeout_s: float = TIMEOUT_S, **arg):
        arg = dict(arg, op=op, bootstrap=self.bootstrap, timeoutMs=int(timeout_s * 1000))
        try:
            return run_json([str(BINARY)], arg, timeout_s=timeout_s + 20)
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
        retries = 0 if timeout_s >= TIMEOUT_S else 1
        self._call("produce", timeout_s, topic=topic, messages=[_msg(r) for r in records], compression=compression,
                   idempotent=idempotent, retries=retries)

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        raise self.unsupported("no transactional producer in 1.22 (added in sarama 1.37)")

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        return [_rec(d) for d in self._call("consume", timeout_s, topic=topic, count=count,
                                            readCommitted=read_committed) or []]

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        res = self._call("offsetsForTimes", topic=topic, partitions=partitions, timestamp=timestamp_ms)
        return {int(p): (o if o >= 0 else None) for p, o in res.items()}

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        return [_rec(d) for d in self._call("groupConsume", timeout_s, topic=topic, group=group, count=count) or []]

    def group_rebalance(self, topic, group, partitions, timeout_s=TIMEOUT_S):
        res = self._call("rebalance", timeout_s, topic=topic, group=group, partitions=partitions)
        return [set(a or ()) for a in res["before"]], set(res["after"] or ())
