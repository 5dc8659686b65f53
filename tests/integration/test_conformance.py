"""The differential conformance suite (kbroker.conformance): kbroker's answers against Apache Kafka's.

- Against the recorded answers (kbroker/conformance/recorded/kafka-<version>.json): always runs, no Java.
  A difference known_differences.py lists passes; any other fails, with the table.
- Live against a real Kafka started from Maven Central's jars (kbroker.conformance.realkafka): runs where
  Java and the jars (or Maven to fetch them) are available, else skips with the reason. It also checks the
  recording is current: Kafka's answers today must equal the recorded ones.
"""

from __future__ import annotations

import pytest

from kbroker.conformance import realkafka
from kbroker.conformance.known_differences import KNOWN
from kbroker.conformance.normalize import compare
from kbroker.conformance.runner import compare_runs, kbroker_for_conformance, load_recorded, run_all, table


def _unknown_report(outcomes) -> str:
    lines = []
    for o in outcomes:
        for d in o.unknown:
            lines.append(f"{o.key} {d.step}: {d.path}: kbroker {d.ours!r}, Kafka {d.theirs!r}")
    return "\n".join(lines[:60])


@pytest.fixture(scope="module")
def kbroker_answers(tmp_path_factory):
    # Segment storage in a directory, as Kafka's (DescribeLogDirs then names a directory on a disk), and the
    # suite's SASL_PLAINTEXT listener, users and ACLs, as realkafka gives Kafka.
    with kbroker_for_conformance(str(tmp_path_factory.mktemp("kbroker"))) as b:
        yield run_all(b.bootstrap_servers, sasl_bootstrap=b.listeners["SASL_PLAINTEXT"])


def test_kbroker_matches_recorded_kafka_answers(kbroker_answers):
    outcomes = compare_runs(kbroker_answers, load_recorded())
    assert not [o for o in outcomes if o.missing], "scenarios missing from the recording: make conformance-record"
    unknown = [o for o in outcomes if o.unknown]
    assert not unknown, "differences from Kafka that known_differences.py does not list:\n" + _unknown_report(
        outcomes) + "\n\n" + table(outcomes, "kbroker")


def test_every_known_difference_is_still_seen(kbroker_answers):
    """A known difference that no longer occurs (kbroker was fixed) must leave the list."""
    outcomes = compare_runs(kbroker_answers, load_recorded())
    seen = {d.known for o in outcomes for d in o.differences}
    stale = [k for k in KNOWN if k.reason not in seen]
    assert not stale, "known differences no longer seen; remove them: " + "; ".join(
        f"{k.scenario} {k.step} {k.path}" for k in stale)


def test_a_difference_is_reported_field_by_field():
    """The comparison names the field and both values, and keyed lists do not shift."""
    ours = {"topics": [{"name": "a", "error_code": 0}, {"name": "b", "error_code": 3}]}
    theirs = {"topics": [{"name": "b", "error_code": 17}, {"name": "a", "error_code": 0}]}
    assert compare(ours, theirs) == [("topics[name=b].error_code", 3, 17)]


def test_live_kafka(kbroker_answers):
    """One real Kafka (one test, so that xdist starts one JVM): its answers now equal the recording (else
    refresh it: make conformance-record), and kbroker differs from it only as known_differences.py says."""
    reason = realkafka.unavailable_reason()
    if reason:
        pytest.skip(f"real Kafka {realkafka.KAFKA_VERSION} unavailable: {reason}")
    recorded = load_recorded()

    def drift_of(live):
        return [(key, step, path, a, b) for key in live for step in live[key]
                for path, a, b in compare(live[key][step], recorded.get(key, {}).get(step))]

    with realkafka.RealKafka(secure=True) as k:
        live = run_all(k.bootstrap, sasl_bootstrap=k.sasl_bootstrap)
        # Kafka's own timing can change one run's answer (a share-partition still being set up answered a
        # first ShareFetch empty, a start offset not yet written read -1: each seen once on a busy machine).
        # A scenario that differs is run once more, and only a difference seen in both runs fails.
        for key in sorted({d[0] for d in drift_of(live)}):
            live.update(run_all(k.bootstrap, only=key, sasl_bootstrap=k.sasl_bootstrap))
    drift = drift_of(live)
    assert not drift, f"Kafka's answers differ from the recording (make conformance-record): {drift[:10]}"
    outcomes = compare_runs(kbroker_answers, live)
    assert not [o for o in outcomes if o.unknown], _unknown_report(outcomes)
