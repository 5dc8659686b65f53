"""Group configs (GROUP config resources) in the PostgreSQL controller: kept in ``kbroker_group_configs``, a change
made through one broker's controller reaches the others' images (LISTEN/NOTIFY), a controller started later reads
them, and over ``kbroker serve`` processes a stock admin client's change outlives the cluster's restart."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from support.pgcluster import TIMEOUT_S, new_topic_name, running
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

from test_postgres_controller import _controllers, run

pytestmark = needs_postgres


@pytest.fixture()
def cluster(pg, tmp_path):
    with running(pg.new_database(), tmp_path) as c:
        yield c


def test_group_configs_reach_every_broker_and_outlive_them(pg):
    url = pg.new_database()

    async def main():
        async with _controllers(url, 1, 2) as ((a, _rec_a), (b, rec_b)):
            await a.set_group_configs("g1", {"consumer.session.timeout.ms": "50000"})
            await a.set_group_configs("g2", {"share.delivery.count.limit": "3"})
            assert a.group_configs()["g1"] == {"consumer.session.timeout.ms": "50000"}  # at once for the asker
            await rec_b.until(lambda: b.group_configs() == a.group_configs())
            await b.set_group_configs("g2", {})
            assert "g2" not in b.group_configs()
            await _rec_a.until(lambda: "g2" not in a.group_configs())
        async with _controllers(url, 3) as ((c, _rec_c),):
            assert c.group_configs() == {"g1": {"consumer.session.timeout.ms": "50000"}}

    run(main())


def _described(bootstrap: str, group: str) -> dict[str, tuple[str, int]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.GROUP, group)
    return {n: (e.value, e.source) for n, e in admin.describe_configs([resource])[resource].result(10).items()
            if n.startswith("consumer.")}


def test_an_admin_clients_group_config_is_seen_by_every_process_and_survives_a_restart(cluster):
    group = new_topic_name("g")
    admin = AdminClient({"bootstrap.servers": cluster.procs[1].bootstrap_servers})
    r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("consumer.heartbeat.interval.ms", "7000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(10)
    want = {"consumer.heartbeat.interval.ms": ("7000", 8), "consumer.session.timeout.ms": ("45000", 5)}
    for n in (1, 2, 3):
        bootstrap = cluster.procs[n].bootstrap_servers
        wait_until(lambda b=bootstrap: _described(b, group) == want, TIMEOUT_S, f"broker {n} to see the config")
    cluster.stop()
    cluster.start()
    assert _described(cluster.bootstrap(), group) == want
