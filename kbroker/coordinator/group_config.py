"""The broker configs the group coordinator reads (Kafka's GroupCoordinatorConfig and OffsetConfig)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .assignors import ASSIGNORS

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

    def __post_init__(self) -> None:
        """Kafka's GroupCoordinatorConfig checks: each consumer-protocol timeout within its bounds, the heartbeat
        interval below the session timeout, known assignors."""
        for name in ("session_timeout_ms", "heartbeat_interval_ms"):
            lo = getattr(self, f"group_consumer_min_{name}")
            hi = getattr(self, f"group_consumer_max_{name}")
            value = getattr(self, f"group_consumer_{name}")
            if not lo <= value <= hi:
                raise ValueError(f"group.consumer.{name.replace('_', '.')} must be between "
                                 f"group.consumer.min.{name.replace('_', '.')} ({lo}) and "
                                 f"group.consumer.max.{name.replace('_', '.')} ({hi}), not {value}")
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
            if name == "group_consumer_assignors":
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
