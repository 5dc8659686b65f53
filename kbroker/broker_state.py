"""One broker's state: its topics and logs, coordinators, producer ids, credentials and ACLs.

``BrokerState`` is what handlers reach through ``ctx.broker``. It lives on one event loop and is only touched
from it, but owns neither the loop nor a socket: broker_server.py starts its listeners and background tasks,
and one loop can hold several states (a cluster in one process), each over its own config and data directory.

Cluster: the topics, their partitions' leaders and the producer-id blocks come from the controller
(controller.py) the state is given: one shared by the brokers of a cluster in one process, or, for a
broker on its own, an ``InProcessController`` of its own over its data directory's topic store
(a cluster of one). The state registers as a broker with it (``register``) once its listeners are bound, and
is told of every change as a ``MetadataListener``. The group and transaction coordinators are sharded by
the partitions of ``__consumer_offsets`` and ``__transaction_state`` (created on first need,
``coordinator_topic``): this broker loads a shard for each such partition it leads and unloads it when it stops
leading it (``_coordinators_follow``); a key of a partition led elsewhere is answered NOT_COORDINATOR.
Transaction markers are written by each partition's leader (``apply_txn_marker``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from pathlib import Path

from .clock import AsyncioClock
from .consumer_protocol import decode_consumer_assignment
from .coordinator import migration
from .coordinator.group import GroupConfig, GroupCoordinator
from .coordinator.group_config import (ConsumerGroupSettings, consumer_group_settings, parse_assignors,
                                       share_group_settings)
from .coordinator.share_group_listener import ShareGroupSettings
from .coordinator.marker_channel import MarkerChannel
from .coordinator.txn_partitions import TxnPartitionAdder
from .coordinator.offsets_topic import TopicOffsetStore
from .coordinator.runtime import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from .coordinator.service import GroupCoordinatorService, TransactionCoordinatorService
from .coordinator.transaction import TransactionCoordinator
from .coordinator.transaction_log import TransactionStateLog
from .handlers import advertised_versions
from .state_log import KeyedState, keyed_state
from .config import BrokerConfig
from .broker_configs import broker_configs
from .client_quotas import ClientQuotas
from .controller import BrokerRegistration, InProcessController, MetadataListener, eager
from .inter_broker import inter_broker_client
from .topic_store import FileTopicStore, MemoryTopicStore
from .producer_ids import ProducerIdManager
from .replication_quotas import ReplicationQuotas
from .errors import KafkaError
from .partition import get_partition_or_error
from .security.acl import Authorizer
from .share.manager import SharePartitionManager
from .share.persister import RemotePersister
from .share.share_coordinator import SHARE_STATE_TOPIC, SHARE_STATE_TOPIC_CONFIGS, ShareCoordinatorService
from .security.credentials import CredentialStore
from .security.listeners import resolve_listeners
from .topic_config import TOPIC_CONFIGS
from .topics import INTERNAL_TOPICS, TopicManager, run_in_turns

log = logging.getLogger("kbroker")

STATE_DIR = ".kbroker"  # inside the data directory; a topic dir is always "<name>-<n>", so no clash
# Kafka's configs of its coordinators' topics (offsets.topic.segment.bytes, transaction.state.log.segment.bytes).
INTERNAL_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


class ChangeNotifier:
    """Wakes whoever waits for "something changed" (a record appended, a group moved): the control plane's
    wait, which must not poll."""

    def __init__(self):
        self._waiters: list[asyncio.Future] = []
        # The share groups' listeners (coordinator/share_group_listener.py), shared like the notifier by the
        # brokers of a cluster in one process: a share group's coordinator may be another broker than the
        # leaders of its partitions.
        self.share_group_listeners: list = []

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
        self.replica_fetchers = None  # replica_fetcher.ReplicaFetcherManager: started by broker_server.py
        self.topics = TopicManager(controller, self.node_id, self.log_store, self._topic_defaults(), self.changes)
        self.cluster_id = controller.cluster_id
        self.producer_ids = ProducerIdManager(controller)
        self.client_quotas = ClientQuotas(config, controller)  # client_quotas.py: the controller's, enforced
        # KIP-73's throttles of replication traffic (replication_quotas.py), by the dynamic broker configs.
        self.replication_quotas = ReplicationQuotas(self.node_id, lambda key: broker_configs(self).value(key))
        self.transactions_enabled = True
        self.schema_registry = None  # kbroker.schema_registry.Registry when its listener is on
        self._clock = AsyncioClock()
        self._group_config = self._make_group_config()
        # The coordinators: one shard per partition of __consumer_offsets / __transaction_state this broker
        # leads, loaded and unloaded as leadership moves (on_topic_change; coordinator/service.py).
        self.groups = GroupCoordinatorService(config.offsets_topic_num_partitions, self._make_group_shard,
                                              lambda: GroupCoordinator(self._clock, self._group_config,
                                                                       topics=self.topics,
                                                                       share_settings=self.share_group_settings,
                                                                       consumer_settings=self.consumer_group_settings),
                                              self.changes.share_group_listeners)
        self.transactions = TransactionCoordinatorService(config.transaction_state_log_num_partitions,
                                                          self._make_transaction_shard)
        # Share groups' partitions (KIP-932): their state machines and sessions, and the share coordinator
        # keeping their state in __share_group_state (one shard per partition of it this broker leads).
        self.share_coordinator = ShareCoordinatorService(
            config.share_coordinator_state_topic_num_partitions, self._clock,
            config.share_coordinator_snapshot_update_records_per_snapshot,
            config.share_coordinator_state_topic_prune_interval_ms)
        # Security: the listeners, the users who may log in, and the ACLs (None: no authorizer).
        self.listeners = resolve_listeners(config)
        # How this broker reaches the others (replica fetchers, markers, share state): inter_broker.py.
        self.inter_broker = inter_broker_client(config.settings, self.listeners)
        # The share state of keys whose share coordinator is another broker: the inter-broker share state APIs.
        self.share_persister = RemotePersister(
            self.node_id, lambda key: self._leader_of(SHARE_STATE_TOPIC, self.share_coordinator.partition_for(key)),
            self._inter_broker_endpoint, connect=self.inter_broker.connect)
        self.share = SharePartitionManager(self._clock, self.share_coordinator, self.share_settings,
                                           lambda: self.coordinator_topic_or_create(SHARE_STATE_TOPIC),
                                           self.share_persister, config.group_share_max_share_sessions)
        self.groups.add_share_group_listener(self.share)  # members leaving release their records
        # The transaction coordinators' markers: WriteTxnMarkers to each partition's leader, or written here.
        self.markers = MarkerChannel(self.node_id, self._leader_of, self._inter_broker_endpoint,
                                     self.apply_txn_marker, connect=self.inter_broker.connect)
        # Transaction protocol v2: partitions a producer writes to join its transaction through their leader.
        self.txn_partitions = TxnPartitionAdder(self.node_id, self.transactions, self._txn_coordinator_of,
                                                self._inter_broker_endpoint, connect=self.inter_broker.connect)
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

    def _partition_exists(self, topic: str, partition: int) -> bool:
        """Whether the cluster has the partition (whichever broker leads it)."""
        t = self.topics.get(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    def _leader_of(self, topic: str, partition: int) -> int | None:
        """The partition's leader (-1: none now); None when the partition does not exist."""
        t = self.topics.get(topic)
        if t is None or not 0 <= partition < len(t.partitions):
            return None
        return t.partitions[partition].leader_id

    def _txn_coordinator_of(self, tid: str) -> int | None:
        return self._leader_of(TRANSACTION_STATE_TOPIC, self.transactions.partition_for(tid))

    def _inter_broker_endpoint(self, node_id: int) -> tuple[str, int] | None:
        """Where this broker reaches another: its listener of the inter-broker listener's name."""
        return self.live_endpoint(node_id, self.inter_broker.listener_name)

    def apply_txn_marker(self, topic: str, partition: int, producer_id: int, epoch: int, commit: bool,
                         coordinator_epoch: int = 0) -> bool:
        """Writes a transaction marker as the partition's leader (what a WriteTxnMarkers request asks of a
        broker); a marker on a partition of __consumer_offsets also ends the producer's pending offsets there,
        as Kafka's broker tells its group coordinator. False when this broker does not lead the partition."""
        p = get_partition_or_error(self.topics.get(topic), partition)
        if isinstance(p, int):
            return False
        p.write_marker(producer_id, epoch, commit, coordinator_epoch)
        if topic == OFFSETS_TOPIC:
            self.groups.on_txn_marker(partition, producer_id, commit)
        return True

    def _offsets_partition(self, group_id: str) -> tuple[str, int]:
        return OFFSETS_TOPIC, self.groups.partition_for(group_id)

    def _make_group_config(self) -> GroupConfig:
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
            **{f.name: getattr(c, f.name) for f in dataclasses.fields(GroupConfig)
               if f.name.startswith("group_share_") and f.name != "group_share_assignors"},
            group_share_assignors=parse_assignors(c.group_share_assignors),
            offsets_retention_minutes=c.offsets_retention_minutes,
            offsets_retention_check_interval_ms=c.offsets_retention_check_interval_ms,
        )

    def _make_group_shard(self, index: int, log) -> GroupCoordinator:
        """The group coordinator of partition ``index`` of __consumer_offsets, its state read from ``log``."""
        return GroupCoordinator(self._clock, self._group_config, TopicOffsetStore(log), on_change=self.changes.notify,
                                topics=self.topics, share_listeners=self.groups.share_listeners,
                                share_settings=self.share_group_settings,
                                consumer_settings=self.consumer_group_settings)

    @property
    def group_config(self) -> GroupConfig:
        """The group coordinator's broker settings (group.*, group.consumer.*, group.share.*, offsets.*)."""
        return self._group_config

    def share_group_settings(self, group_id: str) -> ShareGroupSettings:
        """A share group's effective settings: its GROUP configs (kept by the controller) over group.share.*."""
        return share_group_settings(self._group_config, self.controller.group_configs().get(group_id, {}))

    def consumer_group_settings(self, group_id: str) -> ConsumerGroupSettings:
        """A consumer-protocol group's session timeout and heartbeat interval: its GROUP configs (kept by the
        controller) over group.consumer.*."""
        return consumer_group_settings(self._group_config, self.controller.group_configs().get(group_id, {}))

    def _make_transaction_shard(self, index: int, log) -> TransactionCoordinator:
        """The transaction coordinator of partition ``index`` of __transaction_state, read from ``log``; its
        markers carry the partition's leader epoch as the coordinator epoch (Kafka's coordinatorEpoch)."""
        c = self.config
        write_marker = functools.partial(self.markers.write, coordinator_epoch=log.partition.leader_epoch)
        return TransactionCoordinator(
            self._clock, TransactionStateLog(log), self.producer_ids, write_marker, self._offsets_partition,
            self._partition_exists, max_timeout_ms=c.transaction_max_timeout_ms,
            abort_check_interval_ms=c.transaction_abort_timed_out_transaction_cleanup_interval_ms)

    @staticmethod
    def _internal_topic_configs(name: str) -> dict[str, str]:
        """An internal topic's configs at creation: compacted, but ``__share_group_state`` (Kafka's: delete,
        kept forever, pruned by its share coordinator)."""
        return dict(SHARE_STATE_TOPIC_CONFIGS if name == SHARE_STATE_TOPIC else INTERNAL_TOPIC_CONFIGS)

    def _internal_topic_spec(self, name: str) -> tuple[int, int]:
        """(partitions, replication factor) of an internal topic: the broker config's, the factor capped by the
        live brokers (as Kafka does for a cluster smaller than it)."""
        c = self.config
        if name == OFFSETS_TOPIC:
            partitions, rf = c.offsets_topic_num_partitions, c.offsets_topic_replication_factor
        elif name == SHARE_STATE_TOPIC:
            partitions = c.share_coordinator_state_topic_num_partitions
            rf = c.share_coordinator_state_topic_replication_factor
        else:
            partitions, rf = c.transaction_state_log_num_partitions, c.transaction_state_log_replication_factor
        return partitions, max(1, min(rf, len(self.controller.live_broker_ids())))

    def coordinator_topic(self, name: str):
        """The internal topic ``name`` (__consumer_offsets or __transaction_state), created now, compacted, if
        it does not exist yet (a Metadata request naming it). None when it cannot be, or while a controller
        that cannot answer at once (the database's) creates it."""
        topic = self.topics.get(name)
        if topic is not None or name in self.topics.pending:
            return topic
        if not self.controller.changes_complete_at_once:
            return self.coordinator_topic_or_create(name)
        partitions, rf = self._internal_topic_spec(name)
        try:
            return self.topics.create(name, partitions, self._internal_topic_configs(name), replication_factor=rf)
        except KafkaError as e:
            log.warning("creating the internal topic %s failed: %s", name, e.message)
            return None

    async def coordinator_topic_created(self, name: str):
        """The internal topic ``name``, created (and awaited) if it does not exist yet; None when it cannot be."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        partitions, rf = self._internal_topic_spec(name)
        try:
            return await run_in_turns(self.topics, self.topics.creation(
                name, partitions, self._internal_topic_configs(name), replication_factor=rf))
        except KafkaError as e:
            log.warning("creating the internal topic %s failed: %s", name, e.message)
            return self.topics.get(name)

    def coordinator_topic_or_create(self, name: str):
        """The internal topic ``name``, or None while it is being created: as Kafka's FindCoordinator, the first
        request that needs it starts its creation and is answered COORDINATOR_NOT_AVAILABLE, so that no client
        waits while its partitions are made (in turns of the event loop, as CreateTopics makes them, and
        awaiting the controller)."""
        topic = self.topics.get(name)
        if topic is not None or name in self.topics.pending:
            return topic
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.coordinator_topic(name)  # no loop to run it on: at once
        partitions, rf = self._internal_topic_spec(name)
        steps = self.topics.creation(name, partitions, self._internal_topic_configs(name), replication_factor=rf)
        self._in_background(f"creating the internal topic {name}", run_in_turns(self.topics, steps))
        return None

    @staticmethod
    def _in_background(what: str, change) -> None:
        """Start ``change`` now (it validates and reserves at once) and let it finish on its own, its failure
        logged."""
        try:
            task = eager(change)
        except KafkaError as e:
            log.warning("%s failed: %s", what, e.message)
            return
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or log.warning(
            "%s failed: %s", what, t.exception()))

    # -- the cluster ---------------------------------------------------------

    async def register(self, endpoints: dict[str, tuple[str, int]]) -> None:
        """Join the cluster with the listeners' advertised addresses: the controller sends this broker the
        topics and elects it leader of the partitions that wait for it."""
        await self.controller.register_broker(BrokerRegistration(self.node_id, endpoints, self.config.rack), self)
        self.registered = True
        await self._migrate_journals()

    async def _migrate_journals(self) -> None:
        """A data directory of an earlier release: its coordinator journals are moved onto the internal topics
        once (coordinator/migration.py), or the start is refused with the journals left as they were."""
        if self.config.storage == "memory":
            return
        state_dir = Path(self.config.data_dir) / STATE_DIR
        if not migration.journals_to_migrate(state_dir):
            return
        offsets = await self.coordinator_topic_created(OFFSETS_TOPIC)
        transactions = await self.coordinator_topic_created(TRANSACTION_STATE_TOPIC)
        if offsets is None or transactions is None:
            raise migration.MigrationError("cannot migrate the coordinator journals: the internal topics could "
                                           "not be created")
        migration.migrate(state_dir, offsets, transactions, self.groups.partition_for,
                          self.transactions.partition_for)
        self.groups.shards.reload(offsets)
        self.transactions.shards.reload(transactions)

    async def unregister(self) -> None:
        if self.registered:
            self.registered = False
            await self.controller.unregister_broker(self.node_id)

    def on_topic_change(self, topic) -> None:
        t = self.topics.apply(topic)
        self._coordinators_follow(topic.name, t)
        self.share.on_topic(t.topic_id, t)
        self.changes.notify()

    def on_topic_deleted(self, topic) -> None:
        t = self.topics.get(topic.name)
        if t is not None:
            self.topics.remove(t)
            self.share.on_topic(t.topic_id, None)
        self._coordinators_follow(topic.name, None)
        self.changes.notify()

    def _coordinators_follow(self, name: str, topic) -> None:
        """Load the coordinators of the internal partitions this broker now leads, unload the others."""
        if name == OFFSETS_TOPIC:
            self.groups.on_topic(topic)
        elif name == TRANSACTION_STATE_TOPIC:
            self.transactions.on_topic(topic)
        elif name == SHARE_STATE_TOPIC:
            self.share_coordinator.on_topic(topic)

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

    def set_topic_configs(self, topic, configs: dict[str, str]):
        """The change asked of the controller (a coroutine to await), which tells every broker, which updates
        its logs."""
        return self.topics.set_configs(topic, configs)

    # -- topics --------------------------------------------------------------

    def auto_create_topic(self, name: str):
        """The topic created for a Metadata request naming it; None when it cannot be (its name
        collides with an existing topic's): the client sees UNKNOWN_TOPIC_OR_PARTITION, as from Kafka, whose
        controller refuses the creation its auto-creation asked for."""
        if name in self.topics.pending:  # a CreateTopics for it is still making its partitions
            return None
        if name in INTERNAL_TOPICS:
            return self.coordinator_topic(name)
        if not self.controller.changes_complete_at_once:
            # Asked of the database in the background; the client asks again (LEADER_NOT_AVAILABLE meanwhile).
            steps = self.topics.creation(name, self.config.num_partitions,
                                         replication_factor=self.config.default_replication_factor)
            self._in_background(f"auto-creation of topic {name}", run_in_turns(self.topics, steps))
            return None
        try:
            return self.topics.create(name, self.config.num_partitions,
                                      replication_factor=self.config.default_replication_factor)
        except KafkaError as e:
            log.warning("auto-creation of topic %s refused: %s", name, e.message)
            return None

    def delete_topic(self, topic):
        """The deletion asked of the controller: a coroutine to await."""
        return self.topics.delete(topic)

    # -- groups --------------------------------------------------------------

    def share_settings(self, group_id: str):
        """A share group's effective settings (its GROUP configs over the broker's group.share.*)."""
        return self.groups.share_group_config(group_id)

    def share_group_is_empty(self, group_id: str) -> bool:
        """Whether the share group has no member (what AlterShareGroupOffsets and DeleteShareGroupOffsets
        require): its coordinator knows none, as Kafka's GroupMetadataManager checks; share sessions do not
        count (a member that left the group may keep its session until its connection closes, as in Kafka)."""
        return not self.groups.share_group_assignment(group_id)

    def describe_group_for_control(self, group_id: str) -> dict:
        """A group as the control plane shows it: state, protocol, generation, members with their
        assignments (decoded when the consumer protocol is used), committed offsets. A consumer-protocol group
        (KIP-848) shows its group epoch as the generation, its assignor as the protocol, and each member's epoch
        and current assignment. A share group (KIP-932) shows its group epoch as the generation, its assignor
        as the protocol, and each member's epoch, subscription and assigned partitions (which members may
        share)."""
        sd = self.groups.share_group_describe(group_id)
        if sd.error_code == 0:
            return {
                "group_id": group_id, "state": sd.state, "protocol_type": "share", "protocol": sd.assignor_name,
                "generation_id": sd.group_epoch, "assignment_epoch": sd.assignment_epoch, "group_type": "share",
                "members": [{
                    "member_id": m.member_id, "client_id": m.client_id, "client_host": m.client_host,
                    "rack_id": m.rack_id, "member_epoch": m.member_epoch,
                    "subscribed_topic_names": m.subscribed_topic_names,
                    "assignment": [{"topic": name, "partitions": parts} for _tid, name, parts in m.assignment],
                } for m in sd.members],
                "offsets": [],
            }
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
            if g.group_type == "share":
                self.groups.remove_share_group_members(g.group_id, "reset")
                continue
            d = self.groups.describe_group(g.group_id)
            if d.members:
                self.groups.leave_group(g.group_id, [(m.member_id, m.group_instance_id, "reset")
                                                     for m in d.members])
        self.groups.delete_groups([g.group_id for g in listed.groups])

    # -- lifecycle -----------------------------------------------------------

    def close(self, flush: bool = True) -> None:
        """``flush=False``: a killed broker's logs are closed as they are (what the OS has is what stays)."""
        self.credentials.close()
        if self.authorizer is not None:
            self.authorizer.close()
        self.transactions.close()
        self.groups.close()
        self.groups.remove_share_group_listener(self.share)
        self.share.close()
        self.share_coordinator.close()
        for p in self.topics.local_partitions():
            try:
                if flush:
                    p.log.flush()
                p.log.close()
            except OSError as e:
                log.error("closing %s-%d: %s", p.topic.name, p.index, e)
        if self.owns_controller:
            self.controller.close()
        self.log_store.close()
