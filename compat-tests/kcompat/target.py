"""The broker under test: which one, how it is started, and what it advertises.

Three ways to get one, chosen by the environment (or the matching pytest options):

- ``REAL_KAFKA=1``: a real Apache Kafka 4 (kbroker.conformance.realkafka: Maven Central's jars, KRaft, one
  node on free ports, auto.create.topics.enable=false), no Docker. Without Java or the jars every scenario
  is skipped with that reason.
- ``REAL_KAFKA=docker``: a real Kafka in Docker through testcontainers (``REAL_KAFKA_IMAGE``, default
  confluentinc/cp-kafka:7.9.0), for hosts with a Docker engine; without one every scenario is skipped.
- ``KBROKER_BOOTSTRAP=host:port`` (``--bootstrap``): a broker someone else runs. ``KBROKER_TARGET=kbroker``
  (``--target-name``) says it is a kbroker, which lets unserved features skip (see ``require``).
- otherwise: a kbroker started here, in this process (default) or as a ``python -m kbroker serve``
  subprocess (``--kbroker-mode process``), with memory storage unless kbroker's own pytest option
  ``--kbroker-storage segment`` asks for segment files.

Scenarios that need broker *settings* ask for a ``settings broker``: kbroker started here, and real Kafka
from the jars, get a second instance with auto.create.topics.enable=false and a small message.max.bytes;
a Kafka container runs with auto-creation off already; an external broker is probed and used only if it does not auto-create.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field

import pytest

from . import wire

SMALL_MESSAGE_MAX_BYTES = 128 * 1024  # message.max.bytes of the settings broker
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Kafka 3.9; the image testcontainers' KafkaContainer targets

# What a feature needs advertised. A tuple means "any one of these". The issue is named in the skip reason.
FEATURES: dict[str, tuple[list, str | None]] = {
    "consumer groups": ([10, 11, 12, 13, 14, 8, 9], "issue #3"),
    "transactions": ([10, 22, 24, 26], None),
    "idempotent producer": ([22], None),
    "describe configs": ([32], None),
    "alter configs": ([(33, 44)], None),
    "group admin": ([15, 16], "issue #3"),
}


class Unavailable(Exception):
    """The target cannot be had here; every scenario skips with this reason."""


@dataclass
class Target:
    kind: str  # "kbroker", "kafka" or "external"
    label: str
    bootstrap: str
    is_kbroker: bool
    api_versions: dict[int, tuple[int, int]] = field(default_factory=dict)

    def missing_apis(self, feature: str, extra: list | None = None) -> list[str]:
        needs, _ = FEATURES[feature]
        missing = []
        for need in list(needs) + list(extra or []):
            keys = need if isinstance(need, tuple) else (need,)
            if not any(k in self.api_versions for k in keys):
                missing.append(" or ".join(f"{wire.API_NAMES.get(k, k)}({k})" for k in keys))
        return missing

    def require(self, feature: str, why: str = "", extra: list | None = None) -> None:
        """Skip when the target is kbroker and does not advertise what ``feature`` needs.

        Any other broker is expected to serve it: there the scenario runs and fails honestly.
        """
        if not self.is_kbroker:
            return
        missing = self.missing_apis(feature, extra)
        if missing:
            issue = FEATURES[feature][1]
            where = f" ({issue})" if issue else ""
            because = f"; {why}" if why else ""
            pytest.skip(f"{feature}: not yet served by kbroker{where}: ApiVersions lacks {', '.join(missing)}{because}")

    def advertised(self) -> str:
        return ", ".join(f"{wire.API_NAMES.get(k, k)} {lo}-{hi}" for k, (lo, hi) in sorted(self.api_versions.items()))


def describe(config, revision: bool = True) -> str:
    """The target's label from the options alone (the report's controller process starts no broker);
    ``revision``: with kbroker's git commit when the suite starts kbroker."""
    if os.environ.get("REAL_KAFKA") == "docker":
        return f"Apache Kafka ({os.environ.get('REAL_KAFKA_IMAGE', DEFAULT_KAFKA_IMAGE)}, testcontainers)"
    if os.environ.get("REAL_KAFKA"):
        from kbroker.conformance.realkafka import KAFKA_VERSION

        return f"Apache Kafka {KAFKA_VERSION} (Maven Central jars, KRaft, started by the suite)"
    bootstrap = config.getoption("--bootstrap") or os.environ.get("KBROKER_BOOTSTRAP")
    if bootstrap:
        name = config.getoption("--target-name") or os.environ.get("KBROKER_TARGET") or "external broker"
        return f"{name} at {bootstrap}"
    mode = config.getoption("--kbroker-mode")
    version = _kbroker_revision() if revision else _kbroker_revision().split(" at ")[0]
    return (f"kbroker {version} (started by the suite, "
            f"{'in-process' if mode == 'inprocess' else 'subprocess'}, {storage_of(config)} storage)")


def storage_of(config) -> str:
    """kbroker's own pytest plugin has --kbroker-storage (memory or segment); memory without it."""
    try:
        return config.getoption("--kbroker-storage") or "memory"
    except ValueError:
        return "memory"


def _kbroker_revision() -> str:
    """kbroker's version, and the git commit of its source tree when it has one (+ if modified)."""
    try:
        import kbroker
    except ImportError:
        return "(not importable)"
    version = getattr(kbroker, "__version__", "?")
    root = os.path.dirname(os.path.dirname(os.path.abspath(kbroker.__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "kbroker"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} at {head}{'+' if dirty else ''}" if head else version


def kind_of(config) -> str:
    if os.environ.get("REAL_KAFKA"):
        return "kafka"
    if config.getoption("--bootstrap") or os.environ.get("KBROKER_BOOTSTRAP"):
        return "external"
    return "kbroker"


# -- starting brokers ------------------------------------------------------------


class KbrokerSubprocess:
    """``python -m kbroker serve --port 0``, waiting for its "kbroker listening on" line."""

    def __init__(self, storage: str, *args: str):
        self.tmp = tempfile.mkdtemp(prefix="kbroker-compat-")
        self.proc = subprocess.Popen([sys.executable, "-m", "kbroker", "serve", "--port", "0", "--data-dir", self.tmp,
                                      "--storage", storage, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line: list[str] = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(30)
        if not line or not line[0].startswith("kbroker listening on "):
            self.stop()
            raise RuntimeError(f"kbroker did not start: {line!r}")
        self.bootstrap_servers = line[0].split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Kafka's names for the settings the settings broker is started with, and BrokerConfig's.
SETTINGS_BROKER = {"auto.create.topics.enable": "false", "message.max.bytes": str(SMALL_MESSAGE_MAX_BYTES)}


def start_kbroker(mode: str, storage: str = "memory", settings: dict[str, str] | None = None):
    """A running kbroker and a function that stops it."""
    settings = settings or {}
    if mode == "process":
        b = KbrokerSubprocess(storage, *[arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")])
        return b.bootstrap_servers, b.stop
    from kbroker import Broker

    fields = {k.replace(".", "_"): (v == "true" if v in ("true", "false") else int(v)) for k, v in settings.items()}
    b = Broker(port=0, storage=storage, **fields).start()  # segment: a temporary data dir, removed on stop
    return b.bootstrap_servers, b.stop


def starts_settings_broker(kind: str) -> bool:
    """Whether the suite can start a broker with SETTINGS_BROKER: a kbroker, or a Kafka from the jars."""
    return kind == "kbroker" or (kind == "kafka" and os.environ.get("REAL_KAFKA") != "docker")


def start_real_kafka(settings: dict[str, str] | None = None):
    """A real Kafka: from Maven Central's jars (REAL_KAFKA=1) or a container (REAL_KAFKA=docker); raises
    Unavailable with the reason when it cannot be had. ``settings``: more server.properties (jars only)."""
    if os.environ.get("REAL_KAFKA") != "docker":
        from kbroker.conformance.realkafka import KafkaUnavailable, RealKafka

        kafka = RealKafka(settings={"auto.create.topics.enable": "false", **(settings or {})})
        try:
            kafka.start()
        except KafkaUnavailable as e:
            raise Unavailable(f"REAL_KAFKA=1: {e}") from None
        return kafka.bootstrap, kafka.stop
    return _start_kafka_container()


def _start_kafka_container():
    """A Kafka container; raises Unavailable with the reason when Docker or testcontainers is missing."""
    try:
        import docker
    except ImportError:
        raise Unavailable("REAL_KAFKA=docker needs testcontainers (pip install 'testcontainers[kafka]')") from None
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError:
            raise Unavailable("REAL_KAFKA=docker needs testcontainers (pip install 'testcontainers[kafka]')") from None
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise Unavailable(f"REAL_KAFKA=docker: no Docker engine reachable ({first}); "
                          "the real-Kafka run is skipped") from None
    image = os.environ.get("REAL_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    container = (KafkaContainer(image).with_kraft()
                 .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
                 .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                 .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                 .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"))
    try:
        container.start(timeout=180)
    except Exception as e:
        raise Unavailable(f"REAL_KAFKA=docker: the Kafka container did not start: {e}") from None
    return container.get_bootstrap_server(), container.stop


def probe_auto_create(bootstrap: str) -> bool:
    """Whether the broker creates a topic that Metadata asks for (it is deleted again if it does)."""
    name = f"kbroker-compat-autocreate-probe-{uuid.uuid4().hex[:8]}"
    with wire.Connection.to(bootstrap.split(",")[0]) as c:
        info = c.metadata([name], allow_auto_create=True).topics.get(name)
    created = info is not None and info.error_code != 3  # 3: UNKNOWN_TOPIC_OR_PARTITION
    if created:
        from .reference import Reference

        try:
            Reference(bootstrap).delete_topic(name)
        except Exception:
            pass
    return created
