"""The broker: its state (topics, logs, coordinators) and how it is started, embedded and stopped.

``BrokerState`` is what handlers reach through ``ctx.broker``; it lives on one event loop and is only
touched from it. ``Broker`` is the embedding API: ``with Broker(port=0) as b:`` runs a broker on a
background thread of the calling process and exposes ``b.bootstrap_servers``. ``serve()`` is what the
command line runs in the foreground.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path

from .clock import AsyncioClock
from .consumer_protocol import decode_consumer_assignment
from .coordinator.group import GroupConfig, GroupCoordinator
from .coordinator.offsets import FileOffsetStore, MemoryOffsetStore
from .coordinator.transaction import TransactionCoordinator
from .handlers import advertised_versions
from .journal import KeyedJournal
from .config import TOPIC_DEFAULT_KEYS, BrokerConfig, apply_settings
from .metadata import FileMetadataStore, MemoryMetadataStore
from .producer_ids import ProducerIdManager
from .control import Control, ControlClient, RequestLog
from .control_http import ControlHttpServer
from .faults import Faults
from .log_manager import LogManager
from .security import tls
from .security.acl import Authorizer
from .security.authenticator import ListenerAuth
from .security.credentials import CredentialStore
from .security.listeners import resolve_listeners, unauthenticated_exposures
from .server import KafkaServer
from .topic_config import TOPIC_CONFIGS
from .topics import TopicManager

log = logging.getLogger("kbroker")

STATE_DIR = ".kbroker"  # inside the data directory; a topic dir is always "<name>-<n>", so no clash


class ChangeNotifier:
    """Wakes whoever waits for "something changed" (a record appended, a group moved): the control plane's
    wait, which must not poll."""

    def __init__(self):
        self._waiters: list[asyncio.Future] = []

    def wait(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def notify(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)


class BrokerState:
    def __init__(self, config: BrokerConfig):
        self.config = config
        self.stopping = False
        self.changes = ChangeNotifier()
        self.api_versions = advertised_versions(config.emulate_kafka)
        self.advertised_host = config.advertised
        self.advertised_port = config.advertised_port or config.port
        self.log_store, self.metadata_store = self._open_storage()
        self.topics = TopicManager(self.metadata_store, self.log_store, self._topic_defaults(), self.changes)
        self.topics.load()
        doc = self.topics.doc
        if "cluster_id" not in doc:
            doc["cluster_id"] = config.cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self.topics.save_doc()
        self.cluster_id = doc["cluster_id"]
        self.producer_ids = ProducerIdManager(self.topics)
        self.transactions_enabled = True
        clock = AsyncioClock()
        self.groups = GroupCoordinator(clock, self._group_config(), self._offset_store(),
                                       on_change=self.changes.notify)
        self.groups.load()
        self.transactions = TransactionCoordinator(
            clock, self._transaction_journal(), self.producer_ids, self._write_marker,
            self.groups.complete_txn_offsets, self._partition_exists,
            max_timeout_ms=config.transaction_max_timeout_ms,
            abort_check_interval_ms=config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        )
        self.transactions.load()
        # Security: the listeners, the users who may log in, and the ACLs (None: no authorizer).
        self.listeners = resolve_listeners(config)
        self.credentials = CredentialStore(self._journal("credentials.journal", CredentialStore.MAGIC))
        for name, password in config.sasl_users:
            self.credentials.ensure_user(name, password)
        self.authorizer = None
        if config.authorizer_enabled:
            self.authorizer = Authorizer(self._journal("acls.journal", b"KBACLS\x00\x00"), config.super_users,
                                         config.allow_everyone_if_no_acl_found)

    def _journal(self, name: str, magic: bytes) -> KeyedJournal:
        """Security state in the data directory (in memory for --storage memory), fsynced per change: a
        created user or ACL must not come back from the dead, nor a deleted one vanish."""
        path = None if self.config.storage == "memory" else Path(self.config.data_dir) / STATE_DIR / name
        return KeyedJournal(path, magic, fsync=True)

    def _transaction_journal(self) -> KeyedJournal:
        """Transaction state (Kafka's __transaction_state): the latest state per transactional id."""
        path = None
        if self.config.storage != "memory":
            path = Path(self.config.data_dir) / STATE_DIR / "transactions.journal"
        return KeyedJournal(path, b"KBTXNST\x00", fsync=self.config.fsync != "never")

    def _partition(self, topic: str, partition: int):
        t = self.topics.get(topic)
        if t is None or not 0 <= partition < len(t.partitions):
            raise LookupError(f"{topic}-{partition}")
        return t.partitions[partition]

    def _partition_exists(self, topic: str, partition: int) -> bool:
        t = self.topics.get(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    def _write_marker(self, topic: str, partition: int, producer_id: int, epoch: int, commit: bool) -> None:
        self._partition(topic, partition).write_marker(producer_id, epoch, commit)

    def _group_config(self) -> GroupConfig:
        c = self.config
        return GroupConfig(
            group_min_session_timeout_ms=c.group_min_session_timeout_ms,
            group_max_session_timeout_ms=c.group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms=c.group_initial_rebalance_delay_ms,
            group_max_size=c.group_max_size,
            offsets_retention_minutes=c.offsets_retention_minutes,
            offsets_retention_check_interval_ms=c.offsets_retention_check_interval_ms,
        )

    def _offset_store(self):
        """Committed offsets and group metadata: a journal in the data directory (Kafka keeps them in the
        compacted __consumer_offsets topic), fsynced per commit unless --fsync never."""
        if self.config.storage == "memory":
            return MemoryOffsetStore()
        path = Path(self.config.data_dir) / STATE_DIR / "consumer-offsets.journal"
        return FileOffsetStore(path, fsync=self.config.fsync != "never")

    def _open_storage(self):
        if self.config.storage == "memory":
            from .storage.memory import MemoryLogStore

            return MemoryLogStore(), MemoryMetadataStore()
        if self.config.storage != "segment":
            raise ValueError(f"unknown storage {self.config.storage!r}: use segment or memory")
        from .storage.segment import SegmentLogStore

        data_dir = Path(self.config.data_dir)
        (data_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
        return SegmentLogStore(data_dir), FileMetadataStore(data_dir / STATE_DIR / "metadata.json")

    def _topic_defaults(self) -> dict[str, str]:
        """Broker-wide topic config defaults: the log.* settings given, and the embedding keywords."""
        c = self.config
        given = {
            "max.message.bytes": str(c.message_max_bytes),
            "segment.bytes": str(c.log_segment_bytes),
            "message.timestamp.type": c.log_message_timestamp_type,
        }
        out = {k: v for k, v in given.items() if v != TOPIC_CONFIGS[k].default}
        out.update(c.topic_defaults)
        return out

    def describe_broker_configs(self) -> dict[str, tuple[str, str, bool]]:
        """Broker settings by Kafka name: (value, type, set explicitly)."""
        c = self.config
        rows = {
            "node.id": (str(c.node_id), "int"),
            "num.partitions": (str(c.num_partitions), "int"),
            "auto.create.topics.enable": (str(c.auto_create_topics_enable).lower(), "boolean"),
            "message.max.bytes": (str(c.message_max_bytes), "int"),
            "socket.request.max.bytes": (str(c.socket_request_max_bytes), "int"),
            "controller.max.records.per.batch": (str(c.controller_max_records_per_batch), "int"),
            "log.segment.bytes": (str(c.log_segment_bytes), "int"),
            "log.message.timestamp.type": (c.log_message_timestamp_type, "string"),
            "log.retention.check.interval.ms": (str(c.log_retention_check_interval_ms), "long"),
            "group.initial.rebalance.delay.ms": (str(c.group_initial_rebalance_delay_ms), "int"),
            "group.min.session.timeout.ms": (str(c.group_min_session_timeout_ms), "int"),
            "group.max.session.timeout.ms": (str(c.group_max_session_timeout_ms), "int"),
            "group.max.size": (str(c.group_max_size), "int"),
            "offsets.retention.minutes": (str(c.offsets_retention_minutes), "int"),
            "transaction.max.timeout.ms": (str(c.transaction_max_timeout_ms), "int"),
            "log.dirs": (c.data_dir or "", "string"),
        }
        for broker_key, topic_key in TOPIC_DEFAULT_KEYS.items():
            if broker_key not in rows:
                d = TOPIC_CONFIGS[topic_key]
                rows[broker_key] = (self.topics.defaults.get(topic_key, d.default), d.type)
        return {k: (v, t, k in c.settings) for k, (v, t) in rows.items()}

    def set_topic_configs(self, topic, configs: dict[str, str]) -> None:
        self.topics.set_configs(topic, configs)
        cfg = topic.log_config()
        for p in topic.partitions:
            p.log.config = cfg

    # -- topics --------------------------------------------------------------

    def auto_create_topic(self, name: str):
        if name in self.topics.pending:  # a CreateTopics for it is still making its partitions
            return None
        return self.topics.create(name, self.config.num_partitions)

    def delete_topic(self, topic) -> None:
        self.topics.delete(topic)

    # -- records -------------------------------------------------------------

    def append_records(self, partition, records, request, version: int) -> tuple[int, int]:
        topic = partition.topic
        return partition.append(records, topic.max_message_bytes, topic.log_append_time, produce_version=version)

    # -- groups --------------------------------------------------------------

    def describe_group_for_control(self, group_id: str) -> dict:
        """A group as the control plane shows it: state, protocol, generation, members with their
        assignments (decoded when the consumer protocol is used), committed offsets."""
        d = self.groups.describe_group(group_id)
        offsets = self.groups.fetch_offsets(group_id, None)
        return {
            "group_id": group_id, "state": d.state, "protocol_type": d.protocol_type, "protocol": d.protocol,
            "generation_id": self.groups.generation_id(group_id),
            "members": [{
                "member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": decode_consumer_assignment(m.assignment) if d.protocol_type == "consumer" else None,
            } for m in d.members],
            "offsets": [{"topic": t, "partition": p, "offset": om.offset, "leader_epoch": om.leader_epoch,
                         "metadata": om.metadata} for (t, p), om in sorted(offsets.offsets.items())],
        }

    def reset_groups(self) -> None:
        listed = self.groups.list_groups(None, None)
        for g in listed.groups:
            d = self.groups.describe_group(g.group_id)
            if d.members:
                self.groups.leave_group(g.group_id, [(m.member_id, m.group_instance_id, "reset")
                                                     for m in d.members])
        self.groups.delete_groups([g.group_id for g in listed.groups])

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        self.credentials.close()
        if self.authorizer is not None:
            self.authorizer.close()
        self.transactions.close()
        self.transactions.journal.close()
        self.groups.close()
        for t in self.topics.by_name.values():
            for p in t.partitions:
                try:
                    p.log.flush()
                    p.log.close()
                except OSError as e:
                    log.error("closing %s-%d: %s", t.name, p.index, e)
        self.log_store.close()


class _Running:
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

    async def start(self) -> None:
        self.state = BrokerState(self.config)
        self.state.log_manager = LogManager(self.state)  # retention, compaction, flush policy
        self.state.log_manager.start()
        faults, request_log = Faults(), RequestLog()
        try:
            for listener in self.state.listeners:
                auth = ListenerAuth(listener, self.state.credentials) if listener.sasl else None
                server = KafkaServer(self.state, listener, auth)
                server.faults, server.request_log = faults, request_log
                ssl_context = tls.server_context(listener) if listener.tls else None
                _, listener.bound_port = await server.start(listener.host, listener.port, ssl=ssl_context)
                self.servers.append(server)
        except BaseException:
            for server in self.servers:
                await server.stop(grace_s=0)
            raise
        self.server = self.servers[0]
        self.control = Control(self.state, self.server)
        first = self.state.listeners[0]
        self.host, self.port = first.host, first.bound_port
        self.state.advertised_host, self.state.advertised_port = first.advertised()
        if self.config.control_port is not None:
            self.control_http = ControlHttpServer(self.control)
            self.control_host, self.control_port = await self.control_http.start(self.config.control_host,
                                                                                 self.config.control_port)

    async def stop(self) -> None:
        if self.state is not None:
            self.state.stopping = True
            for topic in self.state.topics.by_name.values():  # long-polling fetches answer now
                for p in topic.partitions:
                    p._wake()
        if self.control_http is not None:
            await self.control_http.stop()
        for server in self.servers:
            await server.stop()
        if self.state is not None and getattr(self.state, "log_manager", None) is not None:
            await self.state.log_manager.stop()
        if self.state is not None:
            self.state.close()


async def serve(config: BrokerConfig, ready=None) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, finish requests in flight, flush and return."""
    running = _Running(config)
    await running.start()
    for listener in unauthenticated_exposures(running.state.listeners):
        log.warning("listening on %s (listener %s, %s) without authentication: anyone who can reach it can "
                    "read and write", listener.host, listener.name, listener.security_protocol)
    # The plain line first, exactly as before (tools wait for it), then one line per listener.
    print(f"kbroker listening on {running.host}:{running.port}", flush=True)
    for listener in running.state.listeners:
        print(f"kbroker listening on {listener.name}://{listener.host}:{listener.bound_port}", flush=True)
    if running.control_port is not None:
        log.info("control plane on http://%s:%d", running.control_host, running.control_port)
    if ready is not None:
        ready(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await running.stop()


class Broker:
    """A broker on a background thread of this process, for tests and embedding.

    >>> with Broker(port=0) as b:
    ...     producer = Producer({"bootstrap.servers": b.bootstrap_servers})
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, data_dir: str | os.PathLike | None = None,
                 storage: str = "segment", settings: dict[str, str] | None = None, **fields):
        """``fields`` are BrokerConfig attributes (``num_partitions=3``); ``settings`` are Kafka-named
        (``{"log.retention.ms": "1000"}``)."""
        self._tmp = None
        if data_dir is None and storage == "segment":
            self._tmp = tempfile.mkdtemp(prefix="kbroker-")
            data_dir = self._tmp
        self.config = BrokerConfig(host=host, port=port, data_dir=str(data_dir) if data_dir else None,
                                   storage=storage, **fields)
        if settings:
            apply_settings(self.config, {k: str(v) for k, v in settings.items()})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: _Running | None = None

    @property
    def host(self) -> str:
        return self._running.host

    @property
    def port(self) -> int:
        return self._running.port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def listeners(self) -> dict[str, str]:
        """Listener name -> "host:port" bound, e.g. {"PLAINTEXT": "127.0.0.1:40123", "SASL_SSL": ...}."""
        return {lst.name: f"{lst.host}:{lst.bound_port}" for lst in self._running.state.listeners}

    @property
    def state(self) -> BrokerState:
        return self._running.state

    @property
    def control(self) -> ControlClient:
        """Fault injection and inspection (see control.py)."""
        return ControlClient(self)

    @property
    def control_url(self) -> str | None:
        r = self._running
        return None if r.control_port is None else f"http://{r.control_host}:{r.control_port}"

    def start(self) -> "Broker":
        started = threading.Event()
        error: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._running = _Running(self.config)
            try:
                loop.run_until_complete(self._running.start())
            except BaseException as e:  # reported to the starting thread
                error.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._running.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kbroker", daemon=True)
        self._thread.start()
        started.wait()
        if error:
            self._cleanup()
            raise error[0]
        return self

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the broker's event loop and return its result (for tests and the control API)."""
        fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
        return fut.result()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def _call(fn, *args):
    result = fn(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result
