"""kcat (formerly kafkacat), the librdkafka command-line tool, run as its users run it.

Producing: records on stdin, ``-K`` key delimiter and ``-D`` message delimiter, ``-H name=value``
headers, ``-p`` partition and ``-z`` codec; headers and partition apply to a whole run, so records are
sent in runs that share them. kcat cannot set a record's timestamp. Consuming: ``-C -o beginning -e
-J`` (one JSON object per record); offsets for a time: ``-o s@<ms> -c 1``; metadata: ``-L -J``;
consumer groups: ``-G``. kcat has no admin operations, and its transactions (``-X transactional.id``)
always commit.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import shutil

from .base import TIMEOUT_S, Adapter, ClientError, Cluster, Rec, classify
from .proc import run

KEY_DELIM = b"\x1f"
MSG_DELIM = b"\x1e"


@functools.lru_cache(maxsize=1)
def _binary() -> str | None:
    return shutil.which("kcat") or shutil.which("kafkacat")


@functools.lru_cache(maxsize=1)
def _version_line() -> str:
    p = run([_binary(), "-V"], timeout_s=10)
    return (p.stdout + p.stderr).decode(errors="replace")


def _failure(p, what: str) -> ClientError:
    err = p.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if "ERROR" in line or "failed" in line] or err.splitlines()[-3:]
    msg = " | ".join(lines)[-1500:]
    return ClientError(classify(msg), f"kcat {what} exited {p.returncode}: {msg}")


def _to_rec(obj: dict) -> Rec:
    hs = obj.get("headers") or []
    headers = tuple((hs[i], (hs[i + 1] or "").encode()) for i in range(0, len(hs) - 1, 2))
    key = obj.get("key")
    payload = obj.get("payload")
    return Rec(None if key is None else key.encode(), None if payload is None else payload.encode(), headers,
               obj.get("ts"), obj.get("partition"), obj.get("offset"))


class Kcat(Adapter):
    name = "kcat"
    language = "CLI (librdkafka)"
    partitioner = "crc32"  # librdkafka's default partitioner is consistent_random

    @classmethod
    def missing(cls):
        if _binary() is None:
            return "not installed (apt-get install kcat; compat-tests/setup.sh does it)"
        return None

    @classmethod
    def version(cls):
        m = re.search(r"Version (\S+).*?librdkafka (\S+)", _version_line())
        return f"{m.group(1)} (librdkafka {m.group(2)})" if m else "?"

    @classmethod
    def codecs(cls):
        m = re.search(r"builtin\.features=(\S+)", _version_line())
        features = set(m.group(1).rstrip(")").split(",")) if m else set()
        return ("none",) + tuple(c for c in ("gzip", "snappy", "lz4", "zstd") if c in features)

    def _base(self, *args: str) -> list[str]:
        return [_binary(), "-b", self.bootstrap, *args]

    def cluster(self, topics):
        p = run(self._base("-L", "-J"), timeout_s=TIMEOUT_S + 10)
        if p.returncode:
            raise _failure(p, "-L")
        md = json.loads(p.stdout)
        brokers = []
        for b in md.get("brokers", []):
            host, port = b["name"].rsplit(":", 1)
            brokers.append((host, int(port)))
        return Cluster(brokers, {t["topic"]: len(t["partitions"]) for t in md.get("topics", [])
                                 if t["topic"] in topics and not t.get("error")})

    def produce(self, topic, records, compression="none", idempotent=None, timeout_s=TIMEOUT_S):
        if any(r.timestamp is not None for r in records):
            raise self.unsupported("cannot set a record's timestamp when producing")
        ms = int(timeout_s * 1000)
        common = ["-P", "-t", topic, "-K", "\\x1f", "-D", "\\x1e", "-X", "acks=all", "-X", f"message.timeout.ms={ms}",
                  "-X", f"topic.metadata.propagation.max.ms={min(ms, 30000) // 2}"]
        if compression != "none":
            common += ["-z", compression]
        if idempotent is not None:
            common += ["-X", f"enable.idempotence={'true' if idempotent else 'false'}"]
        for (headers, partition), run_ in itertools.groupby(records, key=lambda r: (r.headers, r.partition)):
            args = list(common)
            for name, value in headers:
                args += ["-H", f"{name}={value.decode()}"]
            if partition is not None:
                args += ["-p", str(partition)]
            data = b""
            for r in run_:
                for part in (r.key or b"", r.value or b""):
                    if KEY_DELIM in part or MSG_DELIM in part:
                        raise ValueError("record contains kcat's delimiter bytes")
                data += (r.value or b"") if r.key is None else r.key + KEY_DELIM + (r.value or b"")
                data += MSG_DELIM
            p = run(self._base(*args), data, timeout_s=timeout_s + 15)
            if p.returncode or b"Delivery failed" in p.stderr:
                raise _failure(p, "-P")

    def produce_transactions(self, topic, committed, aborted, transactional_id, timeout_s=TIMEOUT_S):
        raise self.unsupported("-X transactional.id sends a whole run as one committed transaction; "
                               "kcat cannot abort one")

    def _consume(self, args: list[str], timeout_s: float) -> list[Rec]:
        p = run(self._base(*args), timeout_s=timeout_s + 10)
        if p.returncode:
            raise _failure(p, args[0])
        return [_to_rec(json.loads(line)) for line in p.stdout.decode().splitlines() if line.startswith("{")]

    def consume_from_beginning(self, topic, count, read_committed=False, timeout_s=TIMEOUT_S):
        args = ["-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q", "-c", str(count)]
        if read_committed:
            args += ["-X", "isolation.level=read_committed"]
        return self._consume(args, timeout_s)

    def offsets_for_times(self, topic, partitions, timestamp_ms):
        out = {}
        for part in range(partitions):
            p = run(self._base("-C", "-t", topic, "-p", str(part), "-o", f"s@{timestamp_ms}", "-c", "1", "-e",
                               "-q", "-f", "%o\\n"), timeout_s=TIMEOUT_S + 10)
            if p.returncode:
                raise _failure(p, "-C -o s@")
            text = p.stdout.decode().strip()
            out[part] = int(text) if text else None
        return out

    def group_consume(self, topic, group, count, timeout_s=TIMEOUT_S):
        # -G: librdkafka's KafkaConsumer subscribed to the topic; offsets are auto-committed on close
        # for exactly the records kcat handed out.
        return self._consume(["-G", group, topic, "-J", "-q", "-c", str(count), "-X", "auto.offset.reset=earliest",
                              "-X", "heartbeat.interval.ms=500"], timeout_s)
