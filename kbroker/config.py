"""Broker settings, under Kafka's own names and with Kafka's defaults unless a comment says why not.

``BrokerConfig`` is what the rest of the broker reads. Settings reach it, later ones winning, from:
keyword arguments (embedding) or command-line flags for the common ones, a ``server.properties``-style file
(``--config FILE``), ``KAFKA_*`` environment variables mapped the way the official Kafka container image
maps them (``KAFKA_NUM_PARTITIONS=3`` is ``num.partitions=3``), and ``--set KEY=VALUE``.

Every Kafka key is one of: a broker setting kbroker uses (``BROKER_KEYS``); a broker-wide default for a
topic config (``log.retention.ms`` for ``retention.ms``, from ``topic_config.TOPIC_CONFIGS``); a key real
Kafka needs that means nothing on one broker (``NO_EFFECT_KEYS``: accepted, said once at debug level); or
unknown, which is reported with a warning rather than silently ignored.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .replica_selector import parse_selector
from .security import SecurityConfigError
from .security.listeners import (check_security_setting, controller_listener_names, is_security_key,
                                 is_sensitive, parse_endpoints)
from .topic_config import TOPIC_CONFIGS

log = logging.getLogger("kbroker.config")


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    data_dir: str | None = None
    storage: str = "segment"  # segment | memory
    node_id: int = 0  # node.id
    # broker.rack: the rack (or availability zone) of this broker, for replica placement and fetching from the
    # closest replica. A cluster in one process takes a comma-separated list, one rack per broker in node-id
    # order (broker_server.ClusterServers), or one rack for all.
    rack: str | None = None
    cluster_id: str | None = None  # generated on first start and kept in the data directory
    # kbroker.cluster.url: brokers in separate processes coordinated through this PostgreSQL database
    # (postgres_controller.py); None: the broker's own controller over its data directory.
    cluster_url: str | None = field(default=None, repr=False)
    num_partitions: int = 1  # num.partitions
    default_replication_factor: int = 1  # default.replication.factor: CreateTopics' -1 and auto-created topics
    # Replication (replica_fetcher.py, partition.py), Kafka's names and defaults.
    replica_lag_time_max_ms: int = 30000  # replica.lag.time.max.ms: a follower behind this long leaves the ISR
    replica_fetch_wait_max_ms: int = 500  # replica.fetch.wait.max.ms: a follower's long poll
    replica_fetch_backoff_ms: int = 1000  # replica.fetch.backoff.ms: after a failed fetch
    replica_fetch_max_bytes: int = 1048576  # replica.fetch.max.bytes: per partition
    # replication.quota.window.num / .size.seconds: the samples of the replication throttles' rates (KIP-73)
    replication_quota_window_num: int = 11
    replication_quota_window_size_seconds: int = 1
    replica_fetch_response_max_bytes: int = 10485760  # replica.fetch.response.max.bytes
    replica_socket_timeout_ms: int = 30000  # replica.socket.timeout.ms: connecting to a leader
    # replica.selector.class: how a leader picks the replica a consumer should read from (KIP-392,
    # replica_selector.py); None (Kafka's default): consumers read from the leader
    replica_selector_class: str | None = None
    # replica.high.watermark.checkpoint.interval.ms: how often the high watermarks go to each log directory's
    # replication-offset-checkpoint (log_manager.py); also written at a clean shutdown
    replica_high_watermark_checkpoint_interval_ms: int = 5000
    # The controller's preferred-leader rebalance (controller.imbalanced_partitions), Kafka's names and defaults.
    auto_leader_rebalance_enable: bool = True  # auto.leader.rebalance.enable
    leader_imbalance_check_interval_seconds: float = 300  # leader.imbalance.check.interval.seconds
    leader_imbalance_per_broker_percentage: int = 10  # leader.imbalance.per.broker.percentage
    auto_create_topics_enable: bool = True  # auto.create.topics.enable
    message_max_bytes: int = 1048588  # message.max.bytes
    socket_request_max_bytes: int = 104857600  # socket.request.max.bytes
    # controller.max.records.per.batch (KAFKA-20976): the most partitions one CreateTopics or
    # CreatePartitions request may create (Kafka's MAX_PARTITIONS_PER_BATCH before it, KAFKA-17870).
    controller_max_records_per_batch: int = 10000
    # Protection against careless and hostile clients, Kafka's settings and defaults (README, security).
    queued_max_request_bytes: int = -1  # queued.max.request.bytes: received requests not yet answered, all connections
    sasl_server_max_receive_size: int = 524288  # sasl.server.max.receive.size: frames before authentication
    connection_failed_authentication_delay_ms: int = 100  # connection.failed.authentication.delay.ms
    connections_max_idle_ms: int = 600000  # connections.max.idle.ms
    max_connections: int = 2147483647  # max.connections (dynamic)
    max_connections_per_ip: int = 2147483647  # max.connections.per.ip (dynamic)
    max_connections_per_ip_overrides: str = ""  # max.connections.per.ip.overrides (dynamic): "host:N,10.0.0.1:M"
    # listener.name.<listener>.max.connections (dynamic): a listener's own limit, by upper-case listener name
    listener_max_connections: dict[str, int] = field(default_factory=dict)
    max_connection_creation_rate: int = 2147483647  # max.connection.creation.rate (dynamic): per second
    # listener.name.<listener>.max.connection.creation.rate (dynamic), by upper-case listener name
    listener_max_connection_creation_rate: dict[str, int] = field(default_factory=dict)
    quota_window_num: int = 11  # quota.window.num: samples of the rate sensors (connection creation)
    quota_window_size_seconds: int = 1  # quota.window.size.seconds: the time of one sample
    fetch_max_bytes: int = 57671680  # fetch.max.bytes: the most one Fetch answer holds
    log_segment_bytes: int = 1073741824  # log.segment.bytes
    log_message_timestamp_type: str = "CreateTime"  # log.message.timestamp.type
    max_request_partition_size_limit: int = 2000  # partitions per DescribeTopicPartitions answer, at most
    telemetry_max_bytes: int = 1048576  # the largest client telemetry push (KIP-714)
    log_retention_check_interval_ms: int = 300000  # log.retention.check.interval.ms
    producer_id_expiration_ms: int = 86400000  # producer.id.expiration.ms: idempotence state of idle producers
    log_cleaner_backoff_ms: int = 15000  # log.cleaner.backoff.ms: the cleaner's pause when it finds no work
    # Consumer groups. Kafka's group.initial.rebalance.delay.ms default is 3000; a broker for tests wants
    # the first consumer to get its partitions at once, so kbroker's is 0.
    group_initial_rebalance_delay_ms: int = 0
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    group_max_size: int = 2147483647
    # The consumer group protocol (KIP-848), Kafka's defaults; coordinator/group_config.py checks the bounds.
    group_consumer_session_timeout_ms: int = 45000
    group_consumer_min_session_timeout_ms: int = 45000
    group_consumer_max_session_timeout_ms: int = 60000
    group_consumer_heartbeat_interval_ms: int = 5000
    group_consumer_min_heartbeat_interval_ms: int = 5000
    group_consumer_max_heartbeat_interval_ms: int = 15000
    group_consumer_max_size: int = 2147483647
    group_consumer_assignors: str = "uniform,range"
    group_consumer_migration_policy: str = "bidirectional"
    # Share groups (KIP-932), Kafka 4.4's defaults; coordinator/group_config.py checks the bounds.
    group_share_session_timeout_ms: int = 45000
    group_share_min_session_timeout_ms: int = 45000
    group_share_max_session_timeout_ms: int = 60000
    group_share_heartbeat_interval_ms: int = 5000
    group_share_min_heartbeat_interval_ms: int = 5000
    group_share_max_heartbeat_interval_ms: int = 15000
    group_share_max_size: int = 200
    group_share_max_share_sessions: int = 2000  # share sessions this broker keeps (SHARE_SESSION_LIMIT_REACHED)
    group_share_record_lock_duration_ms: int = 30000
    group_share_min_record_lock_duration_ms: int = 15000
    group_share_max_record_lock_duration_ms: int = 60000
    group_share_delivery_count_limit: int = 5
    group_share_min_delivery_count_limit: int = 2
    group_share_max_delivery_count_limit: int = 10
    group_share_partition_max_record_locks: int = 2000
    group_share_min_partition_max_record_locks: int = 100
    group_share_max_partition_max_record_locks: int = 4000
    group_share_assignors: str = "simple"
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600000
    transaction_max_timeout_ms: int = 900000
    # The coordinators' internal topics (Kafka's defaults); the replication factor is capped by the live
    # brokers when the topic is created, as Kafka does for a cluster smaller than it.
    offsets_topic_num_partitions: int = 50
    offsets_topic_replication_factor: int = 3
    transaction_state_log_num_partitions: int = 50
    transaction_state_log_replication_factor: int = 3
    share_coordinator_state_topic_num_partitions: int = 50  # __share_group_state (KIP-932)
    share_coordinator_state_topic_replication_factor: int = 3
    share_coordinator_snapshot_update_records_per_snapshot: int = 500
    share_coordinator_state_topic_prune_interval_ms: int = 300_000
    transactional_id_expiration_ms: int = 604800000
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10000
    fsync: str = "never"  # always | interval | never: see the README for what each risks
    emulate_kafka: str | None = None  # advertise what this Apache Kafka release advertises (releases.py)
    control_host: str = "127.0.0.1"  # the HTTP control plane: loopback unless told otherwise
    control_port: int | None = None  # None: no HTTP control plane
    control_token: str | None = field(default=None, repr=False)  # bearer token of the control plane
    control_allow_hosts: list[str] = field(default_factory=list)  # more names the control plane answers to
    # The Schema Registry (kbroker/schema_registry/): its own HTTP listener, off unless a port is given.
    schema_registry_host: str = "127.0.0.1"
    schema_registry_port: int | None = None
    schema_compatibility_level: str = "BACKWARD"  # Confluent's schema.compatibility.level default
    # Broker-wide defaults of topic configs, by topic config name ("retention.ms": "3600000"), from the
    # log.* settings; only what was set.
    topic_defaults: dict[str, str] = field(default_factory=dict)
    # Every Kafka-named setting that was given, as given (DescribeConfigs reports their source).
    settings: dict[str, str] = field(default_factory=dict)
    # Security (kbroker/security/). ``listeners``/``advertised.listeners`` as given; the first listener's
    # address is also in host/port (and advertised_host/advertised_port), which the flags change.
    listeners: str | None = None
    advertised_listeners: str | None = None
    sasl_users: list[tuple[str, str]] = field(default_factory=list, repr=False)  # --sasl-user NAME:PASSWORD
    authorizer_enabled: bool = False  # authorizer.class.name (any value) or --acl
    super_users: list[str] = field(default_factory=list)  # super.users, ';'-separated principals
    allow_everyone_if_no_acl_found: bool = False  # allow.everyone.if.no.acl.found

    @property
    def advertised(self) -> str:
        return self.advertised_host or self.host


def _bool(v: str) -> bool:
    v = v.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"expected true or false, got {v!r}")
    return v == "true"


def _fsync(v: str) -> str:
    if v not in ("always", "interval", "never"):
        raise ValueError(f"expected always, interval or never, got {v!r}")
    return v


def parse_ip_overrides(v: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:N`` or ``ip:N``, comma-separated (Kafka's
    SocketServerConfigs.MAX_CONNECTIONS_PER_IP_OVERRIDES_CONFIG)."""
    out = {}
    for entry in v.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, count = entry.rpartition(":")
        if not sep or not host.strip():
            raise ValueError(f"expected host:count, got {entry!r}")
        out[host.strip()] = int(count)
    return out


def _ip_overrides(v: str) -> str:
    parse_ip_overrides(v)
    return v.strip()


# Kafka key -> (BrokerConfig field, parser)
BROKER_KEYS: dict[str, tuple[str, object]] = {
    "node.id": ("node_id", int),
    "broker.id": ("node_id", int),
    "cluster.id": ("cluster_id", str),
    "broker.rack": ("rack", lambda v: v.strip() or None),
    "num.partitions": ("num_partitions", int),
    "default.replication.factor": ("default_replication_factor", int),
    "replica.lag.time.max.ms": ("replica_lag_time_max_ms", int),
    "replica.fetch.wait.max.ms": ("replica_fetch_wait_max_ms", int),
    "replica.fetch.backoff.ms": ("replica_fetch_backoff_ms", int),
    "replica.fetch.max.bytes": ("replica_fetch_max_bytes", int),
    "replication.quota.window.num": ("replication_quota_window_num", int),
    "replication.quota.window.size.seconds": ("replication_quota_window_size_seconds", int),
    "replica.fetch.response.max.bytes": ("replica_fetch_response_max_bytes", int),
    "replica.socket.timeout.ms": ("replica_socket_timeout_ms", int),
    "replica.selector.class": ("replica_selector_class", parse_selector),
    "replica.high.watermark.checkpoint.interval.ms": ("replica_high_watermark_checkpoint_interval_ms", int),
    "auto.leader.rebalance.enable": ("auto_leader_rebalance_enable", _bool),
    "leader.imbalance.check.interval.seconds": ("leader_imbalance_check_interval_seconds", float),
    "leader.imbalance.per.broker.percentage": ("leader_imbalance_per_broker_percentage", int),
    "auto.create.topics.enable": ("auto_create_topics_enable", _bool),
    "message.max.bytes": ("message_max_bytes", int),
    "socket.request.max.bytes": ("socket_request_max_bytes", int),
    "controller.max.records.per.batch": ("controller_max_records_per_batch", int),
    "queued.max.request.bytes": ("queued_max_request_bytes", int),
    "sasl.server.max.receive.size": ("sasl_server_max_receive_size", int),
    "connection.failed.authentication.delay.ms": ("connection_failed_authentication_delay_ms", int),
    "connections.max.idle.ms": ("connections_max_idle_ms", int),
    "max.connections": ("max_connections", int),
    "max.connections.per.ip": ("max_connections_per_ip", int),
    "max.connections.per.ip.overrides": ("max_connections_per_ip_overrides", _ip_overrides),
    "max.connection.creation.rate": ("max_connection_creation_rate", int),
    "quota.window.num": ("quota_window_num", int),
    "quota.window.size.seconds": ("quota_window_size_seconds", int),
    "fetch.max.bytes": ("fetch_max_bytes", int),
    "max.request.partition.size.limit": ("max_request_partition_size_limit", int),
    "telemetry.max.bytes": ("telemetry_max_bytes", int),
    "log.segment.bytes": ("log_segment_bytes", int),
    "log.message.timestamp.type": ("log_message_timestamp_type", str),
    "log.retention.check.interval.ms": ("log_retention_check_interval_ms", int),
    "log.cleaner.backoff.ms": ("log_cleaner_backoff_ms", int),
    "producer.id.expiration.ms": ("producer_id_expiration_ms", int),
    "log.dirs": ("data_dir", lambda v: v.split(",")[0].strip()),
    "log.dir": ("data_dir", str),
    "group.initial.rebalance.delay.ms": ("group_initial_rebalance_delay_ms", int),
    "group.min.session.timeout.ms": ("group_min_session_timeout_ms", int),
    "group.max.session.timeout.ms": ("group_max_session_timeout_ms", int),
    "group.max.size": ("group_max_size", int),
    "group.consumer.session.timeout.ms": ("group_consumer_session_timeout_ms", int),
    "group.consumer.min.session.timeout.ms": ("group_consumer_min_session_timeout_ms", int),
    "group.consumer.max.session.timeout.ms": ("group_consumer_max_session_timeout_ms", int),
    "group.consumer.heartbeat.interval.ms": ("group_consumer_heartbeat_interval_ms", int),
    "group.consumer.min.heartbeat.interval.ms": ("group_consumer_min_heartbeat_interval_ms", int),
    "group.consumer.max.heartbeat.interval.ms": ("group_consumer_max_heartbeat_interval_ms", int),
    "group.consumer.max.size": ("group_consumer_max_size", int),
    "group.consumer.assignors": ("group_consumer_assignors", str),
    "group.consumer.migration.policy": ("group_consumer_migration_policy", lambda v: v.strip().lower()),
    "group.share.session.timeout.ms": ("group_share_session_timeout_ms", int),
    "group.share.min.session.timeout.ms": ("group_share_min_session_timeout_ms", int),
    "group.share.max.session.timeout.ms": ("group_share_max_session_timeout_ms", int),
    "group.share.heartbeat.interval.ms": ("group_share_heartbeat_interval_ms", int),
    "group.share.min.heartbeat.interval.ms": ("group_share_min_heartbeat_interval_ms", int),
    "group.share.max.heartbeat.interval.ms": ("group_share_max_heartbeat_interval_ms", int),
    "group.share.max.size": ("group_share_max_size", int),
    "group.share.max.share.sessions": ("group_share_max_share_sessions", int),
    "group.share.record.lock.duration.ms": ("group_share_record_lock_duration_ms", int),
    "group.share.min.record.lock.duration.ms": ("group_share_min_record_lock_duration_ms", int),
    "group.share.max.record.lock.duration.ms": ("group_share_max_record_lock_duration_ms", int),
    "group.share.delivery.count.limit": ("group_share_delivery_count_limit", int),
    "group.share.min.delivery.count.limit": ("group_share_min_delivery_count_limit", int),
    "group.share.max.delivery.count.limit": ("group_share_max_delivery_count_limit", int),
    "group.share.partition.max.record.locks": ("group_share_partition_max_record_locks", int),
    "group.share.min.partition.max.record.locks": ("group_share_min_partition_max_record_locks", int),
    "group.share.max.partition.max.record.locks": ("group_share_max_partition_max_record_locks", int),
    "group.share.assignors": ("group_share_assignors", str),
    "offsets.retention.minutes": ("offsets_retention_minutes", int),
    "offsets.retention.check.interval.ms": ("offsets_retention_check_interval_ms", int),
    "transaction.max.timeout.ms": ("transaction_max_timeout_ms", int),
    "offsets.topic.num.partitions": ("offsets_topic_num_partitions", int),
    "offsets.topic.replication.factor": ("offsets_topic_replication_factor", int),
    "transaction.state.log.num.partitions": ("transaction_state_log_num_partitions", int),
    "transaction.state.log.replication.factor": ("transaction_state_log_replication_factor", int),
    "share.coordinator.state.topic.num.partitions": ("share_coordinator_state_topic_num_partitions", int),
    "share.coordinator.state.topic.replication.factor": ("share_coordinator_state_topic_replication_factor", int),
    "share.coordinator.snapshot.update.records.per.snapshot": (
        "share_coordinator_snapshot_update_records_per_snapshot", int),
    "share.coordinator.state.topic.prune.interval.ms": ("share_coordinator_state_topic_prune_interval_ms", int),
    "transactional.id.expiration.ms": ("transactional_id_expiration_ms", int),
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": (
        "transaction_abort_timed_out_transaction_cleanup_interval_ms", int),
    "kbroker.fsync": ("fsync", _fsync),
    "kbroker.storage": ("storage", str),
    "kbroker.schema.registry.port": ("schema_registry_port", int),
    "kbroker.schema.registry.host": ("schema_registry_host", str),
    "schema.compatibility.level": ("schema_compatibility_level", lambda v: v.strip().upper()),
}

# The cluster's database URL (brokers as processes, postgres_controller.py). Not a BROKER_KEYS entry, and not
# kept in ``settings``: DescribeConfigs lists both, and the URL may carry a password.
CLUSTER_URL_KEY = "kbroker.cluster.url"

# A listener's own connection limits, besides the broker's (Kafka's ConnectionQuotas per listener):
# group 1 the listener, group 2 which limit.
LISTENER_MAX_CONNECTIONS = re.compile(r"^listener\.name\.([^.]+)\.(max\.connections|max\.connection\.creation\.rate)$")


def listener_limits(config: BrokerConfig, match: re.Match) -> dict[str, int]:
    """The dict of ``config`` a LISTENER_MAX_CONNECTIONS match sets."""
    if match.group(2) == "max.connections":
        return config.listener_max_connections
    return config.listener_max_connection_creation_rate

# Broker keys that set a topic config's default, including Kafka's coarser retention synonyms.
TOPIC_DEFAULT_KEYS: dict[str, str] = {d.broker_key: name for name, d in TOPIC_CONFIGS.items() if d.broker_key}
RETENTION_SYNONYMS = {"log.retention.hours": 3600000, "log.retention.minutes": 60000, "log.retention.ms": 1}
ROLL_SYNONYMS = {"log.roll.hours": 3600000, "log.roll.ms": 1}

# Keys a Kafka configuration carries that have no effect on a single kbroker.
NO_EFFECT_KEYS = frozenset({
    "process.roles", "controller.quorum.voters", "controller.quorum.bootstrap.servers", "controller.listener.names",
    "transaction.state.log.min.isr", "num.network.threads", "num.io.threads", "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes", "num.recovery.threads.per.data.dir", "zookeeper.connect",
    "zookeeper.connection.timeout.ms", "min.insync.replicas",
    "num.replica.fetchers", "confluent.support.metrics.enable", "delete.topic.enable",
    "log.cleaner.enable", "log.cleaner.threads", "group.coordinator.rebalance.protocols", "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr", "metadata.log.dir",
    "sasl.mechanism.controller.protocol",
})


def _apply_listeners(config: BrokerConfig, settings: dict[str, str]) -> None:
    """``listeners=PLAINTEXT://127.0.0.1:9092,...``: every listener is opened (security/listeners.py); the
    first one that is not a KRaft controller listener gives host and port, and its entry in
    ``advertised.listeners`` (by name, else the first entry) the advertised host and port."""
    first = None
    if "listeners" in settings:
        config.listeners = settings["listeners"].strip()
        entries = parse_endpoints(config.listeners)
        controller = controller_listener_names(settings)
        first, host, port = ([e for e in entries if e[0] not in controller] or entries)[0]
        config.host = host or "0.0.0.0"
        config.port = port
    if "advertised.listeners" in settings:
        config.advertised_listeners = settings["advertised.listeners"].strip()
        entries = parse_endpoints(config.advertised_listeners)
        if entries:
            _, host, port = next((e for e in entries if e[0] == first), entries[0])
            config.advertised_host = host or None
            config.advertised_port = port


def apply_settings(config: BrokerConfig, settings: dict[str, str]) -> list[str]:
    """Apply Kafka-named settings; returns the unknown keys (already reported with a warning)."""
    unknown = []
    retention: tuple[int, int] | None = None  # (precedence, ms)
    roll: tuple[int, int] | None = None
    for key, value in settings.items():
        value = value.strip()
        try:
            if key == CLUSTER_URL_KEY:
                config.cluster_url = value
                continue
            if key in BROKER_KEYS:
                attr, parse = BROKER_KEYS[key]
                setattr(config, attr, parse(value))
            elif key in RETENTION_SYNONYMS:
                prec = {"log.retention.hours": 0, "log.retention.minutes": 1, "log.retention.ms": 2}[key]
                if retention is None or prec > retention[0]:
                    retention = (prec, int(value) * RETENTION_SYNONYMS[key] if int(value) >= 0 else -1)
            elif key in ROLL_SYNONYMS:
                prec = {"log.roll.hours": 0, "log.roll.ms": 1}[key]
                if roll is None or prec > roll[0]:
                    roll = (prec, int(value) * ROLL_SYNONYMS[key])
            elif key in TOPIC_DEFAULT_KEYS:
                topic_key = TOPIC_DEFAULT_KEYS[key]
                from .topic_config import validate_topic_configs

                validate_topic_configs({topic_key: value})
                config.topic_defaults[topic_key] = value
                if key == "message.max.bytes":
                    config.message_max_bytes = int(value)
            elif (m := LISTENER_MAX_CONNECTIONS.match(key)) is not None:
                listener_limits(config, m)[m.group(1).upper()] = int(value)
            elif key in ("listeners", "advertised.listeners"):
                parse_endpoints(value)  # applied below, once every key is known
            elif key == "authorizer.class.name":
                config.authorizer_enabled = bool(value)
            elif key == "super.users":
                config.super_users = [p.strip() for p in value.split(";") if p.strip()]
            elif key == "allow.everyone.if.no.acl.found":
                config.allow_everyone_if_no_acl_found = _bool(value)
            elif is_security_key(key):
                check_security_setting(key, value)  # read by kbroker.security when listeners start
            elif key in NO_EFFECT_KEYS:
                log.debug("setting %s has no effect on a single kbroker", key)
            else:
                unknown.append(key)
                log.warning("unknown setting %s (ignored)", key)
                continue
        except Exception as e:  # a bad value is a configuration error, said at start-up
            if is_sensitive(key):  # never echo a secret (SecurityConfigError messages quote none)
                why = e if isinstance(e, SecurityConfigError) else e.__class__.__name__
                raise ValueError(f"invalid value for {key} ({why})") from None
            raise ValueError(f"invalid value for {key}: {value!r} ({e})") from None
        config.settings[key] = value
    try:
        _apply_listeners(config, settings)
    except ValueError as e:
        raise ValueError(f"invalid listeners: {e}") from None
    if retention is not None:
        config.topic_defaults["retention.ms"] = str(retention[1])
    if roll is not None:
        config.topic_defaults["segment.ms"] = str(roll[1])
    check_limits(config)
    for key, topic_key in (("message.max.bytes", "max.message.bytes"), ("log.segment.bytes", "segment.bytes"),
                           ("log.message.timestamp.type", "message.timestamp.type")):
        if key in settings:
            config.topic_defaults[topic_key] = settings[key].strip()
    return unknown


def check_limits(c: BrokerConfig) -> None:
    """KafkaConfig.validateValues's rules for the connection, request and replica fetch limits, with its messages."""
    if not (c.queued_max_request_bytes <= 0 or c.queued_max_request_bytes >= c.socket_request_max_bytes):
        raise ValueError("queued.max.request.bytes must be larger or equal to socket.request.max.bytes")
    if c.max_connections_per_ip == 0 and not parse_ip_overrides(c.max_connections_per_ip_overrides):
        raise ValueError("max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides "
                         "property is set.")
    if c.connections_max_idle_ms >= 0 and \
            c.connection_failed_authentication_delay_ms >= c.connections_max_idle_ms:
        raise ValueError("connection.failed.authentication.delay.ms=%d should always be less than "
                         "connections.max.idle.ms=%d to prevent failed authentication responses from timing out"
                         % (c.connection_failed_authentication_delay_ms, c.connections_max_idle_ms))
    if c.replica_fetch_wait_max_ms > c.replica_socket_timeout_ms:
        raise ValueError("replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms to "
                         "prevent unnecessary socket timeouts")
    if c.replica_fetch_wait_max_ms > c.replica_lag_time_max_ms:
        # else a caught-up follower of an idle partition, in its long poll on a leader that has just taken
        # over, can fall out of the new leader's ISR before its next fetch arrives
        raise ValueError("replica.fetch.wait.max.ms should always be less than or equal to "
                         "replica.lag.time.max.ms to prevent frequent changes in ISR")


def read_properties(path: str) -> dict[str, str]:
    """A Java properties file as Kafka's server.properties uses it: ``key=value`` or ``key: value``,
    ``#`` and ``!`` comments, backslash continuations."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        pending = ""
        for raw in fh:
            line = raw.rstrip("\n").rstrip("\r")
            if pending:
                line = pending + line.lstrip()
                pending = ""
            stripped = line.strip()
            if not stripped or stripped[0] in "#!":
                continue
            if stripped.endswith("\\") and not stripped.endswith("\\\\"):
                pending = stripped[:-1]
                continue
            for i, ch in enumerate(stripped):
                if ch in "=:":
                    out[stripped[:i].strip()] = stripped[i + 1:].strip()
                    break
            else:
                out[stripped] = ""
    return out


# Environment variables of the official image that are not settings.
_ENV_NOT_SETTINGS = frozenset({"KAFKA_HOME", "KAFKA_OPTS", "KAFKA_HEAP_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS",
                               "KAFKA_LOG4J_OPTS", "KAFKA_JMX_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_DEBUG",
                               "KAFKA_VERSION", "KAFKA_LOG4J_LOGGERS", "KAFKA_LOG4J_ROOT_LOGLEVEL"})


def env_key(var: str) -> str:
    """``KAFKA_NUM_PARTITIONS`` -> ``num.partitions``, as the Kafka image maps them:
    ``___`` is ``-``, ``__`` is ``_``, ``_`` is ``.``."""
    s = var[len("KAFKA_"):].lower()
    return s.replace("___", "\x00").replace("__", "\x01").replace("_", ".").replace("\x00", "-").replace("\x01", "_")


def settings_from_env(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {env_key(k): v for k, v in environ.items()
            if k.startswith("KAFKA_") and k not in _ENV_NOT_SETTINGS and len(k) > len("KAFKA_")}
