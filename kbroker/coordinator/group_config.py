"""The broker configs the group coordinator reads (Kafka's GroupCoordinatorConfig and OffsetConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


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

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> GroupConfig:
        """From broker properties under Kafka's names ("group.max.size"); other keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in config.items():
            name = key.replace(".", "_")
            if name in known:
                values[name] = int(value)
        return cls(**values)
