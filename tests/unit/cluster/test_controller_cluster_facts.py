"""The cluster-wide facts issue 19 added to the controller: finalized feature levels with their epoch and
client metrics subscriptions, kept durably by InProcessController's topic store and in memory by a controller
that has no store for them."""

from __future__ import annotations

from kbroker.controller import Controller, InProcessController, run_now
from kbroker.topic_store import FileTopicStore


def exercise(c: Controller) -> None:
    assert c.feature_levels() == ({}, 0)
    run_now(c.set_feature_levels({"transaction.version": 0}))
    run_now(c.set_feature_levels({"group.version": 1}))
    assert c.feature_levels() == ({"transaction.version": 0, "group.version": 1}, 2)
    run_now(c.set_client_metrics_subscription("a", {"metrics": "*"}))
    run_now(c.set_client_metrics_subscription("b", {"metrics": "x", "interval.ms": "100"}))
    run_now(c.set_client_metrics_subscription("a", {}))
    assert c.client_metrics_subscriptions() == {"b": {"metrics": "x", "interval.ms": "100"}}


def test_a_controller_without_a_store_keeps_them_in_memory():
    exercise(Controller())


def test_the_in_process_controller_keeps_them_across_restarts(tmp_path):
    path = tmp_path / "metadata.json"  # the journal goes beside it
    c = InProcessController(FileTopicStore(path))
    exercise(c)
    c.close()
    again = InProcessController(FileTopicStore(path))
    assert again.feature_levels() == ({"transaction.version": 0, "group.version": 1}, 2)
    assert again.client_metrics_subscriptions() == {"b": {"metrics": "x", "interval.ms": "100"}}
    again.close()
