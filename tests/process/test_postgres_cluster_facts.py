"""Finalized feature levels (UpdateFeatures, KIP-584) and client metrics subscriptions (CLIENT_METRICS config
resources, KIP-714) in the PostgreSQL controller: kept in ``kbroker_features`` (with the features epoch) and
``kbroker_client_metrics``, a change made through one broker reaches the others (LISTEN/NOTIFY), a controller
started later reads them; over ``kbroker serve`` processes kafka-python's update_features and alter_configs
through broker 1 are what brokers 2 and 3 answer in ApiVersions and DescribeConfigs (asked of each broker on a
connection of its own)."""

from __future__ import annotations

from kbroker.client import BlockingConnection
from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import describe_configs as DC
from support.pgcluster import TIMEOUT_S, running
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

from test_postgres_controller import _controllers, run

pytestmark = needs_postgres

CLIENT_METRICS = 16  # ConfigResource type


def test_feature_levels_and_subscriptions_reach_every_broker_and_outlive_them(pg):
    url = pg.new_database()

    async def main():
        async with _controllers(url, 1, 2) as ((a, _rec_a), (b, rec_b)):
            assert a.feature_levels() == ({}, 0)
            await a.set_feature_levels({"transaction.version": 0})
            await a.set_feature_levels({"group.version": 1})
            assert a.feature_levels() == ({"transaction.version": 0, "group.version": 1}, 2)  # at once
            await rec_b.until(lambda: b.feature_levels() == a.feature_levels())
            await b.set_client_metrics_subscription("s1", {"metrics": "*", "interval.ms": "1000"})
            await b.set_client_metrics_subscription("s2", {"metrics": "org.apache."})
            await b.set_client_metrics_subscription("s2", {})
            assert b.client_metrics_subscriptions() == {"s1": {"metrics": "*", "interval.ms": "1000"}}
            await _rec_a.until(lambda: a.client_metrics_subscriptions() == b.client_metrics_subscriptions())
        async with _controllers(url, 3) as ((c, _rec_c),):
            assert c.feature_levels() == ({"transaction.version": 0, "group.version": 1}, 2)
            assert c.client_metrics_subscriptions() == {"s1": {"metrics": "*", "interval.ms": "1000"}}

    run(main())


def _finalized(port: int) -> tuple[dict[str, int], int]:
    """(finalized feature -> max level, features epoch) in this broker's ApiVersions v3 answer."""
    with BlockingConnection("127.0.0.1", port) as conn:
        r = conn.request(18, 3, AV.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    return {f.name: f.max_version_level for f in r.finalized_features}, r.finalized_features_epoch


def _subscription(port: int, name: str) -> dict[str, str]:
    """The configs this broker's DescribeConfigs answers for a CLIENT_METRICS resource."""
    with BlockingConnection("127.0.0.1", port) as conn:
        r = conn.request(32, 4, DC.DescribeConfigsRequest(resources=[DC.DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=CLIENT_METRICS, resource_name=name, configuration_keys=None)]))
    (res,) = r.results
    assert res.error_code == 0, res.error_message
    return {c.name: c.value for c in res.configs}


def test_kafka_python_changes_through_one_process_are_what_the_others_answer(pg, tmp_path):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    with running(pg.new_database(), tmp_path) as cluster:
        ports = {n: int(p.bootstrap_servers.rsplit(":", 1)[1]) for n, p in cluster.procs.items()}
        levels, epoch = _finalized(ports[2])
        assert levels["transaction.version"] == 2
        admin = KafkaAdminClient(bootstrap_servers=cluster.procs[1].bootstrap_servers, request_timeout_ms=10000)
        try:
            admin.update_features({"transaction.version": ("SAFE_DOWNGRADE", 1)})
            admin.alter_configs([ConfigResource(ConfigResourceType.CLIENT_METRICS, "producers",
                                                {"metrics": "org.apache.kafka.producer.", "interval.ms": "2000"})],
                                raise_on_unknown=False)
        finally:
            admin.close()
        for n in (2, 3):
            wait_until(lambda n=n: _finalized(ports[n]) == ({**levels, "transaction.version": 1}, epoch + 1),
                       TIMEOUT_S, f"broker {n} to see the new feature level")
            wait_until(lambda n=n: _subscription(ports[n], "producers").get("interval.ms") == "2000", TIMEOUT_S,
                       f"broker {n} to see the subscription")
            assert _subscription(ports[n], "producers")["metrics"] == "org.apache.kafka.producer."
