"""A real Apache Kafka 4, started from Maven Central's jars: no Docker, no distribution tarball.

How it works:

- ``ensure_jars()`` runs Maven once on ``compat-tests/kafka/pom.xml`` (``dependency:copy-dependencies``),
  which copies ``kafka_2.13`` and its runtime jars into a cache outside the repository:
  ``$KBROKER_KAFKA_CACHE`` if set, else ``~/.cache/kbroker/kafka-<version>/libs``. A marker file written
  last says the copy is whole, so an interrupted download is redone, never half used.
- ``RealKafka`` writes a server.properties for a combined broker+controller (KRaft, one node) on two free
  loopback ports in a temporary directory, formats the storage with ``kafka.tools.StorageTool format
  --standalone`` and a fresh cluster id, starts ``kafka.Kafka`` in its own process group, and waits until
  Metadata lists the broker (ApiVersions alone answers before the broker is unfenced). ``stop()``
  terminates the group, then kills it; the context manager and an atexit hook make sure a failing test
  leaves no JVM behind.
- ``RealKafkaCluster(brokers=3)`` runs a cluster: one dedicated KRaft controller (node 3000, a static
  one-voter quorum) and N brokers (node ids 0..N-1, as kbroker's ``Broker(brokers=N)``), each JVM in its own
  directory on its own free port with a small heap (``JVM_CLUSTER_NODE``); the formats run side by side,
  then the JVMs, and it is ready when every broker's Metadata lists every broker. ``stop_node`` (SIGTERM:
  Kafka's controlled shutdown), ``kill_node`` (SIGKILL: no shutdown; the controller fences the broker once
  its session times out, ``broker.session.timeout.ms`` here 3000) and ``start_node`` (the same config and
  data, waited for until the running brokers list it) act on one broker. A dedicated controller rather than
  combined nodes: with two of three combined nodes down the controller quorum is gone and the last broker
  can shrink no ISR, which is not what a Kafka user with two brokers down sees (nor kbroker, whose
  controller never dies with a broker).
- ``RealKafka(secure=True)`` (the conformance suite's) adds a SASL_PLAINTEXT listener on a third free port
  with PLAIN and both SCRAM mechanisms (``security_settings``: the user in the listener's PLAIN JAAS config,
  its SCRAM credentials written by ``kafka-storage format --add-scram``) and the StandardAuthorizer, with
  User:ANONYMOUS (PLAINTEXT) as a super user.

Used by the differential conformance suite (kbroker.conformance), ``make compat REAL_KAFKA=1`` and
``bench/peers.py``'s Kafka 4 peer. ``python -m kbroker.conformance.realkafka`` downloads the jars, starts
a broker, prints the timings and stops it (``--fetch-only``: only the download, as ``make kafka-jars``;
``--cluster``: a RealKafkaCluster of three, one broker killed and started again).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from ..uuids import random_uuid

# The pinned release: the newest 4.x that Maven Central served here (4.4.0 on 2026-12-03). Keep it equal to
# compat-tests/kafka/pom.xml's kafka.version; after changing it, refresh the recorded answers
# (make conformance-record).
KAFKA_VERSION = "4.4.0"
HOST = "127.0.0.1"
REPO_DIR = Path(__file__).resolve().parents[2]
POM = REPO_DIR / "compat-tests" / "kafka" / "pom.xml"
COMPLETE_MARKER = ".complete"

# Settings every instance gets: one node, so every internal topic has one replica, and no initial group
# rebalance delay (Kafka's default of 3 s would make every JoinGroup wait; kbroker's default is 0 too).
BASE_SETTINGS = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}

# What a cluster's nodes get besides BASE_SETTINGS: a broker's death is noticed 3 s after its last heartbeat
# (Kafka's default session is 9 s), and leaders stay where the scenarios put them (the automatic
# rebalance off, as the kbroker side of a comparison is started with).
CLUSTER_SETTINGS = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "auto.leader.rebalance.enable": "false",
}
CONTROLLER_NODE_ID = 3000

# JVM options. For tests: a small heap, the serial collector and the C1 compiler only start the broker
# in about half the time of the defaults and serve a test's few requests as fast. For benchmarks:
# kafka-server-start.sh's own defaults (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS).
JVM_FAST_START = ["-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m",
                  "-Djava.awt.headless=true"]
JVM_AS_SHIPPED = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                  "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                  "-Djava.awt.headless=true"]
# One node of a cluster: four JVMs on a 2-core machine, so a smaller heap each (a test's few topics).
JVM_CLUSTER_NODE = ["-Xms64m", "-Xmx320m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m",
                    "-Djava.awt.headless=true"]
TOOL_JVM = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.target=SYSTEM_OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
"""


class KafkaUnavailable(Exception):
    """Real Kafka cannot be had here; the message says why (no java, no mvn, the download failed...)."""


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    env = os.environ.get("KBROKER_KAFKA_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "kbroker"
    return base / f"kafka-{version}"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir(version) / "libs"


def jars_cached(version: str = KAFKA_VERSION) -> bool:
    return (libs_dir(version) / COMPLETE_MARKER).exists()


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaUnavailable("no java on PATH (Kafka 4 needs Java 17 or newer; apt-get install openjdk-17-jre-headless)")
    return found


def ensure_jars(version: str = KAFKA_VERSION, timeout_s: float = 900.0) -> Path:
    """The directory of Kafka's jars, downloading them with Maven the first time."""
    libs = libs_dir(version)
    if jars_cached(version):
        return libs
    java_binary()
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaUnavailable("no mvn on PATH: the Kafka jars are not cached and cannot be downloaded "
                               f"(apt-get install maven, or put them in {libs})")
    if not POM.exists():
        raise KafkaUnavailable(f"{POM} is missing (kbroker is not run from its source tree)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    try:
        r = subprocess.run([mvn, "-B", "-q", "-f", str(POM), f"-Dkafka.version={version}",
                            "dependency:copy-dependencies", "-DincludeScope=runtime",
                            f"-DoutputDirectory={staging}"],
                           capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"mvn did not finish resolving Kafka {version} within {timeout_s:.0f} s") from None
    if r.returncode or not list(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        out = (r.stdout + r.stderr).strip().splitlines()
        errors = [line for line in out if "ERROR" in line][:3] or out[-3:]
        raise KafkaUnavailable(f"mvn could not resolve org.apache.kafka:kafka_2.13:{version}: " + " | ".join(errors))
    (staging / COMPLETE_MARKER).write_text(f"kafka {version}\n")
    if libs.exists():  # a partial copy from an interrupted run
        shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def unavailable_reason(version: str = KAFKA_VERSION) -> str | None:
    """None when real Kafka can be started here (downloading the jars if needed), else why not."""
    try:
        ensure_jars(version)
    except KafkaUnavailable as e:
        return str(e)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def new_cluster_id() -> str:
    """Kafka's Uuid.randomUuid().toString() (uuids.py)."""
    return random_uuid()


# The conformance suite's users and access rules, the same on Kafka and kbroker: a SASL_PLAINTEXT listener
# beside PLAINTEXT with PLAIN and both SCRAM mechanisms, one user (alice), and the StandardAuthorizer with the
# suite's admin (User:ANONYMOUS, whoever comes over PLAINTEXT) as a super user, so the scenarios that do not
# test security run as before.
SUITE_USERS = {"alice": "alice-secret"}
SUITE_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def security_settings(listener: str = "sasl_plaintext") -> dict[str, str]:
    """The SASL and ACL keys both brokers are given (Kafka-named)."""
    users = " ".join(f'user_{u}="{p}"' for u, p in SUITE_USERS.items())
    prefix = f"listener.name.{listener}"
    return {
        f"{prefix}.sasl.enabled.mechanisms": ",".join(SUITE_MECHANISMS),
        f"{prefix}.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
        f"{prefix}.scram-sha-256.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin",
    }


def scram_format_args() -> list[str]:
    """kafka-storage format's ``--add-scram`` arguments for the suite's users (both SCRAM mechanisms)."""
    return [arg for m in SUITE_MECHANISMS if m.startswith("SCRAM")
            for u, p in SUITE_USERS.items() for arg in ("--add-scram", f"{m}=[name={u},password={p}]")]


def server_properties(port: int, controller_port: int, data_dir: Path, settings: dict[str, str] | None = None,
                      sasl_port: int | None = None) -> str:
    sasl = f",SASL_PLAINTEXT://{HOST}:{sasl_port}" if sasl_port else ""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{HOST}:{port}{sasl},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}{sasl}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
                                          + (",SASL_PLAINTEXT:SASL_PLAINTEXT" if sasl_port else ""),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "log.dirs": str(data_dir),
        **BASE_SETTINGS,
        **(settings or {}),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def format_command(java: str, libs: Path, properties: Path, log4j: Path, cluster_id: str,
                   extra_args: list[str] | None = None) -> list[str]:
    return [java, *TOOL_JVM, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*",
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties), *(extra_args or [])]


def format_storage(java: str, libs: Path, properties: Path, log4j: Path, cluster_id: str | None = None,
                   extra_args: list[str] | None = None) -> None:
    r = subprocess.run(format_command(java, libs, properties, log4j, cluster_id or new_cluster_id(),
                                      ["--standalone", *(extra_args or [])]),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if r.returncode:
        raise KafkaUnavailable(f"kafka-storage format failed: {(r.stdout + r.stderr).strip()[-600:]}")


def format_all(commands: list[list[str]], timeout_s: float = 120.0) -> None:
    """Several nodes' ``kafka-storage format`` side by side (each is a JVM of a second or two)."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
             for c in commands]
    failed = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode:
            failed.append(out.decode(errors="replace").strip()[-600:])
    if failed:
        raise KafkaUnavailable(f"kafka-storage format failed: {failed[0]}")


def broker_command(java: str, libs: Path, properties: Path, log4j: Path, jvm_opts: list[str]) -> list[str]:
    return [java, *jvm_opts, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*", "kafka.Kafka",
            str(properties)]


def prepare(run_dir: Path, port: int, settings: dict[str, str] | None = None,
            version: str = KAFKA_VERSION, sasl_port: int | None = None) -> tuple[str, Path, Path, Path]:
    """Write the config into ``run_dir`` and format its storage; returns (java, libs, properties, log4j).
    The controller listener takes another free port. With ``sasl_port``: the suite's SASL_PLAINTEXT
    listener, users and authorizer (security_settings), SCRAM users formatted into the metadata log."""
    java = java_binary()
    libs = ensure_jars(version)
    data = run_dir / "data"
    properties = run_dir / "server.properties"
    log4j = run_dir / "log4j2.properties"
    if sasl_port:
        settings = {**security_settings(), **(settings or {})}
    properties.write_text(server_properties(port, free_port(), data, settings, sasl_port))
    log4j.write_text(LOG4J2)
    format_storage(java, libs, properties, log4j, extra_args=scram_format_args() if sasl_port else None)
    return java, libs, properties, log4j


# -- readiness probes on a raw socket: kbroker's codec, no client library ------------------------------------

def _roundtrip(sock: socket.socket, api_key: int, version: int, request):
    from kbroker.wire.header import RequestHeader, encode_request_header, read_response_header
    from kbroker.wire.messages import BY_KEY

    api = BY_KEY[api_key]
    out = bytearray()
    flexible = api.REQUEST_FLEXIBLE_FROM is not None and version >= api.REQUEST_FLEXIBLE_FROM
    encode_request_header(out, RequestHeader(api_key, version, 1, "kbroker-realkafka"), flexible)
    api.REQUEST_ENCODERS[version](request, out)
    sock.sendall(struct.pack(">i", len(out)) + bytes(out))
    head = _recv_exact(sock, 4)
    frame = _recv_exact(sock, struct.unpack(">i", head)[0])
    resp_flexible = api.RESPONSE_FLEXIBLE_FROM is not None and version >= api.RESPONSE_FLEXIBLE_FROM
    _, pos = read_response_header(frame, resp_flexible and api_key != 18)
    return api.RESPONSE_DECODERS[version](memoryview(frame), pos)[0]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the broker")
        buf += chunk
    return bytes(buf)


def listed_brokers(port: int, timeout_s: float = 1.0) -> set[int]:
    """The node ids the broker on ``port`` lists in Metadata (none until it answers ApiVersions and is
    unfenced: Kafka lists no broker before)."""
    from kbroker.wire.messages import api_versions, metadata

    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as s:
            av = _roundtrip(s, 18, 3, api_versions.ApiVersionsRequest(client_software_name="kbroker",
                                                                      client_software_version="1"))
            if av.error_code:
                return set()
            md = _roundtrip(s, 3, 12, metadata.MetadataRequest(topics=[], allow_auto_topic_creation=False))
            return {b.node_id for b in md.brokers}
    except (OSError, ConnectionError, ValueError):
        return set()


def broker_ready(port: int, timeout_s: float = 1.0) -> bool:
    """ApiVersions answers and Metadata lists a broker (it does so only once the broker is unfenced)."""
    return bool(listed_brokers(port, timeout_s))


# -- the broker ---------------------------------------------------------------------------------------------

_LIVE: set = set()  # RealKafka and RealKafkaCluster instances still running (stopped at exit)


def launch(command: list[str], log_path: Path) -> subprocess.Popen:
    """A Kafka JVM in its own process group (so that stopping it stops whatever it started), its output
    appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def terminate(proc: subprocess.Popen | None, grace_s: float = 10.0, kill: bool = False) -> None:
    """SIGTERM the JVM's process group (Kafka's clean shutdown) and wait ``grace_s``, then SIGKILL it;
    ``kill``: SIGKILL at once (nothing flushed, no controlled shutdown)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        if not kill:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
                return
            except subprocess.TimeoutExpired:
                pass
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


@atexit.register
def _kill_leftovers() -> None:
    for k in list(_LIVE):
        k.stop(grace_s=2.0)


class RealKafka:
    """One Kafka node (broker + controller) on free loopback ports.

    ``with RealKafka() as k: k.bootstrap`` ; ``settings`` are extra server.properties keys. ``start()``
    records ``format_s`` (config + storage format) and ``start_s`` (JVM launch to Metadata listing the broker).
    """

    def __init__(self, settings: dict[str, str] | None = None, version: str = KAFKA_VERSION,
                 jvm_opts: list[str] | None = None, workdir: str | Path | None = None, secure: bool = False):
        self.settings = dict(settings or {})
        self.secure = secure  # also the conformance suite's SASL_PLAINTEXT listener, users and authorizer
        self.sasl_port = 0
        self.version = version
        self.jvm_opts = list(JVM_FAST_START if jvm_opts is None else jvm_opts)
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.port = 0
        self.format_s = 0.0
        self.start_s = 0.0

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"{HOST}:{self.sasl_port}" if self.sasl_port else None

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "broker.log" if self.run_dir else None

    def start(self, timeout_s: float = 90.0) -> RealKafka:
        for attempt in range(2):  # a free port can be taken by someone else before the JVM binds it
            try:
                return self._start_once(timeout_s)
            except KafkaUnavailable as e:
                if attempt or "Address already in use" not in str(e):
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> RealKafka:
        self.run_dir = Path(tempfile.mkdtemp(prefix="kbroker-realkafka-", dir=self.workdir))
        self.port = free_port()
        self.sasl_port = free_port() if self.secure else 0
        t0 = time.perf_counter()
        try:
            java, libs, properties, log4j = prepare(self.run_dir, self.port, self.settings, self.version,
                                                    self.sasl_port or None)
        except BaseException:
            self._cleanup()
            raise
        t1 = time.perf_counter()
        self.format_s = t1 - t0
        self.proc = launch(broker_command(java, libs, properties, log4j, self.jvm_opts), self.log_path)
        _LIVE.add(self)
        deadline = t1 + timeout_s
        while not broker_ready(self.port):
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise KafkaUnavailable(f"Kafka {self.version} exited with code {self.proc.returncode if self.proc else '?'}"
                                       f" at start: {tail}")
            if time.perf_counter() > deadline:
                tail = self.log_tail()
                self.stop()
                raise KafkaUnavailable(f"Kafka {self.version} did not answer Metadata within {timeout_s:.0f} s: {tail}")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - t1
        return self

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:] if self.log_path else ""
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        terminate(proc, grace_s)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def __enter__(self) -> RealKafka:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def cluster_node_properties(node_id: int, port: int | None, controller_port: int, data_dir: Path,
                            settings: dict[str, str] | None = None) -> str:
    """server.properties of one node of a RealKafkaCluster: a broker on ``port``, or (``port`` None) the
    dedicated controller on ``controller_port``, the quorum's one static voter."""
    voters = f"{CONTROLLER_NODE_ID}@{HOST}:{controller_port}"
    if port is None:
        props = {"process.roles": "controller", "node.id": str(CONTROLLER_NODE_ID),
                 "listeners": f"CONTROLLER://{HOST}:{controller_port}",
                 "listener.security.protocol.map": "CONTROLLER:PLAINTEXT"}
    else:
        props = {"process.roles": "broker", "node.id": str(node_id),
                 "listeners": f"PLAINTEXT://{HOST}:{port}", "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
                 "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                 "inter.broker.listener.name": "PLAINTEXT"}
    props.update({"controller.listener.names": "CONTROLLER", "controller.quorum.voters": voters,
                  "log.dirs": str(data_dir), **BASE_SETTINGS, **CLUSTER_SETTINGS, **(settings or {})})
    return "".join(f"{k}={v}\n" for k, v in props.items())


class KafkaNode:
    """One JVM of a RealKafkaCluster: its directory (config, data, log) and its process."""

    def __init__(self, node_id: int, run_dir: Path, port: int | None):
        self.node_id = node_id
        self.dir = run_dir / (f"broker-{node_id}" if port is not None else "controller")
        self.port = port  # None: the controller
        self.properties = self.dir / "server.properties"
        self.log_path = self.dir / "kafka.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class RealKafkaCluster:
    """A Kafka cluster on loopback: one dedicated KRaft controller and ``brokers`` brokers, node ids 0..N-1.

    ``with RealKafkaCluster(3) as c: c.bootstrap, c.address(1), c.kill_node(1), c.start_node(1)``;
    ``settings`` are extra server.properties keys of every node. ``start_s``: from the first JVM launched to
    every broker listing every broker.
    """

    def __init__(self, brokers: int = 3, settings: dict[str, str] | None = None, version: str = KAFKA_VERSION,
                 jvm_opts: list[str] | None = None, workdir: str | Path | None = None):
        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        self.brokers = brokers
        self.settings = dict(settings or {})
        self.version = version
        self.jvm_opts = list(JVM_CLUSTER_NODE if jvm_opts is None else jvm_opts)
        self.workdir = workdir
        self.run_dir: Path | None = None
        self.nodes: dict[int, KafkaNode] = {}  # the brokers by node id
        self.controller: KafkaNode | None = None
        self._java = self._libs = self._log4j = None
        self.format_s = 0.0
        self.start_s = 0.0

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(self.nodes[n].address for n in self.node_ids)

    def address(self, node_id: int) -> str:
        return self.nodes[node_id].address

    def running(self) -> list[int]:
        return [n for n in self.node_ids if self.nodes[n].alive()]

    def start(self, timeout_s: float = 180.0) -> RealKafkaCluster:
        self._java, self._libs = java_binary(), ensure_jars(self.version)
        self.run_dir = Path(tempfile.mkdtemp(prefix="kbroker-realkafka-cluster-", dir=self.workdir))
        try:
            t0 = time.perf_counter()
            self._log4j = self.run_dir / "log4j2.properties"
            self._log4j.write_text(LOG4J2)
            controller_port = free_port()
            self.controller = KafkaNode(CONTROLLER_NODE_ID, self.run_dir, None)
            self.nodes = {n: KafkaNode(n, self.run_dir, free_port()) for n in range(self.brokers)}
            cluster_id = new_cluster_id()
            commands = []
            for node in [self.controller, *self.nodes.values()]:
                node.dir.mkdir(parents=True)
                node.properties.write_text(cluster_node_properties(node.node_id, node.port, controller_port,
                                                                   node.dir / "data", self.settings))
                commands.append(format_command(self._java, self._libs, node.properties, self._log4j, cluster_id))
            format_all(commands)
            t1 = time.perf_counter()
            self.format_s = t1 - t0
            _LIVE.add(self)
            self._launch(self.controller)
            for n in self.node_ids:
                self._launch(self.nodes[n])
            self._wait_listed(self.node_ids, t1 + timeout_s)
            self.start_s = time.perf_counter() - t1
        except BaseException:
            self.stop(grace_s=2.0)
            raise
        return self

    def _launch(self, node: KafkaNode) -> None:
        node.proc = launch(broker_command(self._java, self._libs, node.properties, self._log4j, self.jvm_opts),
                           node.log_path)

    def _wait_listed(self, expected: list[int], deadline: float) -> None:
        """Until every running broker's Metadata lists exactly ``expected`` (the running brokers: a broker
        stopped a moment ago may still be listed until the controller has fenced it)."""
        want = set(expected)
        while True:
            for node in [self.controller, *self.nodes.values()]:
                if node.proc is not None and node.proc.poll() is not None:
                    raise KafkaUnavailable(f"Kafka node {node.node_id} exited with code {node.proc.returncode}: "
                                           f"{node.log_tail()}")
            if all(listed_brokers(self.nodes[n].port) == want for n in expected):
                return
            if time.perf_counter() > deadline:
                tails = " | ".join(f"{n}: {self.nodes[n].log_tail(400)}" for n in expected)
                raise KafkaUnavailable(f"Kafka brokers {expected} did not all list each other in time: {tails}")
            time.sleep(0.1)

    def stop_node(self, node_id: int, grace_s: float = 30.0) -> None:
        """Stop a broker cleanly (SIGTERM: Kafka's controlled shutdown moves its leaderships first)."""
        node = self.nodes[node_id]
        terminate(node.proc, grace_s)
        node.proc = None

    def kill_node(self, node_id: int) -> None:
        """kill -9 a broker: the controller notices when its session times out (``broker.session.timeout.ms``)."""
        node = self.nodes[node_id]
        terminate(node.proc, kill=True)
        node.proc = None

    def start_node(self, node_id: int, timeout_s: float = 120.0) -> None:
        """Start a stopped or killed broker again (same port, config and data); returns once every running
        broker lists it (it is registered and unfenced)."""
        node = self.nodes[node_id]
        if node.alive():
            raise ValueError(f"Kafka broker {node_id} is running")
        self._launch(node)
        self._wait_listed(self.running(), time.perf_counter() + timeout_s)

    def stop(self, grace_s: float = 10.0) -> None:
        _LIVE.discard(self)
        for node in self.nodes.values():  # the brokers first: their controlled shutdown needs the controller
            terminate(node.proc, grace_s)
            node.proc = None
        if self.controller is not None:
            terminate(self.controller.proc, grace_s)
            self.controller.proc = None
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def __enter__(self) -> RealKafkaCluster:
        return self.start() if self.run_dir is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    cached = jars_cached()
    t0 = time.perf_counter()
    try:
        libs = ensure_jars()
    except KafkaUnavailable as e:
        print(f"real Kafka unavailable: {e}")
        return 1
    fetch_s = time.perf_counter() - t0
    print(f"Kafka {KAFKA_VERSION} jars in {libs} ({'cached' if cached else f'downloaded in {fetch_s:.1f} s'})")
    if "--fetch-only" in args:
        return 0
    if "--cluster" in args:  # a cluster of three brokers and a controller, one broker restarted
        with RealKafkaCluster(3) as c:
            print(f"Kafka {KAFKA_VERSION} cluster at {c.bootstrap}: config+format {c.format_s:.2f} s, "
                  f"JVM start to every broker listing every broker {c.start_s:.2f} s")
            t0 = time.perf_counter()
            c.kill_node(1)
            c.start_node(1)
            print(f"broker 1 killed and started again in {time.perf_counter() - t0:.2f} s")
        return 0
    with RealKafka() as k:
        print(f"Kafka {KAFKA_VERSION} at {k.bootstrap}: config+format {k.format_s:.2f} s, "
              f"JVM start to Metadata {k.start_s:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
