"""The embedding API: a broker on a background thread of the calling process, for tests and embedding.

``with Broker(port=0) as b:`` starts a BrokerServer (broker_server.py) on a ``LoopThread``, an event loop on
a daemon thread, and exposes ``b.bootstrap_servers``. The test's thread reaches into the broker only through
``call``, which runs a function on the broker's loop, because the broker's state is only ever touched from it.

``Broker(brokers=3)`` runs a cluster of three on the one loop (broker_server.ClusterServers): one controller,
three listeners; ``bootstrap_servers`` names them all, and ``stop_broker`` / ``start_broker`` /
``wait_for_leaders`` are the cluster's control plane. The single-broker properties (``state``, ``control``,
``port``) are the first broker's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading

from .broker_server import BrokerServer, ClusterServers
from .broker_state import BrokerState
from .config import BrokerConfig, apply_settings
from .control import ControlClient


class LoopThread:
    """An event loop on a daemon thread. ``start`` runs a start coroutine on it (several brokers' starts
    gathered, for a cluster in one process), then the loop runs until ``stop``, which runs the stop
    coroutine on it before the loop closes."""

    def __init__(self, name: str = "kbroker"):
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, start, stop) -> None:
        """``start`` and ``stop`` are coroutine functions. Returns once ``start()`` has finished on the loop;
        if it raised, the loop is closed, the thread ends and the error is raised here (``stop`` is not run)."""
        started = threading.Event()
        error: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(start())
            except BaseException as e:  # reported to the starting thread
                error.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        started.wait()
        if error:
            raise error[0]

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the loop (awaiting it if it is a coroutine) and return its result."""
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop).result()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=timeout_s)


async def _call(fn, *args):
    result = fn(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result


class Broker:
    """A broker on a background thread of this process, for tests and embedding.

    >>> with Broker(port=0) as b:
    ...     producer = Producer({"bootstrap.servers": b.bootstrap_servers})
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, data_dir: str | os.PathLike | None = None,
                 storage: str = "segment", settings: dict[str, str] | None = None, brokers: int = 1, **fields):
        """``fields`` are BrokerConfig attributes (``num_partitions=3``); ``settings`` are Kafka-named
        (``{"log.retention.ms": "1000"}``); ``brokers``: how many brokers (one controller, one loop)."""
        self.brokers = brokers
        self._cluster: ClusterServers | None = None
        self._tmp = None
        if data_dir is None and storage == "segment":
            self._tmp = tempfile.mkdtemp(prefix="kbroker-")
            data_dir = self._tmp
        self.config = BrokerConfig(host=host, port=port, data_dir=str(data_dir) if data_dir else None,
                                   storage=storage, **fields)
        if settings:
            apply_settings(self.config, {k: str(v) for k, v in settings.items()})
        self._loop_thread: LoopThread | None = None
        self._server: BrokerServer | None = None

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def bootstrap_servers(self) -> str:
        if self._cluster is not None:
            return ",".join(f"{s.host}:{s.port}" for _, s in sorted(self._cluster.servers.items()))
        return f"{self.host}:{self.port}"

    # -- a cluster in one process (brokers > 1) ------------------------------------------------------------

    @property
    def cluster(self) -> ClusterServers | None:
        """The cluster's brokers and controller (None for a single broker); touch them only through ``call``."""
        return self._cluster

    @property
    def node_ids(self) -> list[int]:
        return self._cluster.node_ids if self._cluster is not None else [self.config.node_id]

    def stop_broker(self, node_id: int) -> None:
        """Stop one broker cleanly (its partitions lose their leader until it comes back)."""
        self._require_cluster()
        self.call(self._cluster.stop_broker, node_id)

    def start_broker(self, node_id: int) -> None:
        """Start a stopped broker again, on its port and data directory."""
        self._require_cluster()
        self.call(self._cluster.start_broker, node_id)

    def kill_broker(self, node_id: int) -> None:
        """Kill one broker: connections dropped, nothing flushed, no controlled shutdown; the controller
        elects new leaders from the ISR of the partitions it led."""
        self._require_cluster()
        self.call(self._cluster.kill_broker, node_id)

    def cut_off(self, node_id: int) -> None:
        """Cut a broker off from the others' replication traffic (clients still reach it)."""
        self._require_cluster()
        self.call(self._cluster.cut_off, node_id)

    def restore(self, node_id: int) -> None:
        """Let a cut-off broker's replication traffic flow again."""
        self._require_cluster()
        self.call(self._cluster.restore, node_id)

    def move_leader(self, topic: str, partition: int, node_id: int) -> None:
        """Make a live ISR member the partition's leader (KafkaError ELIGIBLE_LEADERS_NOT_AVAILABLE if not)."""
        self._require_cluster()
        self.call(self._cluster.move_leader, topic, partition, node_id)

    def reassign(self, topic: str, partition: int, replicas: list[int] | None) -> dict:
        """Reassign a partition to ``replicas`` (None: cancel), as AlterPartitionReassignments; returns the
        partition's replicas, isr, leader, adding and removing (KafkaError with the partition's error)."""
        self._require_cluster()
        return self.call(self._cluster.reassign, topic, partition, replicas)

    def wait_for_leaders(self, timeout_s: float = 10.0, full_isr: bool = False) -> bool:
        """True once every partition of the cluster has a live leader (``full_isr``: and every replica in
        its ISR); False after ``timeout_s``."""
        self._require_cluster()
        return self.call(self._cluster.wait_for_leaders, timeout_s, full_isr)

    def _require_cluster(self) -> ClusterServers:
        if self._cluster is None:
            raise RuntimeError("not a cluster: start Broker(brokers=N) for the cluster control plane")
        return self._cluster

    @property
    def listeners(self) -> dict[str, str]:
        """Listener name -> "host:port" bound, e.g. {"PLAINTEXT": "127.0.0.1:40123", "SASL_SSL": ...}."""
        return {lst.name: f"{lst.host}:{lst.bound_port}" for lst in self._server.state.listeners}

    @property
    def state(self) -> BrokerState:
        return self._server.state

    @property
    def broker_server(self) -> BrokerServer | None:
        """The running broker (its state, listeners and control plane); touch it only through ``call``."""
        return self._server

    @property
    def control(self) -> ControlClient:
        """Fault injection and inspection (see control.py)."""
        return ControlClient(self)

    @property
    def control_url(self) -> str | None:
        r = self._cluster if self._cluster is not None else self._server
        return None if r.control_port is None else f"http://{r.control_host}:{r.control_port}"

    @property
    def schema_registry_url(self) -> str | None:
        """The Schema Registry's URL when it was asked for (``Broker(schema_registry_port=0)``); in a cluster,
        the first broker's (``schema_registry_urls`` names every broker's)."""
        sr = self._server.schema_registry
        return None if sr is None else f"http://{sr[1]}:{sr[2]}"

    @property
    def schema_registry_urls(self) -> dict[int, str]:
        """Node id -> the URL of the Schema Registry beside that broker (a cluster has one beside every
        broker, all over the one ``_schemas`` topic); running brokers only."""
        servers = self._cluster.servers if self._cluster is not None else {self.config.node_id: self._server}
        return {node: f"http://{s.schema_registry[1]}:{s.schema_registry[2]}"
                for node, s in sorted(servers.items()) if s.schema_registry is not None}

    def start(self) -> "Broker":
        self._loop_thread = LoopThread("kbroker")
        if self.brokers > 1:
            self._cluster = ClusterServers(self.config, self.brokers)
            start, stop = self._start_cluster, self._cluster.stop
        else:
            self._server = BrokerServer(self.config)
            start, stop = self._server.start, self._server.stop
        try:
            self._loop_thread.start(start, stop)
        except BaseException:
            self._cleanup()
            raise
        return self

    async def _start_cluster(self) -> None:
        await self._cluster.start()
        self._server = self._cluster.servers[self._cluster.node_ids[0]]

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the broker's event loop and return its result (for tests and the control API)."""
        return self._loop_thread.call(fn, *args)

    def stop(self) -> None:
        if self._loop_thread is not None:
            self._loop_thread.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
