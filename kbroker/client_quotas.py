"""Client quotas (KIP-13, KIP-55, KIP-124, KIP-257, KIP-546, KIP-599, KIP-612): what AlterClientQuotas sets,
DescribeClientQuotas shows and the brokers enforce.

An entity is a set of (type, name) pairs, the types ``user``, ``client-id`` and ``ip``; a name of None is the
type's default (Kafka's ``<default>``). Allowed shapes, as Kafka's ClientQuotaControlManager allows them: user,
client-id, user and client-id, or ip alone. Keys: ``producer_byte_rate`` and ``consumer_byte_rate`` (bytes per
second, whole numbers), ``request_percentage`` (percent of one request thread's time), ``controller_mutation_rate``
(partitions created or deleted per second) for user / client-id entities, ``connection_creation_rate``
(connections per second, whole) for ip entities. The controller keeps them (``Controller.client_quotas``); this
module validates changes, answers the describe filters and measures clients against the values.

Enforcement, as Kafka's ClientQuotaManager: each quota type has its own manager; a request is measured against the
first entity in Kafka's precedence order that sets that type's key,

    user=U client-id=C, user=U client-id=<default>, user=U, user=<default> client-id=C,
    user=<default> client-id=<default>, user=<default>, client-id=C, client-id=<default>

and recorded in a sensor shared by every client the entity covers (a user's quota is shared by all the user's
client ids; a default applies to each user or client id on its own). A sensor is a Rate over ``quota.window.num``
samples of ``quota.window.size.seconds`` (connection_quotas.RateSensor); over its bound, the throttle time is
(observed - bound) / bound x the rate's window, which the answer carries as throttle_time_ms while the connection is
muted for as long (KIP-219: answer first, then mute). request_percentage's throttle is capped at one window.
controller_mutation_rate is a token bucket (KIP-599): a request may start while tokens are left and drive them below
zero; the next is refused with THROTTLING_QUOTA_EXCEEDED (clients of the versions that know it) until the bucket
refills, its throttle time being the deficit over the rate. connection_creation_rate is applied by the acceptors
(connection_quotas.py). Sensors idle for an hour are dropped, as Kafka expires them.

One writer: everything runs on the event loop.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import time
from dataclasses import dataclass

from .connection_quotas import UNLIMITED, RateSensor
from .errors import ErrorCode, KafkaError

USER, CLIENT_ID, IP = "user", "client-id", "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"
# key -> its type in Kafka's QuotaConfig (LONG and INT values must be whole)
CLIENT_KEYS = {PRODUCER_BYTE_RATE: "LONG", CONSUMER_BYTE_RATE: "LONG", REQUEST_PERCENTAGE: "DOUBLE",
               CONTROLLER_MUTATION_RATE: "DOUBLE"}
IP_KEYS = {CONNECTION_CREATION_RATE: "INT"}
_INTEGRAL_MAX = {"INT": (2147483647, "an INT"), "LONG": (9223372036854775807, "a LONG")}

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
SENSOR_EXPIRY_MS = 3600 * 1000  # Kafka's InactiveSensorExpirationTimeSeconds for client quota sensors

Entity = tuple  # of (type, name or None) pairs, sorted by type


def entity_of(pairs) -> Entity:
    return tuple(sorted(pairs, key=lambda p: p[0]))


_JAVA_ORDER = {CLIENT_ID: 0, USER: 1, IP: 2}


def java_order(pairs) -> list:
    """The pairs in the order Kafka's entity map (a small HashMap) lists them: client-id, user, ip; other
    types after them as given."""
    return sorted(pairs, key=lambda p: _JAVA_ORDER.get(p[0], 3))


def entity_text(pairs) -> str:
    """As Kafka's ClientQuotaEntity prints itself in messages."""
    return "ClientQuotaEntity(entries={" + ", ".join(f"{t}={n}" for t, n in java_order(pairs)) + "})"


# -- AlterClientQuotas -------------------------------------------------------------------------------------

def check_entity(pairs: list[tuple[str, str | None]]) -> dict[str, str]:
    """Kafka 4.4's validateEntity and configKeysForEntityType: the keys this entity may set (key -> type), or
    KafkaError(INVALID_REQUEST) with Kafka's message."""
    if not pairs:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity")
    seen: dict[str, str | None] = {}
    for entity_type, name in pairs:
        if entity_type in seen:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Invalid client quota entity, duplicate entity entry {entity_type}")
        if entity_type not in (USER, CLIENT_ID, IP):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unhandled client quota entity type: {entity_type}")
        if name is not None and name == "":
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Empty {entity_type} not supported")
        seen[entity_type] = name
    if IP in seen:
        if len(seen) > 1:  # sic: Kafka's message lacks the space
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid quota entity combination, IP entity shouldnot be "
                                                        "combined with User or ClientId")
        if seen[IP] is not None and not _resolvable(seen[IP]):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"{seen[IP]} is not a valid IP or resolvable host.")
        return IP_KEYS
    return CLIENT_KEYS


def _resolvable(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
        return True
    except OSError:
        return False


def altered_values(keys: dict[str, str], current: dict[str, float], ops) -> dict[str, float]:
    """An entity's values after ``ops`` (objects with key, value, remove), checked as Kafka 4.4's
    validateQuotaKeyValue; KafkaError(INVALID_REQUEST) for a bad key or value."""
    new = dict(current)
    for op in ops:
        if op.remove:
            new.pop(op.key, None)
            continue
        kind = keys.get(op.key)
        if kind is None:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid configuration key {op.key}")
        value = float(op.value)
        if not value > 0.0:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Quota {op.key} must be greater than 0")
        if kind in _INTEGRAL_MAX:
            limit, name = _INTEGRAL_MAX[kind]
            if value > limit:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Proposed value for {op.key} is too large for {name}.")
            if math.isinf(value) or abs(math.fmod(value, 1.0)) > 1e-6:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"{op.key} cannot be a fractional value.")
        new[op.key] = value
    return new


# -- DescribeClientQuotas ------------------------------------------------------------------------------------

def describe(quotas: dict[Entity, dict[str, float]], components, strict: bool) -> list[tuple[Entity, dict]]:
    """The entities a DescribeClientQuotas filter selects, as Kafka's ClientQuotasImage.describe; KafkaError
    (INVALID_REQUEST, UNSUPPORTED_VERSION for an unknown entity type) for a bad filter."""
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for c in components:
        if c.entity_type == "":
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid empty entity type.")
        if c.entity_type in exact or c.entity_type in specified:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Entity type {c.entity_type} cannot appear more than once in the filter.")
        if c.entity_type not in (IP, USER, CLIENT_ID):
            raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {c.entity_type}")
        if c.match_type == MATCH_EXACT:
            if c.match is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[c.entity_type] = c.match
        elif c.match_type == MATCH_DEFAULT:
            if c.match is not None:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[c.entity_type] = None
        elif c.match_type == MATCH_SPECIFIED:
            if c.match is not None:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
            specified.add(c.entity_type)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown match type {c.match_type}")
    named = set(exact) | specified
    if IP in named and (USER in named or CLIENT_ID in named):
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid entity filter component combination. IP filter "
                                                    "component should not be used with user or clientId filter "
                                                    "component.")
    if not named:
        return [] if strict else list(quotas.items())
    out = []
    for entity, values in quotas.items():
        names = dict(entity)
        if any(t not in names or names[t] != n for t, n in exact.items()):
            continue
        if any(t not in names for t in specified):
            continue
        if strict and len(names) != len(named):
            continue
        out.append((entity, values))
    return out


# -- enforcement --------------------------------------------------------------------------------------------

def _now_ms() -> float:
    return time.monotonic() * 1000


def precedence(user: str, client_id: str) -> list[tuple[Entity, tuple[str, str]]]:
    """Kafka's quota entities for (user, client id), most specific first, each with the sensor tags it gives."""
    return [
        (((CLIENT_ID, client_id), (USER, user)), (user, client_id)),
        (((CLIENT_ID, None), (USER, user)), (user, client_id)),
        (((USER, user),), (user, "")),
        (((CLIENT_ID, client_id), (USER, None)), (user, client_id)),
        (((CLIENT_ID, None), (USER, None)), (user, client_id)),
        (((USER, None),), (user, "")),
        (((CLIENT_ID, client_id),), ("", client_id)),
        (((CLIENT_ID, None),), ("", client_id)),
    ]


def find_quota(quotas: dict[Entity, dict[str, float]], key: str, user: str, client_id: str):
    """(bound, sensor tags) of the first entity in precedence order that sets ``key``; None when none does."""
    if not quotas:
        return None
    for entity, tags in precedence(user, client_id):
        values = quotas.get(entity)
        if values is not None and key in values:
            return values[key], tags
    return None


class TokenBucket:
    """KIP-599's token bucket: ``rate`` tokens a second up to a burst of rate x samples x window; a recording
    takes tokens (and may leave fewer than none)."""

    def __init__(self, samples: int, window_ms: int):
        self.burst_s = max(1, samples) * max(1, window_ms) / 1000.0
        self.tokens: float | None = None
        self.last_ms = 0.0

    def refill(self, rate: float, now_ms: float) -> float:
        burst = rate * self.burst_s
        if self.tokens is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + rate * max(0.0, now_ms - self.last_ms) / 1000.0)
        self.last_ms = now_ms
        return self.tokens


@dataclass
class _Sensor:
    rate: RateSensor | None
    bucket: TokenBucket | None
    last_ms: float
    throttle_ms_total: float = 0.0


class ClientQuotaManager:
    """One quota type's sensors (Kafka's ClientQuotaManager / ClientRequestQuotaManager /
    ControllerMutationQuotaManager), keyed by their tags (user, client id)."""

    def __init__(self, key: str, config, quotas_of, max_throttle_windows: float | None = None):
        self.key = key
        self.config = config
        self._quotas_of = quotas_of  # () -> the controller's quotas
        self._max_throttle_windows = max_throttle_windows
        self.sensors: dict[tuple[str, str], _Sensor] = {}
        self._last_purge_ms = 0.0

    def _window_ms(self) -> int:
        return self.config.quota_window_size_seconds * 1000

    def _sensor(self, tags, now_ms: float, bucket: bool = False) -> _Sensor:
        s = self.sensors.get(tags)
        if s is None:
            samples, window = self.config.quota_window_num, self._window_ms()
            s = self.sensors[tags] = _Sensor(None if bucket else RateSensor(samples, window),
                                             TokenBucket(samples, window) if bucket else None, now_ms)
        s.last_ms = now_ms
        if now_ms - self._last_purge_ms > 60_000:
            self._last_purge_ms = now_ms
            for t in [t for t, x in self.sensors.items() if now_ms - x.last_ms > SENSOR_EXPIRY_MS]:
                del self.sensors[t]
        return s

    def quota(self, user: str, client_id: str):
        return find_quota(self._quotas_of(), self.key, user, client_id)

    def record_and_get_throttle_ms(self, user: str, client_id: str, value: float, now_ms: float | None = None) -> int:
        """Record ``value`` (bytes, or percent of a thread's time) for this client; the throttle time if the
        rate of its entity is now over the bound, else 0."""
        found = self.quota(user, client_id)
        if found is None:
            return 0
        bound, tags = found
        now_ms = _now_ms() if now_ms is None else now_ms
        sensor = self._sensor(tags, now_ms)
        sensor.rate.record(value, now_ms)
        observed = sensor.rate.rate(now_ms)
        if observed <= bound:
            return 0
        window = sensor.rate.window_size_ms(now_ms)
        throttle = (observed - bound) / bound * window if bound > 0 else window
        if self._max_throttle_windows is not None:
            throttle = min(throttle, self._max_throttle_windows * self._window_ms())
        throttle = int(round(throttle))
        sensor.throttle_ms_total += throttle
        return throttle

    def record_no_throttle(self, user: str, client_id: str, value: float) -> None:
        """Record ``value`` for this client without a throttle decision (Kafka's recordNoThrottle: the network
        thread's time for a request, counted once its answer is sent; the client's next requests pay for it)."""
        found = self.quota(user, client_id)
        if found is not None:
            now_ms = _now_ms()
            self._sensor(found[1], now_ms).rate.record(value, now_ms)

    def unrecord(self, user: str, client_id: str, value: float, now_ms: float | None = None) -> None:
        """Take back a recording (Kafka's unrecordQuotaSensor: a throttled Fetch answers nothing)."""
        found = self.quota(user, client_id)
        if found is not None:
            now_ms = _now_ms() if now_ms is None else now_ms
            self._sensor(found[1], now_ms).rate.record(-value, now_ms)

    def max_value_in_window(self, user: str, client_id: str) -> int:
        """Kafka's getMaxValueInQuotaWindow: the most a client may take in one go (a Fetch's max bytes)."""
        found = self.quota(user, client_id)
        if found is None:
            return UNLIMITED
        samples = max(1, self.config.quota_window_num - 1)
        return int(min(UNLIMITED, found[0] * samples * self.config.quota_window_size_seconds))

    # -- controller mutations (token bucket) -----------------------------------------------------------

    def mutation_quota(self, user: str, client_id: str, strict: bool) -> "MutationQuota":
        found = self.quota(user, client_id)
        if found is None:
            return MutationQuota(None, 0.0, None, strict)
        now_ms = _now_ms()
        return MutationQuota(self._sensor(found[1], now_ms, bucket=True), found[0], now_ms, strict)

    def rates(self, now_ms: float | None = None) -> dict[tuple[str, str], float]:
        """The measured rate of every sensor (metrics.py)."""
        now_ms = _now_ms() if now_ms is None else now_ms
        return {tags: s.rate.rate(now_ms) for tags, s in self.sensors.items() if s.rate is not None}


class MutationQuota:
    """The controller-mutation quota of one request (Kafka's Strict / PermissiveControllerMutationQuota):
    ``record(partitions)`` before each topic's creation or deletion; strict raises THROTTLING_QUOTA_EXCEEDED
    while the bucket is empty, permissive only counts. ``throttle_ms``: what the answer carries."""

    def __init__(self, sensor: _Sensor | None, rate: float, now_ms: float | None, strict: bool):
        self.sensor, self.rate, self.now_ms, self.strict = sensor, rate, now_ms, strict
        self.throttle_ms = 0

    def record(self, permits: float) -> None:
        if self.sensor is None:
            return
        bucket = self.sensor.bucket
        tokens = bucket.refill(self.rate, _now_ms())
        if self.strict and tokens < 0:
            self.throttle_ms = max(self.throttle_ms, self._throttle(tokens))
            raise KafkaError(ErrorCode.THROTTLING_QUOTA_EXCEEDED, "The throttling quota has been exceeded.")
        bucket.tokens = tokens - permits
        if bucket.tokens < 0:
            self.throttle_ms = max(self.throttle_ms, self._throttle(bucket.tokens))

    def _throttle(self, tokens: float) -> int:
        ms = int(round(-tokens / self.rate * 1000)) if self.rate > 0 else UNLIMITED
        self.sensor.throttle_ms_total += max(0, ms - self.throttle_ms)  # what this request adds (metrics)
        return ms


def mutation_quota(ctx, strict_since_version: int) -> MutationQuota:
    """The controller_mutation_rate quota of an admin request (CreateTopics, CreatePartitions, DeleteTopics):
    strict (THROTTLING_QUOTA_EXCEEDED) from the version whose clients know that error, permissive before."""
    return ctx.broker.client_quotas.controller_mutation.mutation_quota(ctx.quota_user, ctx.client_id or "",
                                                                       ctx.version >= strict_since_version)


class ClientQuotas:
    """A broker's quota managers over the controller's quotas."""

    def __init__(self, config, controller):
        self.controller = controller
        quotas_of = controller.client_quotas
        self.produce = ClientQuotaManager(PRODUCER_BYTE_RATE, config, quotas_of)
        self.fetch = ClientQuotaManager(CONSUMER_BYTE_RATE, config, quotas_of)
        # Kafka's ClientRequestQuotaManager caps its throttle time at one quota window
        self.request = ClientQuotaManager(REQUEST_PERCENTAGE, config, quotas_of, max_throttle_windows=1)
        self.controller_mutation = ClientQuotaManager(CONTROLLER_MUTATION_RATE, config, quotas_of)

    @property
    def enabled(self) -> bool:
        """Whether any quota is set (the request path skips the quota managers otherwise)."""
        return bool(self.controller.client_quotas())

    def managers(self) -> dict[str, ClientQuotaManager]:
        return {"Produce": self.produce, "Fetch": self.fetch, "Request": self.request,
                "ControllerMutation": self.controller_mutation}

    def ip_connection_rate(self, ip: str) -> int:
        """connection_creation_rate for connections from ``ip``: its own entity's, else the ip default's, else
        unlimited (Kafka's ConnectionQuotas.connectionRateForIp)."""
        quotas = self.controller.client_quotas()
        if not quotas:
            return UNLIMITED
        for entity in (((IP, ip),), ((IP, None),)):
            values = quotas.get(entity)
            if values is not None and CONNECTION_CREATION_RATE in values:
                return int(values[CONNECTION_CREATION_RATE])
        return UNLIMITED
