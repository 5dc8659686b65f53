"""Replication quotas (KIP-73): throttled replication traffic during a reassignment, as Kafka's
ReplicationQuotaManager does it.

Configs, as Kafka names them:

- broker, dynamic: ``leader.replication.throttled.rate`` (bytes per second this broker serves to throttled
  followers) and ``follower.replication.throttled.rate`` (bytes per second it fetches for its own throttled
  replicas); unset: unlimited (Kafka's Long.MAX_VALUE).
- topic: ``leader.replication.throttled.replicas`` / ``follower.replication.throttled.replicas``: ``*`` (every
  partition of the topic, on every broker) or ``partition:broker`` pairs; a broker throttles the partitions
  listed with its own id (Kafka's TopicConfigHandler.parseThrottledPartitions). kafka-reassign-partitions
  lists a moving partition's current replicas on the leader side and its new ones on the follower side.
- broker, static: ``replication.quota.window.num`` (11) samples of ``replication.quota.window.size.seconds``
  (1) make the rate's window (connection_quotas.RateSensor, Kafka's Rate over a SampledStat).

The leader (handlers/fetch.py): a follower's fetch of a partition throttled here, from a follower that is not
in the ISR, is answered with no records while the leader's rate is over its quota; the bytes of throttled
partitions it does answer are recorded. The follower (replica_fetcher.py): a throttled partition it is not in
sync for (its log end short of the leader's high watermark) is left out of its fetch while its rate is over its
quota; the bytes fetched for throttled partitions are recorded. Replicas in sync are never held back.

One writer: everything runs on the broker's event loop.
"""

from __future__ import annotations

import functools
import logging
import time

from .connection_quotas import RateSensor

log = logging.getLogger("kbroker.replication")

ALL_PARTITIONS = None  # "*": every partition of the topic is throttled
LEADER_RATE, FOLLOWER_RATE = "leader.replication.throttled.rate", "follower.replication.throttled.rate"
LEADER_REPLICAS, FOLLOWER_REPLICAS = ("leader.replication.throttled.replicas",
                                      "follower.replication.throttled.replicas")


@functools.lru_cache(maxsize=1024)
def throttled_partitions(value: str, node_id: int) -> frozenset | None:
    """The partitions a ``*.replication.throttled.replicas`` value throttles on broker ``node_id``:
    ALL_PARTITIONS for ``*``, else those listed as ``partition:node_id`` (empty for anything unreadable)."""
    value = value.strip()
    if value == "*":
        return ALL_PARTITIONS
    out = set()
    for item in value.split(","):
        parts = item.split(":")
        if len(parts) == 2 and parts[0].strip().isdigit() and parts[1].strip().isdigit() \
                and int(parts[1]) == node_id:
            out.add(int(parts[0]))
    return frozenset(out)


class ReplicationQuota:
    """One side's quota (Kafka's ReplicationQuotaManager for LEADER or FOLLOWER replication): which
    partitions it throttles, whether its rate is over the quota, and the bytes recorded against it."""

    def __init__(self, node_id: int, rate_key: str, replicas_key: str, config_value, clock=time.monotonic):
        """``config_value(key)``: the broker's effective config value (None: unset)."""
        self.node_id = node_id
        self.rate_key, self.replicas_key = rate_key, replicas_key
        self._config_value = config_value
        self._clock = clock
        self._sensor: RateSensor | None = None
        self.recorded_bytes = 0  # in all (reports and tests)

    def bound(self) -> float | None:
        """The quota in bytes per second (None: unlimited)."""
        raw = self._config_value(self.rate_key)
        if raw is None or not str(raw).strip():
            return None
        try:
            return float(raw)
        except ValueError:
            return None

    def is_throttled(self, topic, index: int) -> bool:
        """Whether partition ``index`` of ``topic`` (topics.Topic) is throttled on this broker."""
        value = topic.configs.get(self.replicas_key)
        if not value:
            return False
        partitions = throttled_partitions(value, self.node_id)
        return partitions is ALL_PARTITIONS or index in partitions

    def is_quota_exceeded(self) -> bool:
        bound = self.bound()
        if bound is None or self._sensor is None:
            return False
        return self._sensor.rate(self._now_ms()) > bound

    def record(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        if self._sensor is None:
            samples = self._int_config("replication.quota.window.num", 11)
            window_s = self._int_config("replication.quota.window.size.seconds", 1)
            self._sensor = RateSensor(samples, window_s * 1000)
        self._sensor.record(float(nbytes), self._now_ms())
        self.recorded_bytes += nbytes

    def _int_config(self, key: str, default: int) -> int:
        raw = self._config_value(key)
        try:
            return max(1, int(raw)) if raw is not None else default
        except ValueError:
            return default

    def _now_ms(self) -> float:
        return self._clock() * 1000.0


class ReplicationQuotas:
    """A broker's two replication quotas: ``leader`` (what it serves to followers) and ``follower`` (what it
    fetches)."""

    def __init__(self, node_id: int, config_value, clock=time.monotonic):
        self.leader = ReplicationQuota(node_id, LEADER_RATE, LEADER_REPLICAS, config_value, clock)
        self.follower = ReplicationQuota(node_id, FOLLOWER_RATE, FOLLOWER_REPLICAS, config_value, clock)
