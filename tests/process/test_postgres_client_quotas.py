"""Client quotas in the PostgreSQL controller: a change made through one broker's controller reaches the others'
images (LISTEN/NOTIFY) and a controller started later reads them from the table."""

from __future__ import annotations

from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture

from test_postgres_controller import _controllers, run

pytestmark = needs_postgres


def test_quotas_reach_every_broker_and_outlive_them(pg):
    url = pg.new_database()
    alice = (("user", "alice"),)
    ip_default = (("ip", None),)

    async def main():
        async with _controllers(url, 1, 2) as ((a, rec_a), (b, rec_b)):
            await a.alter_client_quotas({alice: {"producer_byte_rate": 1024.0}, ip_default: {"connection_creation_rate": 5.0}})
            assert a.client_quotas()[alice] == {"producer_byte_rate": 1024.0}  # at once for the asking broker
            await rec_b.until(lambda: b.client_quotas() == a.client_quotas())
            await b.alter_client_quotas({ip_default: {}})
            assert ip_default not in b.client_quotas()
            await rec_a.until(lambda: ip_default not in a.client_quotas())
        async with _controllers(url, 3) as ((c, _rec_c),):
            assert c.client_quotas() == {alice: {"producer_byte_rate": 1024.0}}

    run(main())
