"""The broker configs the group coordinator reads (Kafka's GroupCoordinatorConfig, OffsetConfig and
ShareGroupConfig), and the group configs a GROUP config resource may set (Kafka's GroupConfig)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .assignors import ASSIGNORS, SHARE_ASSIGNORS
from .share_group_listener import ShareGroupSettings

MIGRATION_POLICIES = ("disabled", "upgrade", "downgrade", "bidirectional")


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """The broker configs the coordinator reads; attribute names are Kafka's with dots as underscores."""

    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    # Kafka's default is 3000; kbroker serves CI and tests, where waiting 3 s for more members only costs time.
    group_initial_rebalance_delay_ms: int = 0
    group_max_size: int = 2**31 - 1
    offsets_retention_minutes: int = 10_080
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4_096
    # The consumer group protocol (KIP-848): the broker, not the client, sets the session and heartbeat interval.
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_min_session_timeout_ms: int = 45_000
    group_consumer_max_session_timeout_ms: int = 60_000
    group_consumer_heartbeat_interval_ms: int = 5_000
    group_consumer_min_heartbeat_interval_ms: int = 5_000
    group_consumer_max_heartbeat_interval_ms: int = 15_000
    group_consumer_max_size: int = 2**31 - 1
    # The server assignors, the first one the default (Kafka's group.consumer.assignors: uniform, range).
    group_consumer_assignors: tuple[str, ...] = ("uniform", "range")
    # Classic members in a consumer group and back (KIP-848's online upgrade and downgrade): Kafka's
    # group.consumer.migration.policy, one of disabled, upgrade, downgrade, bidirectional.
    group_consumer_migration_policy: str = "bidirectional"
    # Share groups (KIP-932), Kafka 4.4's defaults and bounds (ShareGroupConfig, GroupCoordinatorConfig).
    group_share_session_timeout_ms: int = 45_000
    group_share_min_session_timeout_ms: int = 45_000
    group_share_max_session_timeout_ms: int = 60_000
    group_share_heartbeat_interval_ms: int = 5_000
    group_share_min_heartbeat_interval_ms: int = 5_000
    group_share_max_heartbeat_interval_ms: int = 15_000
    group_share_max_size: int = 200
    group_share_record_lock_duration_ms: int = 30_000
    group_share_min_record_lock_duration_ms: int = 15_000
    group_share_max_record_lock_duration_ms: int = 60_000
    group_share_delivery_count_limit: int = 5
    group_share_min_delivery_count_limit: int = 2
    group_share_max_delivery_count_limit: int = 10
    group_share_partition_max_record_locks: int = 2_000
    group_share_min_partition_max_record_locks: int = 100
    group_share_max_partition_max_record_locks: int = 4_000
    group_share_assignors: tuple[str, ...] = ("simple",)

    def __post_init__(self) -> None:
        """Kafka's GroupCoordinatorConfig checks: each consumer-protocol timeout within its bounds, the heartbeat
        interval below the session timeout, known assignors."""
        bounded = [("consumer", "session_timeout_ms"), ("consumer", "heartbeat_interval_ms"),
                   ("share", "session_timeout_ms"), ("share", "heartbeat_interval_ms"),
                   ("share", "record_lock_duration_ms"), ("share", "delivery_count_limit"),
                   ("share", "partition_max_record_locks")]
        for kind, name in bounded:
            lo = getattr(self, f"group_{kind}_min_{name}")
            hi = getattr(self, f"group_{kind}_max_{name}")
            value = getattr(self, f"group_{kind}_{name}")
            if not lo <= value <= hi:
                dotted = name.replace('_', '.')
                raise ValueError(f"group.{kind}.{dotted} must be between group.{kind}.min.{dotted} ({lo}) and "
                                 f"group.{kind}.max.{dotted} ({hi}), not {value}")
        if self.group_share_heartbeat_interval_ms >= self.group_share_session_timeout_ms:
            raise ValueError("group.share.heartbeat.interval.ms must be less than group.share.session.timeout.ms")
        unknown_share = [a for a in self.group_share_assignors if a not in SHARE_ASSIGNORS]
        if len(self.group_share_assignors) != 1 or unknown_share:
            raise ValueError(f"group.share.assignors: one of {', '.join(SHARE_ASSIGNORS)}, "
                             f"not {','.join(self.group_share_assignors)}")
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms:
            raise ValueError("group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms")
        if self.group_consumer_migration_policy not in MIGRATION_POLICIES:
            raise ValueError(f"group.consumer.migration.policy must be one of {', '.join(MIGRATION_POLICIES)}")
        unknown = [a for a in self.group_consumer_assignors if a not in ASSIGNORS]
        if not self.group_consumer_assignors or unknown:
            raise ValueError(f"group.consumer.assignors: unknown {unknown}; known: {', '.join(ASSIGNORS)}")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> GroupConfig:
        """From broker properties under Kafka's names ("group.max.size"); other keys are ignored."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in config.items():
            name = key.replace(".", "_")
            if name in ("group_consumer_assignors", "group_share_assignors"):
                values[name] = parse_assignors(value)
            elif name == "group_consumer_migration_policy":
                values[name] = str(value).strip().lower()
            elif name in known:
                values[name] = int(value)
        return cls(**values)


def parse_assignors(value: str | Iterable[str]) -> tuple[str, ...]:
    """"uniform,range" or a list; Kafka also takes class names, of which the last dotted part names ours
    (org.apache.kafka.coordinator.group.assignor.UniformAssignor -> uniform)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        name = item.strip()
        if not name:
            continue
        short = name.rsplit(".", 1)[-1]
        if short.endswith("Assignor"):
            short = short[: -len("Assignor")].lower()
        out.append(short)
    return tuple(out)


# --- group configs (GROUP config resources: IncrementalAlterConfigs, DescribeConfigs; Kafka's GroupConfig) -----
#
# Kafka 4.4 keeps a group's configs in the metadata log (ConfigRecord of a GROUP resource); kbroker's controller
# keeps them (Controller.group_configs). A key not set for the group takes the broker's group.share.* setting.
# kbroker serves the share group keys and the consumer-protocol (KIP-848) group's session timeout and heartbeat
# interval; the other consumer.* keys and the streams.* keys are refused (not implemented).

SHARE_AUTO_OFFSET_RESET = "share.auto.offset.reset"
SHARE_ISOLATION_LEVEL = "share.isolation.level"
SHARE_RENEW_ACKNOWLEDGE_ENABLE = "share.renew.acknowledge.enable"

CONSUMER_SESSION_TIMEOUT_MS = "consumer.session.timeout.ms"
CONSUMER_HEARTBEAT_INTERVAL_MS = "consumer.heartbeat.interval.ms"

# group config -> (type, the GroupConfig attribute giving its default and whose min/max bound it, or the default)
GROUP_CONFIGS: dict[str, tuple[str, str]] = {
    CONSUMER_SESSION_TIMEOUT_MS: ("int", "group_consumer_session_timeout_ms"),
    CONSUMER_HEARTBEAT_INTERVAL_MS: ("int", "group_consumer_heartbeat_interval_ms"),
    "share.session.timeout.ms": ("int", "group_share_session_timeout_ms"),
    "share.heartbeat.interval.ms": ("int", "group_share_heartbeat_interval_ms"),
    "share.record.lock.duration.ms": ("int", "group_share_record_lock_duration_ms"),
    "share.delivery.count.limit": ("int", "group_share_delivery_count_limit"),
    "share.partition.max.record.locks": ("int", "group_share_partition_max_record_locks"),
    SHARE_AUTO_OFFSET_RESET: ("string", "latest"),
    SHARE_ISOLATION_LEVEL: ("string", "read_uncommitted"),
    SHARE_RENEW_ACKNOWLEDGE_ENABLE: ("boolean", "true"),  # Kafka 4.4 GroupConfig.SHARE_RENEW_ACKNOWLEDGE_ENABLE_DEFAULT
}
_KAFKA_ONLY_GROUP_CONFIGS = ("consumer.assignment.interval.ms", "consumer.assignor.offload.enable",
                             "streams.session.timeout.ms", "streams.heartbeat.interval.ms",
                             "streams.num.standby.replicas", "streams.initial.rebalance.delay.ms")


def group_config_default(config: GroupConfig, name: str) -> str:
    kind, source = GROUP_CONFIGS[name]
    return str(getattr(config, source)) if kind == "int" else source


def _valid_auto_offset_reset(value: str) -> bool:
    """latest, earliest, or by_duration:<ISO-8601 duration> (KIP-1106), as Kafka's ShareGroupAutoOffsetResetStrategy."""
    v = value.strip().lower()
    if v in ("latest", "earliest"):
        return True
    if not v.startswith("by_duration:"):
        return False
    return re.fullmatch(r"p(?:\d+d)?(?:t(?:\d+h)?(?:\d+m)?(?:\d+(?:\.\d+)?s)?)?", v[len("by_duration:"):]) is not None \
        and v[len("by_duration:"):] not in ("p", "pt")


def validate_group_configs(config: GroupConfig, configs: Mapping[str, str]) -> None:
    """Kafka's GroupConfig.validate: known names, types, the broker's bounds; raises ValueError with Kafka's
    message (the handler answers INVALID_CONFIG)."""
    for name in configs:
        if name in _KAFKA_ONLY_GROUP_CONFIGS:
            raise ValueError(f"Group config {name} is not supported by kbroker (only the share group configs, "
                             f"{CONSUMER_SESSION_TIMEOUT_MS} and {CONSUMER_HEARTBEAT_INTERVAL_MS} are)")
        if name not in GROUP_CONFIGS:
            raise ValueError(f"Unknown group config name: {name}")
    _validate_consumer_configs(config, configs)
    values: dict[str, Any] = {}
    for name, (kind, source) in GROUP_CONFIGS.items():
        if name.startswith("consumer."):
            continue
        raw = configs.get(name, group_config_default(config, name))
        if kind == "int":
            try:
                values[name] = int(str(raw).strip())
            except ValueError:
                raise ValueError(f"Invalid value {raw} for configuration {name}: Not a number of type INT") from None
            lo = getattr(config, source.replace("group_share_", "group_share_min_"))
            hi = getattr(config, source.replace("group_share_", "group_share_max_"))
            broker_key = source.replace("_", ".")
            if values[name] < lo:
                raise ValueError(f"{name} must be greater than or equal to "
                                 f"{broker_key.replace('group.share.', 'group.share.min.')}")
            if values[name] > hi:
                raise ValueError(f"{name} must be less than or equal to "
                                 f"{broker_key.replace('group.share.', 'group.share.max.')}")
        elif kind == "boolean":
            if str(raw).strip().lower() not in ("true", "false"):
                raise ValueError(f"Invalid value {raw} for configuration {name}: Expected value to be either true "
                                 f"or false")
        elif name == SHARE_AUTO_OFFSET_RESET and not _valid_auto_offset_reset(str(raw)):
            raise ValueError(f"Invalid value {raw} for configuration {name}: the value must be either 'earliest', "
                             f"'latest' or of the format 'by_duration:<PnDTnHnMn.nS.>'.")
        elif name == SHARE_ISOLATION_LEVEL and str(raw).strip().lower() not in ("read_committed",
                                                                              "read_uncommitted"):
            raise ValueError(f"Invalid value {raw} for configuration {name}: String must be one of: "
                             f"read_committed, read_uncommitted")
    if values["share.session.timeout.ms"] <= values["share.heartbeat.interval.ms"]:
        raise ValueError("share.session.timeout.ms must be greater than share.heartbeat.interval.ms")


def _validate_consumer_configs(config: GroupConfig, configs: Mapping[str, str]) -> None:
    """Kafka 4.4's GroupConfig.validateValues for the consumer-protocol keys: only the keys the group sets are
    checked, each within the broker's group.consumer.min/max bounds, and the session timeout above the heartbeat
    interval (a key the group does not set counts at the broker's group.consumer.* setting)."""
    values = {}
    for name in (CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS):
        if name not in configs:
            continue
        raw = configs[name]
        try:
            values[name] = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"Invalid value {raw} for configuration {name}: Not a number of type INT") from None
        source = GROUP_CONFIGS[name][1]
        lo = getattr(config, source.replace("group_consumer_", "group_consumer_min_"))
        hi = getattr(config, source.replace("group_consumer_", "group_consumer_max_"))
        if not lo <= values[name] <= hi:
            raise ValueError(f"{name} must be in the range {lo} to {hi} inclusive.")
    if values:
        session = values.get(CONSUMER_SESSION_TIMEOUT_MS, config.group_consumer_session_timeout_ms)
        heartbeat = values.get(CONSUMER_HEARTBEAT_INTERVAL_MS, config.group_consumer_heartbeat_interval_ms)
        if session <= heartbeat:
            raise ValueError(f"{CONSUMER_SESSION_TIMEOUT_MS} must be greater than {CONSUMER_HEARTBEAT_INTERVAL_MS}")


@dataclass(frozen=True, slots=True)
class ConsumerGroupSettings:
    """A consumer-protocol group's effective session timeout and heartbeat interval (its members get them)."""

    session_timeout_ms: int
    heartbeat_interval_ms: int


def consumer_group_settings(config: GroupConfig, overrides: Mapping[str, str]) -> ConsumerGroupSettings:
    """A consumer-protocol group's settings: its group configs over the broker's group.consumer.* settings."""
    return ConsumerGroupSettings(
        session_timeout_ms=int(overrides.get(CONSUMER_SESSION_TIMEOUT_MS, config.group_consumer_session_timeout_ms)),
        heartbeat_interval_ms=int(overrides.get(CONSUMER_HEARTBEAT_INTERVAL_MS,
                                                config.group_consumer_heartbeat_interval_ms)))


def share_group_settings(config: GroupConfig, overrides: Mapping[str, str]) -> ShareGroupSettings:
    """A share group's effective settings: its group configs over the broker's group.share.* settings."""
    def value(name: str) -> str:
        return str(overrides.get(name, group_config_default(config, name))).strip()

    return ShareGroupSettings(
        auto_offset_reset=value(SHARE_AUTO_OFFSET_RESET).lower(),
        isolation_level=value(SHARE_ISOLATION_LEVEL).lower(),
        record_lock_duration_ms=int(value("share.record.lock.duration.ms")),
        delivery_count_limit=int(value("share.delivery.count.limit")),
        partition_max_record_locks=int(value("share.partition.max.record.locks")),
        session_timeout_ms=int(value("share.session.timeout.ms")),
        heartbeat_interval_ms=int(value("share.heartbeat.interval.ms")),
        renew_acknowledge_enable=value(SHARE_RENEW_ACKNOWLEDGE_ENABLE).lower() == "true",
    )
