"""Client metrics (KIP-714), as Kafka's ClientMetricsManager, ClientMetricsConfigs and ClientMetricsInstance
serve them: the subscriptions (CLIENT_METRICS config resources), the client instances that ask for them with
GetTelemetrySubscriptions, and the checks on what they push with PushTelemetry.

**Subscriptions.** A CLIENT_METRICS config resource, set with IncrementalAlterConfigs (or AlterConfigs) and
kept by the controller for the whole cluster (``Controller.client_metrics_subscriptions``), has three
configs: ``metrics`` (metric name prefixes, ``*`` for all), ``interval.ms`` (100 to 3600000, default 5
minutes) and ``match`` (``selector=regex`` pairs over client_instance_id, client_id, client_software_name,
client_software_version, client_source_address and client_source_port; every one must fully match, none
means every client). Kafka 4.4 compiles the regexes with java.util.regex (ClientMetricsConfigs, not RE2/J,
which only KIP-848's topic regexes use) and matches with ``matches()``: a full match. Python's ``re`` is the
same kind of backtracking engine (lookarounds, backreferences, possessive quantifiers and atomic groups, which
RE2 refuses, are accepted by both), so it is used here with ``fullmatch``. A pattern is split as Java's
``split("=")`` splits it (trailing empty parts dropped): exactly two parts, or it is illegal, as is a regex
that does not compile ("Illegal client matching pattern: ...", INVALID_CONFIG).

**Client instances.** A GetTelemetrySubscriptions with the zero id gets a fresh client instance id. Each
instance gets the subscriptions that match it: the union of their prefixes (just ``*`` if one has it), the
shortest of their intervals (5 minutes when none matches, with no metrics: the client pushes nothing) and a
subscription id (a CRC32C of the prefixes and the interval, XORed with the instance id's hash, as Kafka
computes it). A change of subscriptions re-evaluates every instance at its next request, so a push with the
old subscription id is UNKNOWN_SUBSCRIPTION_ID and the client asks again. An instance unused for
max(3 intervals, 60 s) is forgotten.

**Checks, in Kafka's order.** GetTelemetrySubscriptions before the push interval has passed since the last
request is THROTTLING_QUOTA_EXCEEDED, unless the last push failed with UNKNOWN_SUBSCRIPTION_ID or
UNSUPPORTED_COMPRESSION_TYPE. PushTelemetry: a zero or reserved instance id is INVALID_REQUEST; after a
terminating push, INVALID_REQUEST; a push before the interval has passed since the last one (and not the
first after a GetTelemetrySubscriptions, nor terminating) THROTTLING_QUOTA_EXCEEDED; another subscription id
UNKNOWN_SUBSCRIPTION_ID; an unknown compression type UNSUPPORTED_COMPRESSION_TYPE; a payload above
``telemetry.max.bytes`` (compressed, or once decompressed) TELEMETRY_TOO_LARGE; one that does not decode as
OTLP MetricsData INVALID_RECORD. Accepted pushes go to ``client_telemetry.TelemetryStore``.
"""

from __future__ import annotations

import re
import struct
import time
import uuid
from dataclasses import dataclass, field

import crc32c

from .errors import ErrorCode, KafkaError
from .records.compression import GZIP, LZ4, NONE, SNAPPY, ZSTD

METRICS, INTERVAL_MS, MATCH = "metrics", "interval.ms", "match"
CONFIG_NAMES = (METRICS, INTERVAL_MS, MATCH)
ALL_METRICS = "*"
DEFAULT_INTERVAL_MS = 5 * 60 * 1000
MIN_INTERVAL_MS, MAX_INTERVAL_MS = 100, 3600000
MATCH_SELECTORS = frozenset({"client_instance_id", "client_id", "client_software_name", "client_software_version",
                             "client_source_address", "client_source_port"})
# What GetTelemetrySubscriptions offers, the preferred first (Kafka's SUPPORTED_COMPRESSION_TYPES).
ACCEPTED_COMPRESSION_TYPES = [ZSTD, LZ4, GZIP, SNAPPY]
KNOWN_COMPRESSION_TYPES = frozenset({NONE, GZIP, SNAPPY, LZ4, ZSTD})
CACHE_EXPIRY_MS = 60 * 1000
RESERVED_IDS = frozenset({uuid.UUID(int=0), uuid.UUID(int=1)})  # Uuid.ZERO_UUID, Uuid.METADATA_TOPIC_ID


def _list(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _illegal(pattern: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {pattern}")


def _split_match(pattern: str) -> tuple[str, str]:
    """ClientMetricsConfigs.parseMatchingPatterns: ``pattern.split("=")``, which drops trailing empty parts,
    must give a selector and a regex."""
    parts = pattern.split("=")
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) != 2 or parts[0].strip() not in MATCH_SELECTORS:
        raise _illegal(pattern)
    return parts[0].strip(), parts[1].strip()


def validate(name: str, configs: dict[str, str]) -> None:
    """ClientMetricsConfigs.validate: KafkaError for an empty name, an unknown key, a bad interval or match."""
    if not name:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Subscription name can't be empty")
    for key in configs:
        if key not in CONFIG_NAMES:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown client metrics configuration: {key}")
    if INTERVAL_MS in configs:
        try:
            interval = int(configs[INTERVAL_MS].strip())
        except ValueError:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {configs[INTERVAL_MS]} for configuration "
                                                       f"{INTERVAL_MS}: Not a number of type INT") from None
        if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid value {interval} for {INTERVAL_MS}, interval must "
                                                        f"be between 100 and 3600000 (1 hour)")
    metrics = _list(configs.get(METRICS))
    if len(set(metrics)) != len(metrics):
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Configuration '{METRICS}' values must not be duplicated.")
    for pattern in _list(configs.get(MATCH)):
        selector, value = _split_match(pattern)
        try:
            re.compile(value)
        except re.error:
            raise _illegal(pattern) from None


@dataclass(frozen=True)
class Subscription:
    name: str
    metrics: frozenset[str]
    interval_ms: int
    match: dict[str, re.Pattern]

    @classmethod
    def parse(cls, name: str, configs: dict[str, str]) -> "Subscription":
        match = {}
        for pattern in _list(configs.get(MATCH)):
            selector, value = _split_match(pattern)
            match[selector] = re.compile(value)
        return cls(name, frozenset(_list(configs.get(METRICS))),
                   int(configs.get(INTERVAL_MS, DEFAULT_INTERVAL_MS)), match)

    def matches(self, attributes: dict[str, str]) -> bool:
        return all(attributes.get(k) is not None and p.fullmatch(attributes[k]) for k, p in self.match.items())


@dataclass
class ClientInstance:
    """One client instance as the broker knows it (Kafka's ClientMetricsInstance)."""
    instance_id: uuid.UUID
    attributes: dict[str, str]  # the match selectors' values for this client
    subscription_id: int
    subscription_version: int
    metrics: list[str]
    push_interval_ms: int
    last_get_ms: int = 0
    last_push_ms: int = 0
    last_used_ms: int = 0
    terminating: bool = False
    last_error: int = ErrorCode.NONE
    subscriptions: list[str] = field(default_factory=list)

    def may_get(self, now_ms: int) -> bool:
        if now_ms - max(self.last_get_ms, self.last_push_ms) >= self.push_interval_ms:
            self.last_get_ms = now_ms
            return True
        return False

    def may_push(self, now_ms: int) -> bool:
        # The first push after a GetTelemetrySubscriptions is accepted whenever it comes: clients jitter the
        # interval (0.5 to 1.5 times it).
        ok = self.last_get_ms > self.last_push_ms or now_ms - self.last_push_ms >= self.push_interval_ms
        if ok:
            self.last_push_ms = now_ms
        return ok


def _java_uuid_hash(u: uuid.UUID) -> int:
    """Kafka's Uuid.hashCode: the two longs XORed, folded to an int."""
    msb, lsb = struct.unpack(">qq", u.bytes)
    h = msb ^ lsb
    return struct.unpack(">i", struct.pack(">I", ((h >> 32) ^ h) & 0xFFFFFFFF))[0]


def subscription_id(metrics: list[str], interval_ms: int, instance_id: uuid.UUID) -> int:
    text = "[" + ", ".join(metrics) + "]" + str(interval_ms)
    crc = struct.unpack(">i", struct.pack(">I", crc32c.crc32c(text.encode())))[0]
    return crc ^ _java_uuid_hash(instance_id)


class ClientMetricsManager:
    """One broker's client instances over the cluster's subscriptions (read from the controller)."""

    def __init__(self, controller, clock=time.monotonic):
        self.controller = controller
        self.clock = clock
        self.instances: dict[uuid.UUID, ClientInstance] = {}
        self._raw: dict[str, dict[str, str]] = {}
        self._subscriptions: list[Subscription] = []
        self.version = 0

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def subscriptions(self) -> list[Subscription]:
        raw = self.controller.client_metrics_subscriptions()
        if raw != self._raw:
            self._raw = raw
            self._subscriptions = [Subscription.parse(n, c) for n, c in sorted(raw.items())]
            self.version += 1
        return self._subscriptions

    def new_instance_id(self) -> uuid.UUID:
        while True:
            u = uuid.uuid4()
            if u not in RESERVED_IDS and u not in self.instances:
                return u

    def instance(self, instance_id: uuid.UUID, attributes: dict[str, str]) -> ClientInstance:
        """The client instance, made (or re-evaluated after a change of subscriptions) as Kafka does."""
        subs = self.subscriptions()
        now = self.now_ms()
        self._expire(now)
        inst = self.instances.get(instance_id)
        if inst is None or inst.subscription_version < self.version:
            attrs = dict(inst.attributes) if inst is not None else dict(attributes, client_instance_id=str(instance_id))
            matched = [s for s in subs if s.matches(attrs)]
            interval = min([DEFAULT_INTERVAL_MS] + [s.interval_ms for s in matched])
            metrics = sorted({m for s in matched for m in s.metrics})
            if ALL_METRICS in metrics:
                metrics = [ALL_METRICS]
            new = ClientInstance(instance_id, attrs, subscription_id(metrics, interval, instance_id), self.version,
                                 metrics, interval, subscriptions=[s.name for s in matched])
            if inst is not None:  # Kafka makes a new instance: its request times start again
                new.terminating = inst.terminating
            inst = self.instances[instance_id] = new
        inst.last_used_ms = now
        return inst

    def _expire(self, now: int) -> None:
        for i in [i for i in self.instances.values()
                  if now - i.last_used_ms > max(CACHE_EXPIRY_MS, 3 * i.push_interval_ms)]:
            del self.instances[i.instance_id]

    def get_subscriptions(self, instance_id: uuid.UUID, attributes: dict[str, str]) -> ClientInstance:
        """GetTelemetrySubscriptions: the client instance to answer with; KafkaError when throttled."""
        if instance_id in RESERVED_IDS:
            instance_id = self.new_instance_id()
        inst = self.instance(instance_id, attributes)
        if not inst.may_get(self.now_ms()) and inst.last_error not in (ErrorCode.UNKNOWN_SUBSCRIPTION_ID,
                                                                       ErrorCode.UNSUPPORTED_COMPRESSION_TYPE):
            raise KafkaError(ErrorCode.THROTTLING_QUOTA_EXCEEDED,
                             f"Request from the client [{instance_id}] arrived before the next push interval time")
        inst.last_error = ErrorCode.NONE
        return inst

    def check_push(self, instance_id: uuid.UUID, sub_id: int, terminating: bool, compression: int, size: int,
                   max_bytes: int, attributes: dict[str, str]) -> ClientInstance:
        """PushTelemetry's checks; KafkaError for the first that fails (remembered as the last error)."""
        if instance_id in RESERVED_IDS:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Invalid request from the client [{instance_id}], invalid client instance id")
        inst = self.instance(instance_id, attributes)
        try:
            if inst.terminating:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Client [{instance_id}] sent the previous request with state terminating to TRUE, "
                                 "can not acceptany requests after that")
            if not inst.may_push(self.now_ms()) and not terminating:
                raise KafkaError(ErrorCode.THROTTLING_QUOTA_EXCEEDED, f"Request from the client [{instance_id}] "
                                                                      "arrived before the next push interval time")
            if sub_id != inst.subscription_id:
                raise KafkaError(ErrorCode.UNKNOWN_SUBSCRIPTION_ID,
                                 f"Unknown client subscription id for the client [{instance_id}]")
            if compression not in KNOWN_COMPRESSION_TYPES:
                raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                                 f"Unknown compression type [{compression}] is received in telemetry request from "
                                 f"[{instance_id}]")
            if size > max_bytes:
                raise KafkaError(ErrorCode.TELEMETRY_TOO_LARGE, f"Telemetry request from [{instance_id}] is larger "
                                                                f"than the maximum allowed size [{max_bytes}]")
        except KafkaError as e:
            inst.last_error = e.code
            raise
        finally:
            inst.terminating = terminating
        return inst


def client_metrics_manager(broker) -> ClientMetricsManager:
    """The broker's ClientMetricsManager, made on first use."""
    found = getattr(broker, "client_metrics", None)
    if found is None:
        found = broker.client_metrics = ClientMetricsManager(broker.controller)
    return found


def client_attributes(ctx) -> dict[str, str]:
    """The match selectors' values for the client of this request (Kafka's ClientMetricsInstanceMetadata)."""
    host, _, port = ctx.peer.rpartition(":")
    software = getattr(ctx.session, "client_software", None) or ("", "")
    return {"client_id": ctx.client_id or "", "client_software_name": software[0],
            "client_software_version": software[1], "client_source_address": host, "client_source_port": port}
