"""Listeners as Kafka configures them.

    listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093,INTERNAL://127.0.0.1:9094
    advertised.listeners=PLAINTEXT://localhost:9092,SASL_SSL://localhost:9093
    listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT
    listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512

A listener's name picks its security protocol through ``listener.security.protocol.map`` (the four protocol
names map to themselves, as in Kafka's default map). Listeners named in ``controller.listener.names`` are
the KRaft controller's and are not opened: kbroker has no controller quorum to serve. A setting is looked up
first with the listener's prefix (``listener.name.<listener, lower case>.<key>``), then without it, except
where Kafka reads only the prefixed form (``ssl.client.auth`` on a SASL_SSL listener, KIP-684).

The first listener is the one ``--host``/``--port``/``--advertised-host`` change and the one the plain
ready line names; every listener advertises itself to the clients connected through it (Metadata,
FindCoordinator, DescribeCluster), its port 0 meaning the port it bound.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import SecurityConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
# Kafka's default is GSSAPI, which needs Kerberos; kbroker offers what it can verify by itself. OAUTHBEARER
# with unsecured tokens accepts any principal a client names, so it is only on when asked for.
DEFAULT_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Settings kbroker.security reads (from BrokerConfig.settings), with or without a listener prefix.
SECURITY_KEYS = frozenset({
    "listener.security.protocol.map",
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.certificate.chain", "ssl.keystore.key",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates",
    "ssl.client.auth", "ssl.enabled.protocols", "ssl.protocol",
    "sasl.enabled.mechanisms", "sasl.jaas.config", "connections.max.reauth.ms",
    "ssl.endpoint.identification.algorithm",
    # how this broker reaches the others (inter_broker.py)
    "inter.broker.listener.name", "security.inter.broker.protocol", "sasl.mechanism.inter.broker.protocol",
})
# Settings whose values are secrets: never logged, never echoed in an error.
SENSITIVE_SUFFIXES = ("sasl.jaas.config", "password", "ssl.keystore.key", "secret")
# Settings that would switch on real token validation in Kafka. kbroker only validates unsecured JWS tokens
# (Kafka's default OAuthBearerUnsecuredValidatorCallbackHandler): accepting these silently would accept
# tokens the operator meant to refuse, so they are refused at start-up.
_UNSUPPORTED_VALIDATION = re.compile(r"(^|\.)(sasl\.server\.callback\.handler\.class|sasl\.oauthbearer\.[a-z.]+)$")
_LISTENER_PREFIX = re.compile(r"^listener\.name\.([^.]+)\.(.+)$")
_MECH_KEY = re.compile(r"^(plain|scram-sha-256|scram-sha-512|oauthbearer|gssapi)\.(sasl\.jaas\.config|"
                       r"connections\.max\.reauth\.ms)$")


def is_sensitive(key: str) -> bool:
    return any(key.endswith(s) or s in key.rsplit(".", 1)[-1] for s in SENSITIVE_SUFFIXES)


def is_security_key(key: str) -> bool:
    """A key kbroker.security reads: a security setting, optionally listener- and mechanism-prefixed."""
    m = _LISTENER_PREFIX.match(key)
    rest = m.group(2) if m else key
    return rest in SECURITY_KEYS or bool(_MECH_KEY.match(rest)) or bool(_UNSUPPORTED_VALIDATION.search(key))


def check_security_setting(key: str, value: str) -> None:
    """Refuse a value that cannot work, at start-up; messages never quote a sensitive value."""
    if _UNSUPPORTED_VALIDATION.search(key):
        raise SecurityConfigError(
            f"{key} is not supported: kbroker validates OAUTHBEARER tokens only as Kafka's default unsecured "
            "validator does (unsigned JWS, alg none)")
    m = _LISTENER_PREFIX.match(key)
    rest = m.group(2) if m else key
    if rest == "ssl.client.auth" and value.strip().lower() not in ("required", "requested", "none"):
        raise SecurityConfigError(f"{key} must be required, requested or none")
    if rest.endswith("connections.max.reauth.ms"):
        int(value)
    if rest == "sasl.enabled.mechanisms":
        for mech in parse_list(value):
            if mech not in SUPPORTED_MECHANISMS:
                raise SecurityConfigError(f"{key}: mechanism {mech} is not supported "
                                          f"(kbroker offers {', '.join(SUPPORTED_MECHANISMS)})")
    if rest == "listener.security.protocol.map":
        parse_protocol_map(value)
    if rest.endswith("sasl.jaas.config"):
        from .jaas import parse_jaas_config

        parse_jaas_config(value)
    for t in ("ssl.keystore.type", "ssl.truststore.type"):
        if rest == t and value.strip().upper() != "PEM":
            raise SecurityConfigError(f"{key}: kbroker reads PEM files only (set {t}=PEM; convert a JKS or "
                                      "PKCS12 store with openssl or keytool)")


def parse_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_endpoints(value: str) -> list[tuple[str, str, int]]:
    """``NAME://HOST:PORT,...`` -> [(NAME upper case, host, port)]; an empty host means every address."""
    out = []
    for item in parse_list(value):
        if "://" not in item:
            raise ValueError(f"expected NAME://HOST:PORT, got {item!r}")
        name, rest = item.split("://", 1)
        parts = urlsplit("//" + rest)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in {item!r}") from None
        if port is None:
            raise ValueError(f"no port in {item!r}")
        name = name.strip().upper()
        if not re.fullmatch(r"[A-Z0-9_\-]+", name):
            raise ValueError(f"bad listener name in {item!r}")
        out.append((name, parts.hostname or "", port))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("each listener must have a different name")
    return out


def parse_protocol_map(value: str | None) -> dict[str, str]:
    out = {p: p for p in SECURITY_PROTOCOLS}
    for item in parse_list(value):
        if ":" not in item:
            raise SecurityConfigError(f"listener.security.protocol.map: expected NAME:PROTOCOL, got {item!r}")
        name, proto = (s.strip().upper() for s in item.split(":", 1))
        if proto not in SECURITY_PROTOCOLS:
            raise SecurityConfigError(f"listener.security.protocol.map: unknown security protocol {proto} "
                                      f"({', '.join(SECURITY_PROTOCOLS)})")
        out[name] = proto
    return out


def controller_listener_names(settings: dict[str, str]) -> set[str]:
    return {n.upper() for n in parse_list(settings.get("controller.listener.names"))}


@dataclass
class Listener:
    name: str
    security_protocol: str
    host: str  # to bind; "" is every address
    port: int  # to bind; 0 takes a free port
    advertised_host: str
    advertised_port: int  # 0: the port bound
    settings: dict[str, str] = field(default_factory=dict, repr=False)  # the broker's Kafka-named settings
    bound_port: int | None = None

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def prefix(self) -> str:
        return f"listener.name.{self.name.lower()}."

    def get(self, key: str, default: str | None = None, *, prefixed_only: bool = False) -> str | None:
        v = self.settings.get(self.prefix + key)
        if v is None and not prefixed_only:
            v = self.settings.get(key)
        return default if v is None else v.strip()

    def sasl_mechanisms(self) -> list[str]:
        value = self.get("sasl.enabled.mechanisms")
        return parse_list(value) if value is not None else list(DEFAULT_MECHANISMS)

    def mechanism_setting(self, mechanism: str, key: str) -> str | None:
        """``listener.name.<l>.<mechanism>.<key>``, then the listener-prefixed and plain forms of ``key``,
        then ``<mechanism>.<key>``."""
        mech = mechanism.lower()
        for k in (f"{self.prefix}{mech}.{key}", f"{self.prefix}{key}", f"{mech}.{key}", key):
            v = self.settings.get(k)
            if v is not None:
                return v.strip()
        return None

    @property
    def ssl_client_auth(self) -> str:
        if self.security_protocol == "SSL":
            return (self.get("ssl.client.auth") or "none").lower()
        if self.security_protocol == "SASL_SSL":  # KIP-684: only the listener-prefixed form applies
            return (self.get("ssl.client.auth", prefixed_only=True) or "none").lower()
        return "none"

    @property
    def authenticates(self) -> bool:
        """Whether a client must prove who it is to use this listener."""
        return self.sasl or (self.security_protocol == "SSL" and self.ssl_client_auth == "required")

    def advertised(self) -> tuple[str, int]:
        return self.advertised_host, self.advertised_port or self.bound_port or self.port


def resolve_listeners(config) -> list[Listener]:
    """The listeners to open, from a BrokerConfig: its ``listeners`` setting (the first listener's address
    already in ``config.host``/``config.port``, where flags may have changed it) or one PLAINTEXT listener."""
    settings = config.settings
    protocols = parse_protocol_map(settings.get("listener.security.protocol.map"))
    if config.listeners is None:
        entries = [("PLAINTEXT", config.host, config.port)]
    else:
        controller = controller_listener_names(settings)
        entries = [e for e in parse_endpoints(config.listeners) if e[0] not in controller]
        if not entries:
            raise SecurityConfigError("listeners names only controller listeners: there is nothing for clients")
        entries[0] = (entries[0][0], config.host, config.port)
    advertised = {}
    if config.advertised_listeners:
        advertised = {name: (host, port) for name, host, port in parse_endpoints(config.advertised_listeners)}
    ports = [p for _, _, p in entries if p]
    if len(set(ports)) != len(ports):
        raise SecurityConfigError("each listener must have a different port")
    out = []
    for i, (name, host, port) in enumerate(entries):
        proto = protocols.get(name)
        if proto is None:
            raise SecurityConfigError(f"listener {name} has no security protocol: name it in "
                                      f"listener.security.protocol.map (e.g. {name}:SASL_SSL)")
        if i == 0:
            adv_host, adv_port = config.advertised_host or host, config.advertised_port or 0
        else:
            ah, ap = advertised.get(name, (None, None))
            adv_host, adv_port = ah or host, ap or 0
        if not host:  # every address; one socket, so that port 0 means one port
            host = "0.0.0.0"
            adv_host = adv_host or host
        listener = Listener(name, proto, host, port, adv_host, adv_port, settings)
        if listener.sasl:
            for mech in listener.sasl_mechanisms():
                if mech not in SUPPORTED_MECHANISMS:
                    raise SecurityConfigError(f"listener {name}: SASL mechanism {mech} is not supported "
                                              f"(kbroker offers {', '.join(SUPPORTED_MECHANISMS)})")
            if not listener.sasl_mechanisms():
                raise SecurityConfigError(f"listener {name}: sasl.enabled.mechanisms is empty")
        out.append(listener)
    return out


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unauthenticated_exposures(listeners: list[Listener]) -> list[Listener]:
    """Listeners bound beyond loopback that let anyone in: PLAINTEXT, or SSL without required client
    certificates."""
    return [lst for lst in listeners if not is_loopback(lst.host) and not lst.authenticates]
