"""pytest glue for the compatibility suite: options, the broker under test, clients, and the report.

Every scenario in test_compat.py takes a ``client`` fixture and so runs once per client; the adapter
is wrapped so that an operation the client cannot do turns into a skip carrying the client's reason.
See README.md for how to point the suite at kbroker, another broker or a real Kafka.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from kcompat import wire
from kcompat.clients import CLIENTS, Unsupported
from kcompat.reference import Reference
from kcompat.report import ReportPlugin
from kcompat.target import (SETTINGS_BROKER, Target, Unavailable, describe, kind_of, probe_auto_create,
                            start_kbroker, start_real_kafka, starts_settings_broker, storage_of)

HERE = Path(__file__).resolve().parent
TEST_TIMEOUT_S = 120


def pytest_addoption(parser):
    g = parser.getgroup("compat", "kbroker compatibility suite")
    g.addoption("--bootstrap", default=None, metavar="HOST:PORT",
                help="run against this broker instead of starting kbroker (or KBROKER_BOOTSTRAP)")
    g.addoption("--target-name", default=None,
                help="what the --bootstrap broker is, for the report; 'kbroker' lets unserved features skip "
                     "(or KBROKER_TARGET)")
    g.addoption("--kbroker-mode", default="inprocess", choices=["inprocess", "process"],
                help="start kbroker on a thread of this process (default) or as a subprocess")
    g.addoption("--clients", default=None,
                help="comma-separated subset of clients (or COMPAT_CLIENTS); default: all " + ",".join(CLIENTS))
    g.addoption("--compat-report", default=None, metavar="DIR",
                help="where the matrix is written (default compat-tests/report; 'none' writes nothing)")


def _selected_clients(config) -> list[str]:
    chosen = config.getoption("--clients") or os.environ.get("COMPAT_CLIENTS")
    if not chosen:
        return list(CLIENTS)
    names = [c.strip() for c in chosen.split(",") if c.strip()]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise pytest.UsageError(f"unknown clients {unknown}; known: {list(CLIENTS)}")
    return names


def pytest_configure(config):
    config.addinivalue_line("markers", "scenario(title): the scenario's row in the compatibility matrix")
    # The clients' own deprecation noise (kafka-python's importlib.resources use, testcontainers).
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
    if hasattr(config, "workerinput"):  # pytest-xdist worker: the controller collects the reports
        return
    where = config.getoption("--compat-report")
    out_dir = None if where == "none" else Path(where) if where else HERE / "report"
    basename = {"kbroker": "compat", "kafka": "compat-kafka", "external": "compat-external"}[kind_of(config)]
    plugin = ReportPlugin(config, _selected_clients(config), out_dir, describe(config), basename,
                          stable_target_label=describe(config, revision=False))
    config.pluginmanager.register(plugin, "kbroker-compat-report")


def pytest_sessionstart(session):
    config = session.config
    if hasattr(config, "workerinput") or kind_of(config) != "external":
        return
    bootstrap = config.getoption("--bootstrap") or os.environ.get("KBROKER_BOOTSTRAP")
    try:  # a broker named explicitly must be there: stop at once rather than skip everything
        wire.api_versions(bootstrap)
    except (OSError, wire.ProtocolError) as e:
        pytest.exit(f"compat-tests: the broker at {bootstrap} does not answer ApiVersions: {e}", returncode=3)


def pytest_generate_tests(metafunc):
    if "client" in metafunc.fixturenames:
        names = _selected_clients(metafunc.config)
        metafunc.parametrize("client", names, indirect=True, ids=names)


def pytest_collection_modifyitems(config, items):
    order: dict[str, int] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        marker = item.get_closest_marker("scenario")
        if callspec is None or "client" not in callspec.params or marker is None:
            continue
        params = {k: v for k, v in callspec.params.items() if k != "client"}
        label = marker.args[0].format(**params)
        order.setdefault(label, len(order))
        item.user_properties += [("compat_client", callspec.params["client"]), ("compat_scenario", label),
                                 ("compat_order", order[label])]
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


# -- the broker under test -----------------------------------------------------------


@pytest.fixture(scope="session")
def target(request) -> Target:
    config = request.config
    kind = kind_of(config)
    stop = None
    try:
        if kind == "kafka":
            bootstrap, stop = start_real_kafka()
        elif kind == "external":
            bootstrap = config.getoption("--bootstrap") or os.environ["KBROKER_BOOTSTRAP"]
        else:
            bootstrap, stop = start_kbroker(config.getoption("--kbroker-mode"), storage_of(config))
    except Unavailable as e:
        pytest.skip(str(e))
    name = (config.getoption("--target-name") or os.environ.get("KBROKER_TARGET") or "").lower()
    t = Target(kind, describe(config), bootstrap, is_kbroker=kind == "kbroker" or name == "kbroker")
    try:
        t.api_versions = wire.api_versions(bootstrap)
    except (OSError, wire.ProtocolError) as e:
        if stop:
            stop()
        pytest.fail(f"the broker at {bootstrap} does not answer ApiVersions: {e}")
    yield t
    if stop:
        stop()


@pytest.fixture(scope="session")
def settings_broker(request, target) -> str:
    """A broker with auto.create.topics.enable=false (and, for kbroker and Kafka from the jars,
    message.max.bytes=128 KiB)."""
    if target.kind == "kbroker":
        bootstrap, stop = start_kbroker(request.config.getoption("--kbroker-mode"), storage_of(request.config),
                                        SETTINGS_BROKER)
        yield bootstrap
        stop()
    elif starts_settings_broker(target.kind):  # real Kafka from the jars: a second one, with the settings
        try:
            bootstrap, stop = start_real_kafka(SETTINGS_BROKER)
        except Unavailable as e:
            pytest.skip(str(e))
        yield bootstrap
        stop()
    elif target.kind == "kafka":  # a container, started with auto-creation off
        yield target.bootstrap
    else:
        if probe_auto_create(target.bootstrap):
            pytest.skip("the external broker auto-creates topics; this scenario needs auto.create.topics.enable=false")
        yield target.bootstrap


@pytest.fixture(scope="session")
def ref(target) -> Reference:
    return Reference(target.bootstrap)


@pytest.fixture
def topic(request, ref):
    """A factory of fresh topics, named after the test, created by the reference client; deleted after."""
    made = []

    def make(partitions: int = 1, configs: dict[str, str] | None = None, on: Reference | None = None) -> str:
        base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:150]
        name = f"compat-{base}-{uuid.uuid4().hex[:6]}"
        r = on or ref
        r.create_topic(name, partitions, configs)
        made.append((r, name))
        return name

    yield make
    for r, name in made:
        try:
            r.delete_topic(name)
        except Exception:
            pass


# -- clients -----------------------------------------------------------------------------


class _SkipUnsupported:
    """The adapter, with Unsupported turned into a skip carrying the client's reason, and operations
    the client pins to a request version the broker does not serve skipped with that reason."""

    def __init__(self, adapter, target: Target):
        self._adapter = adapter
        self._target = target

    def __getattr__(self, name):
        attr = getattr(self._adapter, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            pinned = self._adapter.pinned.get(name)
            if pinned:
                key, version, why = pinned
                lo, hi = self._target.api_versions.get(key, (None, None))
                if lo is None or not lo <= version <= hi:
                    served = "does not serve it" if lo is None else f"serves v{lo}-{hi}"
                    pytest.skip(f"{why}; the broker {served} (Kafka 4 dropped old versions too, KIP-896)")
            try:
                return attr(*args, **kwargs)
            except Unsupported as e:
                pytest.skip(str(e))

        return call

    def on(self, bootstrap: str) -> _SkipUnsupported:
        """The same client pointed at another broker."""
        return _SkipUnsupported(type(self._adapter)(bootstrap), self._target)


@pytest.fixture
def client(request, target):
    cls = CLIENTS[request.param]
    missing = cls.missing()
    if missing:
        pytest.skip(f"{cls.name}: {missing}")
    request.node.user_properties.append(("compat_advertised", target.advertised()))
    return _SkipUnsupported(cls(target.bootstrap), target)
