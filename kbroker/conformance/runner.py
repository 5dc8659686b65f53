"""Running scenarios against a broker, recording Kafka's answers, comparing and printing the table.

A scenario (scenarios.py) is a function of a ``Session`` (session.py) and a request version. It sends
requests built with kbroker's own codec over plain sockets, and ``Session.call`` records each decoded
answer, normalised (normalize.py), under the step's label. A run of every scenario gives ``{"<scenario>@v<N>": {label:
answer}}``; two runs are compared step by step, field by field.

Recorded answers: ``recorded/kafka-<version>.json`` holds a run against real Kafka (``make
conformance-record`` refreshes it), so ``kbroker conformance HOST:PORT`` scores any broker without Java.

Cluster scenarios (cluster_scenarios.py) run with ``run_cluster`` against three brokers whose stops, kills
and starts the scenario drives (a RealKafkaCluster, or ``KbrokerClusterNodes`` over ``Broker(brokers=3)``);
Kafka's answers are in ``recorded/kafka-<version>-cluster.json``.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..wire.messages import BY_KEY
from .normalize import compare
from .session import SCENARIOS, ClusterNodes, ClusterSession, ScenarioError, Session, api_versions, self_node_id

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"


def run_all(bootstrap: str, only: str | None = None, progress: Callable[[str], None] | None = None,
            sasl_bootstrap: str | None = None) -> dict[str, Any]:
    """Every scenario at every version: {"<scenario>@v<N>": {label: answer}}. ``sasl_bootstrap``: the broker's
    SASL_PLAINTEXT listener, configured as realkafka.security_settings says (the SASL and ACL scenarios
    record a ScenarioError without it)."""
    from . import scenarios  # noqa: F401  registers them

    served = api_versions(bootstrap)
    node = self_node_id(bootstrap)
    token = f"kc{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}
    for sc, v, key in _selected(False, only):
        s = Session(bootstrap, f"{token}-{len(results)}", served, node, sasl_bootstrap)
        results[key] = _run_one(sc, s, v)
        if progress:
            progress(key)
    return results


def _selected(cluster: bool, only: str | None):
    for sc in SCENARIOS:
        if sc.cluster != cluster:
            continue
        for v in sc.versions:
            key = f"{sc.name}@v{v}"
            if not only or fnmatch.fnmatch(key, only) or fnmatch.fnmatch(sc.name, only):
                yield sc, v, key


def _run_one(sc, s: Session, v: int) -> dict[str, Any]:
    try:
        sc.func(s, v)
    except ScenarioError as e:
        s.answers["scenario_error"] = s.norm._text(str(e))
    except (OSError, ConnectionError) as e:
        s.answers["scenario_error"] = f"{type(e).__name__}: {s.norm._text(str(e))}"
    finally:
        s.close()
    return s.answers


def run_cluster(nodes: ClusterNodes, only: str | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every cluster scenario at every version against three brokers: {"<scenario>@v<N>": {label: answer}}.
    After each, the brokers it left down are started again (not recorded)."""
    from . import cluster_scenarios  # noqa: F401  registers them

    served = api_versions(nodes.address(nodes.node_ids[0]))
    token = f"kc{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}
    for sc, v, key in _selected(True, only):
        s = ClusterSession(nodes, f"{token}-{len(results)}", served)
        try:
            results[key] = _run_one(sc, s, v)
        finally:
            s.heal()
        if progress:
            progress(key)
    return results


class KbrokerClusterNodes:
    """ClusterNodes over a started ``Broker(brokers=3)``: the cluster control plane's stop, kill and start."""

    def __init__(self, broker):
        self.broker = broker
        self.node_ids = broker.node_ids

    def address(self, node_id: int) -> str:
        config = self.broker.cluster.configs[node_id]
        return f"{config.host}:{config.port}"

    def stop_node(self, node_id: int) -> None:
        self.broker.stop_broker(node_id)

    def kill_node(self, node_id: int) -> None:
        self.broker.kill_broker(node_id)

    def start_node(self, node_id: int) -> None:
        self.broker.start_broker(node_id)


def kbroker_cluster_for_conformance(data_dir: str, brokers: int = 3):
    """A kbroker cluster in one process set up as the suite's Kafka cluster is (realkafka.CLUSTER_SETTINGS:
    leaders stay where the scenarios put them); segment storage in ``data_dir``. Not started."""
    from ..embedded import Broker

    return Broker(port=0, storage="segment", data_dir=data_dir, brokers=brokers,
                  settings={"auto.leader.rebalance.enable": "false"})


# -- comparing ---------------------------------------------------------------------------------------------------


@dataclass
class Difference:
    scenario: str  # "<scenario>@v<N>"
    step: str
    path: str
    ours: Any
    theirs: Any
    known: str | None = None  # the reason, when known_differences lists it


@dataclass
class Outcome:
    key: str
    api: str
    version: int
    differences: list[Difference] = field(default_factory=list)
    missing: bool = False  # the recording has no such scenario (it is newer than the recording)

    @property
    def unknown(self) -> list[Difference]:
        return [d for d in self.differences if d.known is None]


def compare_runs(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Outcome]:
    from . import cluster_scenarios, scenarios  # noqa: F401
    from .known_differences import reason_for

    by_name = {sc.name: sc for sc in SCENARIOS}
    outcomes = []
    for key, answers in ours.items():
        name, _, v = key.rpartition("@v")
        sc = by_name.get(name)
        api = BY_KEY[sc.api_key].NAME if sc else "?"
        o = Outcome(key, api, int(v))
        if key not in theirs:
            o.missing = True
            outcomes.append(o)
            continue
        for step in list(answers) + [s for s in theirs[key] if s not in answers]:
            for path, a, b in compare(answers.get(step, "<no answer>"), theirs[key].get(step, "<no answer>")):
                o.differences.append(Difference(key, step, path, a, b, reason_for(key, step, path, a, b)))
        outcomes.append(o)
    return outcomes


def _short(v: Any, n: int = 60) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= n else s[: n - 3] + "..."


def table(outcomes: list[Outcome], ours_name: str = "broker", theirs_name: str = "Kafka",
          max_fields: int = 4) -> str:
    """The per-API, per-version table, as Markdown."""
    lines = [f"| API | version | scenario | result ({ours_name} vs {theirs_name}) |", "|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: (o.api, o.version, o.key)):
        name = o.key.rpartition("@v")[0]
        if o.missing:
            result = "not in the recording"
        elif not o.differences:
            result = "same"
        else:
            parts = []
            unknown = o.unknown
            for d in (unknown or o.differences)[:max_fields]:
                parts.append(f"`{d.step}: {d.path}` {ours_name} {_short(d.ours)}, {theirs_name} {_short(d.theirs)}")
            more = len(unknown or o.differences) - max_fields
            head = "differs" if unknown else "known difference"
            result = f"{head}: " + "; ".join(parts) + (f"; +{more} more" if more > 0 else "")
            if not unknown:
                reasons = sorted({d.known for d in o.differences})
                result += " (" + " / ".join(reasons) + ")"
        lines.append(f"| {o.api} | {o.version} | {name} | {result.replace('|', '/')} |")
    same = sum(1 for o in outcomes if not o.differences and not o.missing)
    known = sum(1 for o in outcomes if o.differences and not o.unknown)
    differs = sum(1 for o in outcomes if o.unknown)
    lines.append("")
    lines.append(f"{same} same, {known} known differences, {differs} differ, of {len(outcomes)} scenario runs")
    return "\n".join(lines)


def recorded_path(version: str | None = None, cluster: bool = False) -> Path:
    from .realkafka import KAFKA_VERSION

    return RECORDED_DIR / f"kafka-{version or KAFKA_VERSION}{'-cluster' if cluster else ''}.json"


def load_recorded(version: str | None = None, cluster: bool = False) -> dict[str, Any]:
    return json.loads(recorded_path(version, cluster).read_text())["answers"]


def save_recorded(answers: dict[str, Any], version: str | None = None, cluster: bool = False) -> Path:
    from .realkafka import KAFKA_VERSION

    path = recorded_path(version, cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    how = ("python -m kbroker.conformance record --cluster (make conformance-record): a RealKafkaCluster of "
           "three brokers and a controller" if cluster else "python -m kbroker.conformance record (make "
           "conformance-record)")
    doc = {"kafka_version": version or KAFKA_VERSION, "how": how + "; normalised by normalize.py",
           "answers": answers}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def kbroker_for_conformance(data_dir: str):
    """A kbroker set up as the suite's Kafka is (realkafka.security_settings): PLAINTEXT and SASL_PLAINTEXT
    listeners on free ports, the suite's users, ACLs on with the suite's admin as a super user; segment
    storage in ``data_dir`` (a directory on a disk, as Kafka's: DescribeLogDirs names it). Not started."""
    from ..embedded import Broker
    from .realkafka import HOST, SUITE_USERS, security_settings

    settings = {"listeners": f"PLAINTEXT://{HOST}:0,SASL_PLAINTEXT://{HOST}:0", **security_settings()}
    return Broker(port=0, storage="segment", data_dir=data_dir, settings=settings,
                  sasl_users=list(SUITE_USERS.items()))
