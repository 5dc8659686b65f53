"""The control plane's topic changes and the Schema Registry over brokers that are processes coordinated by
PostgreSQL: they await the controller's changes (a database's), so creating, configuring and deleting a topic
over one broker's HTTP control plane is seen by the other brokers, and confluent-kafka's Schema Registry client
registers a schema (the ``_schemas`` topic made through the controller on the first write)."""

from __future__ import annotations

from support.control_http import control_call
from support.pgcluster import TIMEOUT_S, ProcessCluster, logs_on_failure, new_topic_name
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

pytestmark = needs_postgres

SCHEMA = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}'


def _topics(bootstrap: str) -> dict[str, int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in md.topics.items()}


def _printed(proc, prefix: str) -> str:
    """The next line the broker printed that starts with ``prefix`` (its listeners' lines come first)."""
    while not (line := proc.next_stdout_line()).startswith(prefix):
        pass
    return line


def test_control_plane_topics_and_schema_registry_over_the_processes(pg, tmp_path):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    cluster = ProcessCluster(pg.new_database(), tmp_path, "--control-port", "0", "--schema-registry-port", "0")
    cluster.start()
    with logs_on_failure(cluster):
        procs = cluster.procs
        urls = {}
        for n, proc in procs.items():
            urls[n] = _printed(proc, "kbroker console on ").split()[3].rstrip("/")
            urls[f"sr{n}"] = _printed(proc, "kbroker schema registry on ").split()[-1]
        topic = new_topic_name("pg-control")

        status, body = control_call(urls[1], "POST", "/topics", {"name": topic, "partitions": 2}, TIMEOUT_S)
        assert status == 200 and body["name"] == topic, body
        wait_until(lambda: _topics(procs[2].bootstrap_servers).get(topic) == 2, TIMEOUT_S,
                   "broker 2 to see the topic made over broker 1's control plane")

        status, body = control_call(urls[1], "POST", f"/topics/{topic}/configs", {"retention.ms": "123456"},
                                    TIMEOUT_S)
        assert status == 200, body

        def retention_on_3():
            _, t = control_call(urls[3], "GET", f"/topics/{topic}", None, TIMEOUT_S)
            return next(c["value"] for c in t["configs"] if c["name"] == "retention.ms") == "123456"
        wait_until(retention_on_3, TIMEOUT_S, "broker 3 to see the config")

        status, body = control_call(urls[2], "POST", f"/topics/{topic}/delete", None, TIMEOUT_S)
        assert status == 200, body
        wait_until(lambda: topic not in _topics(procs[1].bootstrap_servers), TIMEOUT_S,
                   "broker 1 to see the deletion")

        client = SchemaRegistryClient({"url": urls["sr1"]})
        schema_id = client.register_schema("orders-value", Schema(SCHEMA, "AVRO"))
        assert client.get_latest_version("orders-value").schema_id == schema_id
        wait_until(lambda: "_schemas" in _topics(procs[3].bootstrap_servers), TIMEOUT_S,
                   "the _schemas topic to be known to every broker")
