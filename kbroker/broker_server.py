"""One broker running on the current event loop: Kafka's BrokerServer, its startup and shutdown.

``BrokerServer.start`` opens the broker's state (broker_state.py) from its config, starts the background tasks
(the log manager: retention, compaction, flush policy), one listener socket per configured listener
(server.py's KafkaServer, Kafka's SocketServer) and, if asked, the HTTP control plane. ``stop`` undoes that
in order: long-polling fetches answer, listeners stop accepting and finish what is in flight, the
background tasks end, the state is flushed and closed.

It owns no loop and no thread, and nothing in it is global: several can run on one loop, each with its own
config, data directory, listeners and fault rules, sharing one controller (a cluster in one process). Once its
listeners are bound the broker registers with the controller (which then makes it leader of its
partitions); ``stop`` unregisters it first, so the others see its partitions without a leader at once
(Kafka's controlled shutdown). Who owns the loop decides how
long it runs: serve.py in the foreground until a signal, embedded.py on a background thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from .broker_configs import broker_configs
from .broker_state import BrokerState, ChangeNotifier
from .config import BrokerConfig
from .control import Control, RequestLog
from .control_http import ControlHttpServer
from .controller import check_leader_move, run_now
from .errors import ErrorCode, KafkaError
from .faults import Faults
from .log.log_manager import LogManager
from .metrics import BrokerMetrics
from .replica_fetcher import ReplicaFetcherManager, ReplicationLinks
from .security import tls
from .security.authenticator import ListenerAuth
from .security.listeners import controller_listener_names, parse_endpoints
from .server import KafkaServer

log = logging.getLogger("kbroker.broker")


class BrokerServer:
    """A broker serving on the current event loop."""

    def __init__(self, config: BrokerConfig, controller=None, cluster: "ClusterServers | None" = None):
        """``controller``: the cluster's (controller.py); None: the broker's own over its data directory.
        ``cluster``: the in-process cluster it belongs to, whose fault rules, request log and change notifier
        its brokers share (a fault or a wait of the control plane is about the cluster)."""
        self.config = config
        self.controller = controller
        self.cluster = cluster
        self.state: BrokerState | None = None
        self.server: KafkaServer | None = None  # the first listener's
        self.servers: list[KafkaServer] = []  # one per listener
        self.host = config.host
        self.port = config.port
        self.control: Control | None = None
        self.control_http: ControlHttpServer | None = None
        self.control_host: str | None = None
        self.control_port: int | None = None
        self.metrics = BrokerMetrics(self)  # GET /metrics; the request path counts into it
        self.schema_registry = None  # (server, host, port) when the Schema Registry listener is on
        self._rebalance_task: asyncio.Task | None = None  # auto.leader.rebalance.enable's checks

    async def start(self) -> None:
        self.metrics.loop_lag.start()
        cluster = self.cluster
        self.state = BrokerState(self.config, self.controller, cluster.changes if cluster is not None else None)
        broker_configs(self.state)  # dynamic broker configs persisted by an earlier run apply now
        self.state.log_manager = LogManager(self.state)  # retention, compaction, flush policy
        self.state.log_manager.start()
        # Followers fetch from leaders once the broker knows its partitions (at registration, below).
        fetchers = self.state.replica_fetchers = ReplicaFetcherManager(
            self.state, cluster.links if cluster is not None else None)
        self.state.topics.on_follower_change = fetchers.partition_changed
        faults, request_log = (Faults(), RequestLog()) if cluster is None else (cluster.faults, cluster.request_log)
        try:
            for listener in self.state.listeners:
                auth = ListenerAuth(listener, self.state.credentials) if listener.sasl else None
                server = KafkaServer(self.state, listener, auth)
                server.faults, server.request_log, server.metrics = faults, request_log, self.metrics
                ssl_context = tls.server_context(listener) if listener.tls else None
                _, listener.bound_port = await server.start(listener.host, listener.port, ssl=ssl_context)
                self.servers.append(server)
        except BaseException:
            for server in self.servers:
                await server.stop(grace_s=0)
            raise
        self.server = self.servers[0]
        self.control = Control(self.state, self.server, self, cluster.states if cluster is not None else None)
        first = self.state.listeners[0]
        self.host, self.port = first.host, first.bound_port
        self.state.advertised_host, self.state.advertised_port = first.advertised()
        fetchers.start()
        self._rebalance_task = asyncio.get_running_loop().create_task(self._rebalance_leaders())
        await self.state.register({listener.name: listener.advertised() for listener in self.state.listeners})
        # The metadata is here and the logs it gives this broker are open: what else is on disk is stray.
        self.state.log_manager.remove_stray_logs(self.state.controller.topics())
        if self.config.control_port is not None:
            self.control_http = ControlHttpServer(self.control, self.config.control_token,
                                                  self.config.control_allow_hosts)
            self.control_host, self.control_port = await self.control_http.start(self.config.control_host,
                                                                                 self.config.control_port)
        if self.config.schema_registry_port is not None:
            from . import schema_registry
            self.schema_registry = await schema_registry.start(
                self.state, self.config.schema_registry_host, self.config.schema_registry_port,
                self.config.schema_compatibility_level)

    async def _rebalance_leaders(self) -> None:
        """``auto.leader.rebalance.enable``: every ``leader.imbalance.check.interval.seconds``, the broker that
        is the controller moves leadership back to preferred replicas where a broker's share of partitions
        it does not lead though preferred exceeds ``leader.imbalance.per.broker.percentage`` (Kafka's
        controller does this check on the same schedule)."""
        config = self.config
        while True:
            await asyncio.sleep(max(config.leader_imbalance_check_interval_seconds, 0.05))
            state = self.state
            if not config.auto_leader_rebalance_enable or state is None or state.stopping:
                continue
            controller = state.controller
            if controller.controller_id != config.node_id:
                continue
            try:
                await controller.balance_leaders(config.leader_imbalance_per_broker_percentage)
            except Exception:  # noqa: BLE001  the next check tries again
                log.exception("broker %d: the leader rebalance failed", config.node_id)

    async def _stop_rebalancing(self) -> None:
        task, self._rebalance_task = self._rebalance_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def stop(self) -> None:
        await self._stop_rebalancing()
        if self.state is not None:
            if self.state.replica_fetchers is not None:
                await self.state.replica_fetchers.stop()
            await self.state.unregister()
            self.state.stopping = True
            for topic in list(self.state.topics.by_name.values()):  # long-polling fetches answer now
                for p in topic.partitions:
                    p.wake_waiters()
        await self._shut_down(grace_s=3.0, flush=True)

    async def _shut_down(self, grace_s: float, flush: bool) -> None:
        """The HTTP listeners, the Kafka listeners (requests in flight get ``grace_s``), the background
        tasks, then the state (flushed or not)."""
        self.metrics.loop_lag.stop()
        if self.control_http is not None:
            await self.control_http.stop()
        if self.schema_registry is not None:
            await self.schema_registry[0].stop()
        for server in self.servers:
            await server.stop(grace_s=grace_s)
        if self.state is not None and self.state.log_manager is not None:
            # Its periodic tasks first: the checkpoint task writes on a worker thread, and the last word is
            # this one's.
            await self.state.log_manager.stop()
            if flush:  # a clean shutdown keeps the high watermarks (Kafka's checkpointHW on shutdown)
                try:
                    self.state.log_manager.checkpoint_high_watermarks()
                except OSError as e:
                    log.error("writing the high-watermark checkpoint: %s", e)
        if self.state is not None:
            await self.state.markers.close()  # markers on their way: the next coordinator sends them again
            await self.state.txn_partitions.close()
            await self.state.share_persister.close()
            self.state.close(flush=flush)

    async def kill(self) -> None:
        """Die as a killed process would: connections dropped at once, nothing answered or flushed, no
        controlled shutdown. The controller notices (in one process: at once, as Kafka's controller does
        when the broker's session ends) and elects new leaders from the ISR."""
        await self._stop_rebalancing()
        state = self.state
        state.stopping = True
        for server in self.servers:
            for conn in list(server.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            for task in list(server.tasks):
                task.cancel()
        if state.replica_fetchers is not None:
            await state.replica_fetchers.stop()
        await state.unregister()
        await self._shut_down(grace_s=0, flush=False)


class ClusterServers:
    """Several brokers on the current event loop sharing one in-process controller (a cluster in one process,
    what ``--brokers N`` and ``Broker(brokers=N)`` run).

    Broker ``i`` (from 0) is ``config`` with node id ``config.node_id + i``, its data directory
    ``<data dir>/broker-<node id>`` and its port ``config.port + i`` (0 stays 0: a free one each); the
    controller keeps the cluster's metadata in ``<data dir>/.kbroker/topics.journal``. Brokers start one after
    another, so the first one hosts the coordinators. ``stop_broker`` / ``start_broker`` stop a broker cleanly
    and start it again on the same port and data directory; ``wait_for_leaders`` waits, without polling, until
    every partition has a live leader.
    """

    def __init__(self, config: BrokerConfig, brokers: int):
        from pathlib import Path

        from .controller import InProcessController
        from .topic_store import FileTopicStore, MemoryTopicStore

        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        opened = [e for e in parse_endpoints(config.listeners or "")
                  if e[0] not in controller_listener_names(config.settings)]
        if brokers > 1 and any(port for _, _, port in opened[1:]):
            # the first listener's port is --port + i per broker; the others' must be free ones (0) each
            raise ValueError("with several brokers in one process, every listener but the first needs port 0 "
                             "(each broker takes a free one)")
        self.config = config
        if config.storage == "memory":
            store = MemoryTopicStore()
        else:
            root = Path(config.data_dir)
            (root / ".kbroker").mkdir(parents=True, exist_ok=True)
            store = FileTopicStore(root / ".kbroker" / "metadata.json")
        self.controller = InProcessController(store, config.cluster_id)
        self.controller.unclean_leader_election_default = config.topic_defaults.get(
            "unclean.leader.election.enable", "false")
        self.links = ReplicationLinks()  # brokers cut off from the others' replication traffic
        self.configs: dict[int, BrokerConfig] = {}
        racks = cluster_racks(config.rack, brokers)
        for i in range(brokers):
            node = config.node_id + i
            settings = dict(config.settings)
            if racks[i] is not None:
                settings["broker.rack"] = racks[i]
            self.configs[node] = dataclasses.replace(
                config, node_id=node, port=config.port + i if config.port else 0, rack=racks[i],
                advertised_port=config.advertised_port + i if config.advertised_port else None,
                data_dir=str(Path(config.data_dir) / f"broker-{node}") if config.data_dir else None,
                control_port=None,  # one HTTP control plane for the cluster, not one per broker
                # a Schema Registry beside every broker (each a client of the one _schemas): --schema-registry-port
                # + i, or a free port each for 0
                schema_registry_port=None if config.schema_registry_port is None else
                config.schema_registry_port + i if config.schema_registry_port else 0,
                settings=settings, topic_defaults=dict(config.topic_defaults))
        self.servers: dict[int, BrokerServer] = {}  # the running brokers by node id
        self.faults, self.request_log, self.changes = Faults(), RequestLog(), ChangeNotifier()
        self.control = ClusterControl(self)
        self.control_http: ControlHttpServer | None = None
        self.control_host: str | None = None
        self.control_port: int | None = None

    def states(self) -> list[BrokerState]:
        """The running brokers' states, by node id (the control plane looks for partitions and groups there)."""
        return [self.servers[n].state for n in sorted(self.servers)]

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.configs)

    async def start(self) -> None:
        try:
            for node in self.node_ids:
                await self.start_broker(node)
            if self.config.control_port is not None:
                self.control_http = ControlHttpServer(self.control, self.config.control_token,
                                                      self.config.control_allow_hosts)
                self.control_host, self.control_port = await self.control_http.start(self.config.control_host,
                                                                                     self.config.control_port)
        except BaseException:
            await self.stop()
            raise

    async def start_broker(self, node_id: int) -> BrokerServer:
        if node_id in self.servers:
            raise ValueError(f"broker {node_id} is running")
        server = BrokerServer(self.configs[node_id], self.controller, self)
        await server.start()
        self.configs[node_id].port = server.port  # a restart binds the same port: clients keep its address
        if server.schema_registry is not None:  # and the same registry port
            self.configs[node_id].schema_registry_port = server.schema_registry[2]
        self.servers[node_id] = server
        return server

    async def stop_broker(self, node_id: int) -> None:
        server = self.servers.pop(node_id, None)
        if server is None:
            raise ValueError(f"broker {node_id} is not running")
        await server.stop()

    async def kill_broker(self, node_id: int) -> None:
        """Kill a broker: connections dropped, nothing flushed, no controlled shutdown (``BrokerServer.kill``)."""
        server = self.servers.pop(node_id, None)
        if server is None:
            raise ValueError(f"broker {node_id} is not running")
        await server.kill()

    def cut_off(self, node_id: int) -> None:
        """Cut a broker off from the others' replication traffic: it fetches from no leader and no follower
        fetches from it, until ``restore``. Clients still reach it."""
        self.links.cut_off(node_id)

    def restore(self, node_id: int) -> None:
        self.links.restore(node_id)

    def move_leader(self, topic: str, partition: int, node_id: int) -> None:
        """Make ``node_id`` the leader of a partition: it must be a live member of the ISR (a preferred-leader
        election's rule; ELIGIBLE_LEADERS_NOT_AVAILABLE otherwise). A new leader epoch starts."""
        c = self.controller
        reg = c.topic(topic)
        if reg is None or not 0 <= partition < len(reg.partitions):
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{partition}")
        p = reg.partitions[partition]
        check_leader_move(p, node_id, c.live_broker_ids())
        if p.leader != node_id:
            run_now(c.alter_partition(topic, partition, p.leader_epoch, p.partition_epoch, node_id, p.isr))

    def reassign(self, topic: str, partition: int, replicas: list[int] | None) -> dict:
        """Reassign a partition to ``replicas`` (None: cancel the reassignment in progress), as
        AlterPartitionReassignments does; returns the partition's state (KafkaError with the partition's
        error)."""
        [(_name, [(_index, code, message)])] = run_now(self.controller.alter_reassignments(
            [(topic, [(partition, None if replicas is None else [int(r) for r in replicas])])]))
        if code:
            raise KafkaError(code, message)
        p = self.controller.topic(topic).partitions[partition]
        return {"replicas": p.replicas, "isr": p.isr, "leader": p.leader, "adding": p.adding,
                "removing": p.removing}

    async def stop(self) -> None:
        if self.control_http is not None:
            await self.control_http.stop()
            self.control_http = None
        for node in sorted(self.servers, reverse=True):
            await self.stop_broker(node)
        self.controller.close()  # the topic store's journal; a later change opens it again

    def all_partitions_have_leaders(self) -> bool:
        live = set(self.controller.live_broker_ids())
        return all(p.leader in live for t in self.controller.topics() for p in t.partitions)

    def all_partitions_fully_replicated(self) -> bool:
        """Every partition has a live leader and every replica in its ISR."""
        live = set(self.controller.live_broker_ids())
        return all(p.leader in live and sorted(p.isr) == sorted(p.replicas)
                   for t in self.controller.topics() for p in t.partitions)

    async def wait_for_leaders(self, timeout_s: float = 10.0, full_isr: bool = False) -> bool:
        """True once every partition has a live leader (``full_isr``: and all its replicas in sync); False
        after ``timeout_s``."""
        return await self.wait_for(self.all_partitions_fully_replicated if full_isr
                                   else self.all_partitions_have_leaders, timeout_s)

    async def wait_for(self, condition, timeout_s: float = 10.0) -> bool:
        """True once ``condition()`` holds; False after ``timeout_s``. Looked at again at every change of the
        controller (brokers, leaders, ISR) and every append on any broker (followers' too), not by a timer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            futures = [self.controller.wait_for_change(), self.changes.wait()]
            await asyncio.wait(futures, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for f in futures:
                f.cancel()
        return True


def cluster_racks(rack: str | None, brokers: int) -> list[str | None]:
    """Each broker's rack in a cluster in one process, from ``broker.rack``: one rack per broker
    (comma-separated, in node-id order), or one for all, or none."""
    if rack is None:
        return [None] * brokers
    racks = [r.strip() for r in rack.split(",")]
    if any(not r for r in racks) or len(racks) not in (1, brokers):
        raise ValueError(f"broker.rack of a cluster of {brokers} brokers in one process names one rack or "
                         f"{brokers} (comma-separated, in node-id order), not {rack!r}")
    return racks * brokers if len(racks) == 1 else racks


class ClusterControl:
    """The control plane of a cluster in one process: every broker operation of control.py, answered by a
    running broker (they share fault rules, request log and change notifications, and look for partitions
    and groups across the cluster), plus the cluster's own: list the brokers, stop one cleanly, start it
    again, wait until every partition has a leader (``{"leaders": true}``)."""

    def __init__(self, cluster: ClusterServers):
        self._cluster = cluster

    def __getattr__(self, name):
        servers = self._cluster.servers
        if not servers:
            raise ValueError("no broker of the cluster is running")
        return getattr(servers[min(servers)].control, name)

    def brokers(self) -> list[dict]:
        """Every broker of the cluster: a running one as its control plane describes it, a stopped one by its
        address; each with "running"."""
        c = self._cluster
        out = []
        for node in c.node_ids:
            server = c.servers.get(node)
            if server is not None:
                out.extend(dict(b, running=True) for b in server.control.brokers())
            else:
                out.append({"node_id": node, "running": False, "host": c.configs[node].host,
                            "port": c.configs[node].port})
        return out

    def _node(self, node_id) -> int:
        node = int(node_id)
        if node not in self._cluster.configs:
            raise KeyError(f"no broker {node}")
        return node

    async def stop_broker(self, node_id) -> None:
        await self._cluster.stop_broker(self._node(node_id))

    async def start_broker(self, node_id) -> None:
        await self._cluster.start_broker(self._node(node_id))

    async def kill_broker(self, node_id) -> None:
        await self._cluster.kill_broker(self._node(node_id))

    def cut_off(self, node_id) -> None:
        self._cluster.cut_off(self._node(node_id))

    def restore(self, node_id) -> None:
        self._cluster.restore(self._node(node_id))

    def move_leader(self, topic: str, partition, node_id) -> None:
        self._cluster.move_leader(topic, int(partition), self._node(node_id))

    def reassign(self, topic: str, partition, replicas) -> dict:
        return self._cluster.reassign(topic, int(partition), replicas)

    async def wait(self, spec: dict) -> bool:
        if spec.get("leaders") or spec.get("full_isr"):
            return await self._cluster.wait_for_leaders(int(spec.get("timeout_ms", 10000)) / 1000.0,
                                                        full_isr=bool(spec.get("full_isr")))
        return await self.__getattr__("wait")(spec)
