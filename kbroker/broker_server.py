"""One broker running on the current event loop: Kafka's BrokerServer, its startup and shutdown.

``BrokerServer.start`` opens the broker's state (broker_state.py) from its config, starts the background tasks
(the log manager: retention, compaction, flush policy), one listener socket per configured listener
(server.py's KafkaServer, Kafka's SocketServer) and, if asked, the HTTP control plane. ``stop`` undoes that
in order: long-polling fetches answer, listeners stop accepting and finish what is in flight, the
background tasks end, the state is flushed and closed.

It owns no loop and no thread, and nothing in it is global: several can run on one loop, each with its own
config, data directory, listeners and fault rules (a cluster in one process). Who owns the loop decides how
long it runs: serve.py in the foreground until a signal, embedded.py on a background thread.
"""

from __future__ import annotations

from .broker_configs import broker_configs
from .broker_state import BrokerState
from .config import BrokerConfig
from .control import Control, RequestLog
from .control_http import ControlHttpServer
from .faults import Faults
from .log.log_manager import LogManager
from .metrics import BrokerMetrics
from .security import tls
from .security.authenticator import ListenerAuth
from .server import KafkaServer


class BrokerServer:
    """A broker serving on the current event loop."""

    def __init__(self, config: BrokerConfig):
        self.config = config
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

    async def start(self) -> None:
        self.state = BrokerState(self.config)
        broker_configs(self.state)  # dynamic broker configs persisted by an earlier run apply now
        self.state.log_manager = LogManager(self.state)  # retention, compaction, flush policy
        self.state.log_manager.start()
        faults, request_log = Faults(), RequestLog()
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
        self.control = Control(self.state, self.server, self)
        first = self.state.listeners[0]
        self.host, self.port = first.host, first.bound_port
        self.state.advertised_host, self.state.advertised_port = first.advertised()
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

    async def stop(self) -> None:
        if self.state is not None:
            self.state.stopping = True
            for topic in self.state.topics.by_name.values():  # long-polling fetches answer now
                for p in topic.partitions:
                    p.wake_waiters()
        if self.control_http is not None:
            await self.control_http.stop()
        if self.schema_registry is not None:
            await self.schema_registry[0].stop()
        for server in self.servers:
            await server.stop()
        if self.state is not None and self.state.log_manager is not None:
            await self.state.log_manager.stop()
        if self.state is not None:
            self.state.close()
