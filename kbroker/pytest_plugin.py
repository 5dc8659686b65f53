"""The pytest plugin (registered through the ``pytest11`` entry point when kbroker is installed).

Fixtures:

- ``kafka_broker`` (session): a kbroker on a free port for the whole test session, one per pytest-xdist
  worker; it has ``.bootstrap_servers``. With ``--kbroker-external HOST:PORT`` it is that broker instead,
  so the same tests run against real Kafka or any other broker.
- ``schema_registry_url`` (session): the URL of the Schema Registry the ``kafka_broker`` fixture serves
  beside the broker (loopback, on a free port), for confluent-kafka's ``SchemaRegistryClient`` and the like.
- ``kafka_topic`` (function): a factory for fresh, uniquely named topics on that broker:
  ``name = kafka_topic(partitions=3, config={"cleanup.policy": "compact"})``; called without arguments it
  returns a one-partition topic's name.

Options: ``--kbroker-storage memory|segment`` (default memory: fastest, nothing on disk),
``--kbroker-external HOST:PORT``.
"""

from __future__ import annotations

import uuid

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("kbroker", "Kafka broker for tests")
    group.addoption("--kbroker-storage", default="memory", choices=["memory", "segment"],
                    help="storage of the broker the kafka_broker fixture starts (default: memory)")
    group.addoption("--kbroker-external", default=None, metavar="HOST:PORT",
                    help="use this running broker instead of starting one")
    group.addoption("--kbroker-schema-registry-url", default=None, metavar="URL",
                    help="with --kbroker-external: the schema registry the schema_registry_url fixture names")


class ExternalBroker:
    def __init__(self, bootstrap_servers: str):
        self.bootstrap_servers = bootstrap_servers


@pytest.fixture(scope="session")
def kafka_broker(request):
    external = request.config.getoption("--kbroker-external")
    if external:
        yield ExternalBroker(external)
        return
    from kbroker import Broker

    storage = request.config.getoption("--kbroker-storage")
    with Broker(port=0, storage=storage, schema_registry_port=0) as broker:
        yield broker


@pytest.fixture(scope="session")
def schema_registry_url(kafka_broker, request):
    """The URL of the Schema Registry beside ``kafka_broker`` (Confluent's REST API, kbroker/schema_registry/);
    with ``--kbroker-external`` it is ``--kbroker-schema-registry-url``, and tests that need it skip without."""
    url = (getattr(kafka_broker, "schema_registry_url", None)
           or request.config.getoption("--kbroker-schema-registry-url"))
    if not url:
        pytest.skip("no schema registry (--kbroker-schema-registry-url)")
    return url


@pytest.fixture
def kafka_topic(kafka_broker, request):
    """Create fresh topics with unique names; they are deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 1, config: dict[str, str] | None = None, prefix: str | None = None) -> str:
        base = prefix or request.node.name
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in base)[:180]
        name = f"{safe}-{uuid.uuid4().hex[:8]}"
        _admin_create(kafka_broker.bootstrap_servers, name, partitions, config or {})
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            _admin_delete(kafka_broker.bootstrap_servers, name)
        except Exception:  # a test may have deleted it already
            pass


def _admin_create(bootstrap: str, name: str, partitions: int, config: dict[str, str]) -> None:
    from kbroker.client import BlockingClient

    with BlockingClient(bootstrap) as admin:
        admin.create_topic(name, partitions, config)


def _admin_delete(bootstrap: str, name: str) -> None:
    from kbroker.client import BlockingClient

    with BlockingClient(bootstrap) as admin:
        admin.delete_topic(name)
