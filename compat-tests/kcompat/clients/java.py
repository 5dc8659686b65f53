"""Apache Kafka's Java client (kafka-clients, with kafka-streams), through the driver in compat-tests/java.

compat-tests/java is a small Maven project pinned to the Apache Kafka release compat-tests/kafka starts
as the real broker. ``build`` runs ``mvn package`` there once (Maven resolves from Maven Central into
its own cache, ~/.m2) and the jars land in java/target (git-ignored); it is rebuilt only when the pom or
the driver's source is newer than the jar. ``kcompat.Driver --serve`` is started once per test process
(one more for each operation running at the same time) and takes every operation, one JSON line each way,
with the same JSON convention as the Go and Node.js drivers; the JVM starts once rather than per operation.

The Java client is the reference the others imitate: murmur2 partitioner, idempotence on by default,
request versions negotiated from ApiVersions. Its consumer speaks both group protocols:
``group.protocol=classic`` (JoinGroup/SyncGroup) and ``consumer`` (KIP-848, ConsumerGroupHeartbeat).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from .base import TIMEOUT_S
from .driver import DriverAdapter, _rec

JAVA_DIR = Path(__file__).resolve().parents[2] / "java"
TARGET = JAVA_DIR / "target"
JAR = TARGET / "kcompat-java.jar"
SOURCES = (JAVA_DIR / "pom.xml", JAVA_DIR / "src" / "main" / "java" / "kcompat" / "Driver.java")
BUILD_TIMEOUT_S = 900  # the first build downloads kafka-clients, kafka-streams and Maven's plugins


def kafka_version() -> str:
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", (JAVA_DIR / "pom.xml").read_text())
    return m.group(1) if m else "?"


@functools.lru_cache(maxsize=1)
def build() -> str | None:
    """Build the driver's jar if it is missing or stale; the reason it cannot be, or None."""
    if shutil.which("java") is None:
        return "Java is not installed (a JDK 17 or newer: Debian's openjdk-17-jdk)"
    mvn = shutil.which("mvn")
    if mvn is None and not JAR.exists():
        return "Maven is not installed (Debian's maven), and compat-tests/java has not been built"
    TARGET.mkdir(exist_ok=True)
    with open(TARGET / "build.lock", "w") as lock:  # pytest-xdist workers build it once between them
        fcntl.flock(lock, fcntl.LOCK_EX)
        newest = max(p.stat().st_mtime for p in SOURCES)
        if JAR.exists() and JAR.stat().st_mtime >= newest and (TARGET / "lib").is_dir():
            return None
        if mvn is None:
            return "Maven is not installed (Debian's maven) and the driver's jar is older than its source"
        try:
            p = subprocess.run([mvn, "-q", "-B", "package"], cwd=JAVA_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"mvn package in compat-tests/java took over {BUILD_TIMEOUT_S // 60} minutes"
        if p.returncode or not JAR.exists():
            return f"mvn package in compat-tests/java failed (Maven Central unreachable?): " \
                   f"{p.stdout.decode(errors='replace')[-800:]}"
        JAR.touch()
    return None


def classpath() -> str:
    return os.pathsep.join([str(JAR), str(TARGET / "lib" / "*")])


def java_command() -> list[str]:
    """The driver, answering the one operation on its stdin."""
    # The serial collector and tiered compilation stopped at C1 start the JVM fastest and cost the least
    # CPU on a loaded machine; the clients need little heap.
    return ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Xmx256m",
            "-cp", classpath(), "kcompat.Driver"]


class Java(DriverAdapter):
    name = "java"
    language = "Java"
    partitioner = "murmur2"
    kip848 = True
    startup_s = 30.0  # the first operation starts the JVM

    @classmethod
    def missing(cls):
        return build()

    @classmethod
    def version(cls):
        try:
            java = subprocess.run(["java", "-version"], capture_output=True, timeout=10).stderr.decode()
        except (OSError, subprocess.TimeoutExpired):
            java = ""
        m = re.search(r'version "([^"]+)"', java)
        return f"kafka-clients {kafka_version()} (Java {m.group(1) if m else '?'})"

    def command(self) -> list[str]:
        return java_command()

    def serve_command(self) -> list[str]:
        return java_command() + ["--serve"]

    def group_args(self) -> dict:
        return {"groupProtocol": "classic"}

    def share_consume(self, topic, group, count, client_id="kbroker-compat", timeout_s=TIMEOUT_S):
        """A KafkaShareConsumer (KIP-932, implicit acknowledgement) in ``group`` reading ``count`` records of
        ``topic``: (record, delivery count) pairs."""
        return [(_rec(d), d["deliveryCount"]) for d in
                self._call("shareConsume", timeout_s, topic=topic, group=group, count=count, clientId=client_id)
                or []]

    def share_hold(self, topic, group, hold_ms, renew, renew_every_ms=None, client_id="kbroker-compat",
                   timeout_s=TIMEOUT_S):
        """A slow KafkaShareConsumer (explicit acknowledgement) that holds the records of its first poll for
        ``hold_ms`` before accepting them, renewing their locks (AcknowledgeType.RENEW, KIP-1222) every
        ``renew_every_ms`` when ``renew``. Returns {"records": [(record, delivery count)], "renewed": {offset:
        times it came back renewed}, "commit": {"topic-partition": exception class name or None}}."""
        res = self._call("shareHold", timeout_s, topic=topic, group=group, holdMs=hold_ms, renew=renew,
                         renewEveryMs=renew_every_ms or hold_ms, clientId=client_id)
        return {"records": [(_rec(d), d["deliveryCount"]) for d in res["records"]],
                "renewed": {int(o): n for o, n in res["renewed"].items()}, "commit": res["commit"]}

    def list_share_group_offsets(self, group) -> dict:
        """Admin.listShareGroupOffsets: "topic-partition" -> {"startOffset", "leaderEpoch", "lag"} or None."""
        return self._call("listShareGroupOffsets", group=group)

    def alter_share_group_offsets(self, group, offsets: dict) -> dict:
        """Admin.alterShareGroupOffsets of {topic: {partition: offset}}: "topic-partition" -> the exception's
        class name, None when altered."""
        return self._call("alterShareGroupOffsets", group=group,
                          offsets={t: {str(p): o for p, o in ps.items()} for t, ps in offsets.items()})

    def delete_share_group_offsets(self, group, topics) -> dict:
        """Admin.deleteShareGroupOffsets of whole topics: topic -> the exception's class name, None when deleted."""
        return self._call("deleteShareGroupOffsets", group=group, topics=list(topics))

    def list_share_groups(self) -> dict:
        """Admin.listGroups(forShareGroups()): group id -> state."""
        return self._call("listShareGroups")

    def describe_share_group(self, group) -> dict:
        """Admin.describeShareGroups: state, epochs, members with their client ids and partitions."""
        return self._call("describeShareGroup", group=group)

    def word_count(self, input_topic, output_topic, application_id, expected, timeout_s=60.0):
        """Run the Kafka Streams word count (exactly_once_v2) until ``output_topic`` holds ``expected``."""
        return self._call("wordcount", timeout_s, input=input_topic, output=output_topic,
                          applicationId=application_id, expected=expected)
