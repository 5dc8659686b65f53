"""Broker configs as Kafka describes and changes them (KIP-226, Kafka's DynamicBrokerConfig and ConfigHelper).

Every key has up to four values, highest first: a dynamic value for this broker (AlterConfigs on the
broker resource named by its node id: DYNAMIC_BROKER_CONFIG), a dynamic cluster-wide default (the empty
name: DYNAMIC_DEFAULT_BROKER_CONFIG), the static configuration (server.properties, ``--set``, KAFKA_*
variables, and kbroker's flags: STATIC_BROKER_CONFIG) and the default (DEFAULT_CONFIG: Kafka's, or
kbroker's own where it differs, such as ``group.initial.rebalance.delay.ms``). DescribeConfigs lists every
key Kafka lists (kafka_broker_configs.py, taken from a real Kafka broker) and the keys given that Kafka does
not know, with Kafka's synonyms: for each name Kafka treats as the same setting (``log.retention.ms``,
``.minutes``, ``.hours``), one entry per level that has a value, levels in the order above, then the ones
before the described name dropped.

Dynamic values are accepted for the keys Kafka marks dynamic, validated as Kafka validates them (messages
included), persisted in the data directory and applied at once: the connection limits, message.max.bytes,
producer.id.expiration.ms, log.cleaner.backoff.ms and every ``log.*`` topic default (each topic without an
override follows). Dynamic keys that change nothing on one kbroker (thread counts, SSL and SASL login
settings) are stored and shown. Listener and per-listener security settings cannot be changed while
kbroker runs: they are refused with a message saying so (a documented difference).

One writer: the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .config import BROKER_KEYS, LISTENER_MAX_CONNECTIONS, TOPIC_DEFAULT_KEYS, BrokerConfig, apply_settings, listener_limits
from .errors import ErrorCode, KafkaError
from .kafka_broker_configs import KAFKA_BROKER_CONFIGS
from .state_log import KeyedState, keyed_state

log = logging.getLogger("kbroker.config")

DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC_BROKER, DEFAULT = 2, 3, 4, 5
TYPE_IDS = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7, "class": 8,
            "password": 9}
_TYPE_NAMES = {3: "INT", 4: "SHORT", 5: "LONG", 6: "DOUBLE", 1: "BOOLEAN"}

# Kafka's SslConfigs.RECONFIGURABLE_CONFIGS: dynamic only with a listener prefix.
LISTENER_ONLY_SECURITY = frozenset({
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password",
    "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.certificates"})
# DynamicListenerConfig.ReconfigurableConfigs without the cluster-level ones: per broker only.
_CLUSTER_LEVEL_LISTENER = frozenset({"max.connections", "max.connection.creation.rate", "num.network.threads"})
PER_BROKER_ONLY = frozenset(
    k for k, (_, _, dynamic, _) in KAFKA_BROKER_CONFIGS.items()
    if dynamic and (k in ("advertised.listeners", "listeners", "listener.security.protocol.map",
                          "principal.builder.class") or k.startswith(("ssl.", "sasl.")))
    and k not in _CLUSTER_LEVEL_LISTENER) | LISTENER_ONLY_SECURITY
# Dynamic in Kafka, fixed while kbroker runs (its listeners are opened once).
NOT_AT_RUN_TIME = frozenset(k for k in PER_BROKER_ONLY if not k.startswith("sasl.login.")
                            and not k.startswith("sasl.kerberos."))

# kbroker's own keys, described like the Kafka keys it does not know: as given.
_KBROKER_TYPES = {"kbroker.fsync": "string", "kbroker.storage": "string"}


def broker_config_synonyms(name: str) -> list[str]:
    """DynamicBrokerConfig.brokerConfigSynonyms: the names of one setting, highest precedence first."""
    if name in ("log.roll.ms", "log.roll.hours"):
        return ["log.roll.ms", "log.roll.hours"]
    if name in ("log.roll.jitter.ms", "log.roll.jitter.hours"):
        return ["log.roll.jitter.ms", "log.roll.jitter.hours"]
    if name == "log.flush.interval.ms":
        return ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
    if name in ("log.retention.ms", "log.retention.minutes", "log.retention.hours"):
        return ["log.retention.ms", "log.retention.minutes", "log.retention.hours"]
    if name.startswith("listener.name.") and name.count(".") >= 3:
        return [name, name.split(".", 3)[3]]
    return [name]


def _java_set(keys) -> str:
    return "[" + ", ".join(sorted(keys)) + "]"


def _render(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


# Keys whose value is a BrokerConfig attribute (Kafka key -> attribute).
_ATTR_KEYS = {k: attr for k, (attr, _) in BROKER_KEYS.items() if k not in ("log.dir",)}
_FRESH = BrokerConfig()


class BrokerConfigs:
    """The four levels of the broker's configs, and the changes AlterConfigs makes to the dynamic ones."""

    def __init__(self, broker, journal: KeyedState):
        self.broker = broker
        self.config: BrokerConfig = broker.config
        self.journal = journal
        self.dynamic_broker: dict[str, str] = dict(journal.state.get("broker") or {})
        self.dynamic_default: dict[str, str] = dict(journal.state.get("default") or {})
        c = self.config
        # The static level: what was given under Kafka's names, and what flags or keywords set.
        self.static: dict[str, str] = dict(c.settings)
        for key, attr in _ATTR_KEYS.items():
            value = getattr(c, attr)
            if key not in self.static and value != getattr(_FRESH, attr) and value is not None:
                self.static[key] = _render(value)
        if c.listeners is None:
            self.static.pop("listeners", None)
        self._static_attrs = {attr: getattr(c, attr) for attr in {a for a in _ATTR_KEYS.values()}}
        self._static_listener_limits = (dict(c.listener_max_connections), dict(c.listener_max_connection_creation_rate))
        self._static_topic_defaults = dict(broker.topics.defaults)
        if "default" not in journal.state:
            # Kafka 4 formats a new cluster with min.insync.replicas as a cluster-wide dynamic default (KIP-966's
            # ELR needs it there), so a fresh Kafka describes it as DYNAMIC_DEFAULT_BROKER_CONFIG; so does a new
            # kbroker data directory. Removed, it stays removed.
            self.dynamic_default = {"min.insync.replicas": self.static.get("min.insync.replicas", "1")}
            journal.put("default", self.dynamic_default)
        if self.dynamic_broker or self.dynamic_default:
            self._apply()

    # -- describing ----------------------------------------------------------------------------------

    def defaults(self) -> dict[str, str | None]:
        """The DEFAULT_CONFIG level: Kafka's defaults, kbroker's where it has its own (node.id is 0 where Kafka
        has none). A key whose default is null has no entry (Kafka's KafkaConfig.defaultValues)."""
        out = {k: d for k, (_, d, _, _) in KAFKA_BROKER_CONFIGS.items() if d is not None}
        for key, attr in _ATTR_KEYS.items():
            if key in KAFKA_BROKER_CONFIGS and key not in ("broker.id", "log.dirs"):
                value = _render(getattr(_FRESH, attr))
                if value is not None:
                    out[key] = value
        if self.config.listeners is None:  # kbroker's default listener: --host and --port
            out["listeners"] = self._default_listener()
        return out

    def _default_listener(self) -> str:
        port = self.config.port or getattr(self.broker.listeners[0], "bound_port", 0)
        return f"PLAINTEXT://{self.config.host}:{port}"

    def describe(self, resource_name: str, keys, synonyms: bool, docs: bool, R) -> list:
        """DescribeConfigsResourceResult entries for the broker (its node id) or the cluster default ("")."""
        defaults = self.defaults()
        levels = [(self.dynamic_broker, DYNAMIC_BROKER), (self.dynamic_default, DYNAMIC_DEFAULT),
                  (self.static, STATIC_BROKER), (defaults, DEFAULT)]
        per_broker = resource_name != ""
        if per_broker:
            names = set(KAFKA_BROKER_CONFIGS) | set(self.static) | {
                k for k in self.dynamic_broker if k in KAFKA_BROKER_CONFIGS or LISTENER_MAX_CONNECTIONS.match(k)}
        else:
            names = set(self.dynamic_default)
        out = []
        for name in sorted(names):
            if keys and name not in keys:
                continue
            kind, _, dynamic, sensitive = KAFKA_BROKER_CONFIGS.get(name, (TYPE_IDS.get(_KBROKER_TYPES.get(name),
                                                                                       0), None, False, False))
            syn = []
            for level, source in levels:
                for n in broker_config_synonyms(name):
                    if n in level and (per_broker or source == DYNAMIC_DEFAULT):
                        syn.append(R.DescribeConfigsSynonym(name=n, value=None if sensitive else level[n],
                                                            source=source))
            while syn and syn[0].name != name:
                syn.pop(0)
            value = self.value(name, defaults) if per_broker else self.dynamic_default.get(name)
            out.append(R.DescribeConfigsResourceResult(
                name=name, value=None if sensitive else value, read_only=not dynamic,
                config_source=syn[0].source if syn else DEFAULT, is_sensitive=sensitive,
                synonyms=syn if synonyms else [], config_type=kind, documentation="" if docs else None))
        return out

    def synonyms(self, name: str) -> list[tuple[str, str, int]]:
        """Kafka's configSynonyms for a broker key on this broker: (name, value, source) per level and name."""
        out = []
        for level, source in ((self.dynamic_broker, DYNAMIC_BROKER), (self.dynamic_default, DYNAMIC_DEFAULT),
                              (self.static, STATIC_BROKER), (self.defaults(), DEFAULT)):
            for n in broker_config_synonyms(name):
                if n in level:
                    out.append((n, level[n], source))
        while out and out[0][0] != name:
            out.pop(0)
        return out

    def value(self, name: str, defaults=None) -> str | None:
        """The effective value: kbroker's own for the keys it uses, else the highest level that has one."""
        if name in _ATTR_KEYS and name not in ("log.dirs",):
            return _render(getattr(self.config, _ATTR_KEYS[name]))
        if name == "listeners" and self.config.listeners is None:
            return self._default_listener()
        for level in (self.dynamic_broker, self.dynamic_default, self.static):
            if name in level:
                return level[name]
        return (defaults or self.defaults()).get(name)

    # -- changing --------------------------------------------------------------------------------------

    def check_resource_name(self, name: str) -> None:
        if name == "":
            return
        try:
            node = int(name)
        except ValueError:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: {name}") from None
        if node != self.config.node_id:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Unexpected broker id, expected {self.config.node_id}, but received {name}")

    def current(self, resource_name: str) -> dict[str, str]:
        return dict(self.dynamic_broker if resource_name else self.dynamic_default)

    def validate(self, props: dict[str, str], per_broker: bool) -> None:
        """DynamicBrokerConfig.validateConfigs, in its order and with its messages (INVALID_REQUEST)."""
        def refuse(keys, message):
            if keys:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"{message}: {_java_set(keys)}")

        refuse({k for k in props if k in KAFKA_BROKER_CONFIGS and not KAFKA_BROKER_CONFIGS[k][2]},
               "Cannot update these configs dynamically")
        refuse({k for k in props if k in LISTENER_ONLY_SECURITY},
               "These security configs can be dynamically updated only per-listener using the listener prefix")
        for key, value in props.items():
            _check_type(key, value)
            m = LISTENER_MAX_CONNECTIONS.match(key)
            if m and not (value.strip().isdigit() and int(value) > 0):  # ListenerConnectionQuota's check
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid {m.group(2)} {value}")
        if not per_broker:
            refuse({k for k in props if k in PER_BROKER_ONLY or (k.startswith("listener.name.") and
                    k.split(".", 3)[-1] not in _CLUSTER_LEVEL_LISTENER)},
                   "Cannot update these configs at default cluster level, broker id must be specified")
        refuse({k for k in props if k in NOT_AT_RUN_TIME or (k.startswith("listener.name.")
                                                            and not LISTENER_MAX_CONNECTIONS.match(k))},
               "kbroker cannot change its listeners or their security settings while it runs; restart it with "
               "the new static configuration")
        merged = self._merged(props if per_broker else None, None if per_broker else props)
        try:
            apply_settings(BrokerConfig(), merged)
        except ValueError as e:
            raise KafkaError(ErrorCode.INVALID_REQUEST, str(e)) from None

    def replace(self, resource_name: str, props: dict[str, str], validate_only: bool) -> None:
        """The dynamic configs of the broker (its id) or of the cluster default ("") become ``props``."""
        self.check_resource_name(resource_name)
        self.validate(props, resource_name != "")
        if validate_only:
            return
        if resource_name:
            self.dynamic_broker = dict(props)
            self.journal.put("broker", self.dynamic_broker)
        else:
            self.dynamic_default = dict(props)
            self.journal.put("default", self.dynamic_default)
        self._apply()
        log.info("dynamic broker configs %s: %s", "of this broker" if resource_name else "(cluster default)",
                 ", ".join(f"{k}={v}" for k, v in sorted(props.items())) or "none")

    def _merged(self, broker_level=None, default_level=None) -> dict[str, str]:
        """The settings a broker restarted with every level would read, lowest first."""
        merged = {k: v for k, v in self.static.items() if k in _ATTR_KEYS or k in _TOPIC_KEYS}
        for level in (self.dynamic_default if default_level is None else default_level,
                      self.dynamic_broker if broker_level is None else broker_level):
            merged.update({k: v for k, v in level.items() if k in _ATTR_KEYS or k in _TOPIC_KEYS})
        return merged

    def _apply(self) -> None:
        """Puts the effective values where the broker reads them: BrokerConfig's attributes (the static value,
        then the cluster default's, then this broker's) and the topics' shared defaults."""
        c = self.config
        for attr, static_value in self._static_attrs.items():
            setattr(c, attr, static_value)
        c.listener_max_connections = dict(self._static_listener_limits[0])
        c.listener_max_connection_creation_rate = dict(self._static_listener_limits[1])
        for level in (self.dynamic_default, self.dynamic_broker):
            for key, value in level.items():
                if key in _ATTR_KEYS:
                    attr, parse = BROKER_KEYS[key]
                    setattr(c, attr, parse(value.strip()))
                elif (m := LISTENER_MAX_CONNECTIONS.match(key)) is not None:
                    listener_limits(c, m)[m.group(1).upper()] = int(value)
        quotas = getattr(self.broker, "connection_quotas", None)
        if quotas is not None:
            quotas.limits_changed()
        topic_defaults = dict(self._static_topic_defaults)
        if (set(self.dynamic_broker) | set(self.dynamic_default)) & _TOPIC_KEYS:
            fresh = BrokerConfig()
            apply_settings(fresh, self._merged())
            topic_defaults.update(fresh.topic_defaults)
        defaults = self.broker.topics.defaults
        defaults.clear()
        defaults.update(topic_defaults)
        for topic in self.broker.topics.by_name.values():
            cfg = topic.log_config()
            for p in topic.partitions:
                if p.log is not None:  # a replica on this broker
                    p.log.config = cfg


_TOPIC_KEYS = set(TOPIC_DEFAULT_KEYS) | {"log.retention.hours", "log.retention.minutes", "log.retention.ms",
                                         "log.roll.hours", "log.roll.ms"}


# Broker configs that are only dynamic (Kafka's DynamicConfig.Broker, not KafkaConfig), as KAFKA_BROKER_CONFIGS
# describes a key: the replication throttles of KIP-73 (LONG, at least 0; replication_quotas.py reads them).
_DYNAMIC_ONLY = {"leader.replication.throttled.rate": (5, None, True, False),
                 "follower.replication.throttled.rate": (5, None, True, False)}


def _check_type(key: str, value: str) -> None:
    """Kafka's ConfigDef parse of a value by its type: "Invalid value abc for configuration max.connections:
    Not a number of type INT"."""
    spec = KAFKA_BROKER_CONFIGS.get(key) or _DYNAMIC_ONLY.get(key)
    if spec is None or value is None:
        return
    if key in _DYNAMIC_ONLY and value.strip().lstrip("-").isdigit() and int(value) < 0:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Invalid value {value} for configuration {key}: Value must be at least 0")
    kind = spec[0]
    v = value.strip()
    ok = True
    if kind in (3, 4, 5):
        try:
            n = int(v)
            bits = {3: 31, 4: 15, 5: 63}[kind]
            ok = -(1 << bits) <= n < (1 << bits)
        except ValueError:
            ok = False
    elif kind == 6:
        try:
            float(v)
        except ValueError:
            ok = False
    elif kind == 1:
        if v.lower() not in ("true", "false"):
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Invalid value {value} for configuration {key}: "
                             f"Expected value to be either true or false")
    if not ok:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Invalid value {value} for configuration {key}: Not a number of type {_TYPE_NAMES[kind]}")


def broker_configs(broker) -> BrokerConfigs:
    """The broker's BrokerConfigs, made (and its persisted dynamic configs applied) on first use."""
    found = getattr(broker, "broker_configs", None)
    if found is None:
        c = broker.config
        path = None if c.storage == "memory" or not c.data_dir else \
            Path(c.data_dir) / ".kbroker" / "broker-configs.journal"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        found = broker.broker_configs = BrokerConfigs(broker, keyed_state(path, b"KBBRCFG\x00", fsync=True))
    return found

