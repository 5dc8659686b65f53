"""One broker's state: its topics and logs, coordinators, producer ids, credentials and ACLs.

``BrokerState`` is what handlers reach through ``ctx.broker``. It lives on one event loop and is only touched
from it, but owns neither the loop nor a socket: broker_server.py starts its listeners and background tasks,
and one loop can hold several states (a cluster in one process), each over its own config and data directory.

Cluster: the topics, their partitions' leaders and the producer-id blocks come from the controller
(controller.py) the state is given: one shared by the brokers of a cluster in one process, or, for a
broker on its own, an ``InProcessController`` of its own over its data directory's topic store
(a cluster of one). The state registers as a broker with it (``register``) once its listeners are bound, and
is told of every change as a ``MetadataListener``. The group and transaction coordinators are hosted by one
broker of the cluster (``Controller.coordinator_id``); the others answer NOT_COORDINATOR.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .clock import AsyncioClock
from .consumer_protocol import decode_consumer_assignment
from .coordinator.group import GroupConfig, GroupCoordinator
from .coordinator.group_config import parse_assignors
from .coordinator.offsets import FileOffsetStore, MemoryOffsetStore
from .coordinator.transaction import TransactionCoordinator
from .handlers import advertised_versions
from .state_log import KeyedState, keyed_state
from .config import BrokerConfig
from .controller import BrokerRegistration, InProcessController, MetadataListener
from .topic_store import FileTopicStore, MemoryTopicStore
from .producer_ids import ProducerIdManager
from .errors import KafkaError
from .partition import get_partition_or_error
from .security.acl import Authorizer
from .security.credentials import CredentialStore
from .security.listeners import resolve_listeners
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


class BrokerState(MetadataListener):
    def __init__(self, config: BrokerConfig, controller=None, changes: ChangeNotifier | None = None):
        """``controller``: the cluster's (controller.py); None: this broker's own, over its data directory.
        ``changes``: the notifier shared by the brokers of a cluster in one process (the control plane's wait
        sees an append on any of them); None: the broker's own."""
        self.config = config
        self.node_id = config.node_id
        self.stopping = False
        self.log_manager = None  # retention, compaction, flush policy: started by broker_server.py
        self.changes = changes if changes is not None else ChangeNotifier()
        self.api_versions = advertised_versions(config.emulate_kafka)
        self.advertised_host = config.advertised
        self.advertised_port = config.advertised_port or config.port
        self.log_store, topic_store = self._open_storage()
        self.owns_controller = controller is None  # a cluster's is closed by the cluster
        if controller is None:
            controller = InProcessController(topic_store, config.cluster_id)
        self.controller = controller
        self.registered = False
        self.peers = None  # the other brokers of a cluster in one process: a function returning their states
        self.topics = TopicManager(controller, self.node_id, self.log_store, self._topic_defaults(), self.changes)
        self.cluster_id = controller.cluster_id
        self.producer_ids = ProducerIdManager(controller)
        self.transactions_enabled = True
        self.schema_registry = None  # kbroker.schema_registry.Registry when its listener is on
        clock = AsyncioClock()
        self.groups = GroupCoordinator(clock, self._group_config(), self._offset_store(),
                                       on_change=self.changes.notify, topics=self.topics)
        # The coordinators are this broker's when the cluster has none yet (it is the first to register) or
        # names it; the others answer NOT_COORDINATOR.
        coordinator = controller.coordinator_id()
        self.hosts_coordinators = coordinator in (-1, self.node_id)
        if self.hosts_coordinators:
            self.groups.load()
        else:
            self.groups.hosted = False
        self.transactions = TransactionCoordinator(
            clock, self._transaction_journal(), self.producer_ids, self._write_marker,
            self.groups.complete_txn_offsets, self._partition_exists,
            max_timeout_ms=config.transaction_max_timeout_ms,
            abort_check_interval_ms=config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        )
        if self.hosts_coordinators:
            self.transactions.load()
        else:
            self.transactions.hosted = False
        # Security: the listeners, the users who may log in, and the ACLs (None: no authorizer).
        self.listeners = resolve_listeners(config)
        self.credentials = CredentialStore(self._journal("credentials.journal", CredentialStore.MAGIC))
        for name, password in config.sasl_users:
            self.credentials.ensure_user(name, password)
        self.authorizer = None
        if config.authorizer_enabled:
            self.authorizer = Authorizer(self._journal("acls.journal", b"KBACLS\x00\x00"), config.super_users,
                                         config.allow_everyone_if_no_acl_found)

    def _journal(self, name: str, magic: bytes) -> KeyedState:
        """Security state in the data directory (in memory for --storage memory), fsynced per change: a
        created user or ACL must not come back from the dead, nor a deleted one vanish."""
        path = None if self.config.storage == "memory" else Path(self.config.data_dir) / STATE_DIR / name
        return keyed_state(path, magic, fsync=True)

    def _transaction_journal(self) -> KeyedState:
        """Transaction state (Kafka's __transaction_state): the latest state per transactional id."""
        path = None
        if self.config.storage != "memory":
            path = Path(self.config.data_dir) / STATE_DIR / "transactions.journal"
        return keyed_state(path, b"KBTXNST\x00", fsync=self.config.fsync != "never")

    def _partition_exists(self, topic: str, partition: int) -> bool:
        """Whether the cluster has the partition (whichever broker leads it)."""
        t = self.topics.get(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    def _write_marker(self, topic: str, partition: int, producer_id: int, epoch: int, commit: bool) -> None:
        """The transaction coordinator's marker, written by the partition's leader. In a cluster in one
        process the leader may be another broker of the loop (``peers``): an in-process stand-in for Kafka's
        WriteTxnMarkers request, which brokers in separate processes will send."""
        for state in [self] + [s for s in (self.peers() if self.peers is not None else []) if s is not self]:
            p = get_partition_or_error(state.topics.get(topic), partition)
            if not isinstance(p, int):
                p.write_marker(producer_id, epoch, commit)
                return
        raise LookupError(f"{topic}-{partition} has no leader to write the marker")

    def _group_config(self) -> GroupConfig:
        c = self.config
        return GroupConfig(
            group_min_session_timeout_ms=c.group_min_session_timeout_ms,
            group_max_session_timeout_ms=c.group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms=c.group_initial_rebalance_delay_ms,
            group_max_size=c.group_max_size,
            group_consumer_session_timeout_ms=c.group_consumer_session_timeout_ms,
            group_consumer_min_session_timeout_ms=c.group_consumer_min_session_timeout_ms,
            group_consumer_max_session_timeout_ms=c.group_consumer_max_session_timeout_ms,
            group_consumer_heartbeat_interval_ms=c.group_consumer_heartbeat_interval_ms,
            group_consumer_min_heartbeat_interval_ms=c.group_consumer_min_heartbeat_interval_ms,
            group_consumer_max_heartbeat_interval_ms=c.group_consumer_max_heartbeat_interval_ms,
            group_consumer_max_size=c.group_consumer_max_size,
            group_consumer_assignors=parse_assignors(c.group_consumer_assignors),
            group_consumer_migration_policy=c.group_consumer_migration_policy,
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

    # -- the cluster ---------------------------------------------------------

    def register(self, endpoints: dict[str, tuple[str, int]]) -> None:
        """Join the cluster with the listeners' advertised addresses: the controller sends this broker the
        topics and elects it leader of the partitions that wait for it."""
        self.controller.register_broker(BrokerRegistration(self.node_id, endpoints), self)
        self.registered = True

    def unregister(self) -> None:
        if self.registered:
            self.registered = False
            self.controller.unregister_broker(self.node_id)

    def on_topic_change(self, topic) -> None:
        self.topics.apply(topic)
        self.changes.notify()

    def on_topic_deleted(self, topic) -> None:
        t = self.topics.get(topic.name)
        if t is not None:
            self.topics.remove(t)
        self.changes.notify()

    def on_brokers_change(self) -> None:
        self.topics.version += 1  # the Metadata answer lists the live brokers and their partitions' leaders
        self.changes.notify()

    def live_endpoint(self, node_id: int, listener_name: str) -> tuple[str, int] | None:
        """The advertised address of a live broker's listener of that name (None: not alive, no such listener)."""
        b = self.controller.broker(node_id)
        if b is None or not b.alive:
            return None
        return b.endpoints.get(listener_name)

    def _open_storage(self):
        if self.config.storage == "memory":
            from .storage.memory import MemoryLogStore

            return MemoryLogStore(), MemoryTopicStore()
        if self.config.storage != "segment":
            raise ValueError(f"unknown storage {self.config.storage!r}: use segment or memory")
        from .storage.segment import SegmentLogStore

        data_dir = Path(self.config.data_dir)
        (data_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
        return SegmentLogStore(data_dir), FileTopicStore(data_dir / STATE_DIR / "metadata.json")

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

    def set_topic_configs(self, topic, configs: dict[str, str]) -> None:
        self.topics.set_configs(topic, configs)  # the controller tells every broker, which updates its logs

    # -- topics --------------------------------------------------------------

    def auto_create_topic(self, name: str):
        """The topic created for a Metadata request naming it; None when it cannot be (its name
        collides with an existing topic's): the client sees UNKNOWN_TOPIC_OR_PARTITION, as from Kafka, whose
        controller refuses the creation its auto-creation asked for."""
        if name in self.topics.pending:  # a CreateTopics for it is still making its partitions
            return None
        try:
            return self.topics.create(name, self.config.num_partitions,
                                      replication_factor=self.config.default_replication_factor)
        except KafkaError as e:
            log.warning("auto-creation of topic %s refused: %s", name, e.message)
            return None

    def delete_topic(self, topic) -> None:
        self.topics.delete(topic)

    # -- groups --------------------------------------------------------------

    def describe_group_for_control(self, group_id: str) -> dict:
        """A group as the control plane shows it: state, protocol, generation, members with their
        assignments (decoded when the consumer protocol is used), committed offsets. A consumer-protocol group
        (KIP-848) shows its group epoch as the generation, its assignor as the protocol, and each member's epoch
        and current assignment."""
        offsets = self.groups.fetch_offsets(group_id, None)
        offset_rows = [{"topic": t, "partition": p, "offset": om.offset, "leader_epoch": om.leader_epoch,
                        "metadata": om.metadata} for (t, p), om in sorted(offsets.offsets.items())]
        cd = self.groups.consumer_group_describe(group_id)
        if cd.error_code == 0:
            return {
                "group_id": group_id, "state": cd.state, "protocol_type": "consumer", "protocol": cd.assignor_name,
                "generation_id": cd.group_epoch, "group_type": "consumer",
                "members": [{
                    "member_id": m.member_id, "group_instance_id": m.instance_id, "client_id": m.client_id,
                    "client_host": m.client_host, "member_epoch": m.member_epoch,
                    "assignment": [{"topic": name, "partitions": parts} for _tid, name, parts in m.assignment],
                } for m in cd.members],
                "offsets": offset_rows,
            }
        d = self.groups.describe_group(group_id)
        return {
            "group_id": group_id, "state": d.state, "protocol_type": d.protocol_type, "protocol": d.protocol,
            "generation_id": self.groups.generation_id(group_id), "group_type": "classic",
            "members": [{
                "member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": decode_consumer_assignment(m.assignment) if d.protocol_type == "consumer" else None,
            } for m in d.members],
            "offsets": offset_rows,
        }

    def reset_groups(self) -> None:
        listed = self.groups.list_groups(None, None)
        for g in listed.groups:
            if g.group_type == "consumer":
                self.groups.remove_consumer_group_members(g.group_id, "reset")
                continue
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
        for p in self.topics.local_partitions():
            try:
                p.log.flush()
                p.log.close()
            except OSError as e:
                log.error("closing %s-%d: %s", p.topic.name, p.index, e)
        if self.owns_controller:
            self.controller.close()
        self.log_store.close()
