"""The cluster scenarios of the differential conformance suite (kbroker/conformance/cluster_scenarios.py): a
kbroker cluster of three in one process against Kafka 4.4's recorded answers, which a cluster of three Kafka
brokers and a dedicated controller gave (kbroker/conformance/recorded/kafka-4.4.0-cluster.json, recorded by
``python -m kbroker.conformance record --cluster``). A difference known_differences.KNOWN_CLUSTER does not list
fails. The live comparison with a Kafka cluster started from the jars is ``make conformance`` (four JVMs and
broker restarts: over a minute), not part of ``make test``.
"""

from __future__ import annotations

import pytest

from kbroker.conformance.known_differences import KNOWN_CLUSTER
from kbroker.conformance.runner import (KbrokerClusterNodes, compare_runs, kbroker_cluster_for_conformance,
                                        load_recorded, run_cluster, table)


@pytest.fixture(scope="module")
def kbroker_cluster_answers(tmp_path_factory):
    with kbroker_cluster_for_conformance(str(tmp_path_factory.mktemp("kbroker-cluster"))) as b:
        yield run_cluster(KbrokerClusterNodes(b))


def _unknown_report(outcomes) -> str:
    return "\n".join(f"{o.key} {d.step}: {d.path}: kbroker {d.ours!r}, Kafka {d.theirs!r}"
                     for o in outcomes for d in o.unknown)


def test_kbroker_cluster_matches_recorded_kafka_cluster(kbroker_cluster_answers):
    outcomes = compare_runs(kbroker_cluster_answers, load_recorded(cluster=True))
    assert not [o.key for o in outcomes if o.missing], "scenarios missing from the recording: make conformance-record"
    assert not [o for o in outcomes if o.unknown], (
        "differences from Kafka's cluster that known_differences.KNOWN_CLUSTER does not list:\n"
        + _unknown_report(outcomes) + "\n\n" + table(outcomes, "kbroker"))


def test_every_cluster_known_difference_is_still_seen(kbroker_cluster_answers):
    """A known difference that no longer occurs (kbroker was fixed) must leave the list."""
    outcomes = compare_runs(kbroker_cluster_answers, load_recorded(cluster=True))
    seen = {d.known for o in outcomes for d in o.differences}
    stale = [k for k in KNOWN_CLUSTER if k.reason not in seen]
    assert not stale, "known differences no longer seen; remove them: " + "; ".join(
        f"{k.scenario} {k.step} {k.path}" for k in stale)


def test_no_scenario_failed_its_premise(kbroker_cluster_answers):
    """Every step ran on kbroker (a wait that timed out or a set-up that failed records scenario_error)."""
    failed = {k: a["scenario_error"] for k, a in kbroker_cluster_answers.items() if "scenario_error" in a}
    assert not failed, failed
