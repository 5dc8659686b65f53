"""How a broker reaches the other brokers (followers fetching from leaders, transaction markers): Kafka's
inter-broker listener and its security.

- The listener: ``inter.broker.listener.name``, or the listener named after ``security.inter.broker.protocol``
  (as Kafka's ListenerName.forSecurityProtocol); only one of the two may be set. With neither, kbroker uses the
  first listener (Kafka's default, security.inter.broker.protocol=PLAINTEXT, needs a listener named PLAINTEXT).
  The other broker is reached at its advertised endpoint of that listener's name.
- SASL (SASL_PLAINTEXT, SASL_SSL): ``sasl.mechanism.inter.broker.protocol`` (PLAIN, SCRAM-SHA-256 or
  SCRAM-SHA-512; it must be one of the listener's ``sasl.enabled.mechanisms``; unset: the first of those
  kbroker's client speaks, where Kafka's default is GSSAPI), with the user name and password of the listener's
  JAAS config for that mechanism (``listener.name.<l>.<mechanism>.sasl.jaas.config``, then the less specific
  forms: the ``username`` / ``password`` options, as Kafka's broker logs in to other brokers).
- TLS (SSL, SASL_SSL): the listener's truststore verifies the other broker (security/tls.client_context).

Resolved once when the broker starts, so a configuration that cannot work is said at start-up.
"""

from __future__ import annotations

import ssl as ssl_module
from dataclasses import dataclass, field

from .client.aio import Connection
from .client.sasl import CLIENT_MECHANISMS, SaslCredentials
from .security import SecurityConfigError, tls
from .security.jaas import parse_jaas_config
from .security.listeners import Listener


@dataclass
class InterBrokerClient:
    """The listener brokers reach each other by, and the means to connect to it. ``unusable``: why this broker
    cannot log in to the others (no inter-broker settings, and a first listener needing SASL credentials its
    JAAS config does not give): a single broker never needs to, so this is said only when a connection is
    attempted."""
    listener: Listener
    sasl: SaslCredentials | None = None
    ssl: ssl_module.SSLContext | None = field(default=None, repr=False)
    unusable: str | None = None

    @property
    def listener_name(self) -> str:
        return self.listener.name

    async def connect(self, host: str, port: int, *, client_id: str, timeout_s: float) -> Connection:
        """A connection to another broker's inter-broker listener, over TLS and authenticated as it needs."""
        if self.unusable is not None:
            raise ConnectionError(self.unusable)
        return await Connection.open(host, port, client_id=client_id, timeout_s=timeout_s, ssl=self.ssl,
                                     sasl=self.sasl)


INTER_BROKER_KEYS = ("inter.broker.listener.name", "security.inter.broker.protocol",
                     "sasl.mechanism.inter.broker.protocol")


def inter_broker_client(settings: dict[str, str], listeners: list[Listener]) -> InterBrokerClient:
    """The inter-broker listener and its credentials from the broker's Kafka-named settings; SecurityConfigError
    when they were set and cannot work."""
    listener = _listener(settings, listeners)
    ssl = tls.client_context(listener) if listener.tls else None
    if not listener.sasl:
        return InterBrokerClient(listener, None, ssl)
    try:
        return InterBrokerClient(listener, _credentials(settings, listener), ssl)
    except SecurityConfigError as e:
        if any(settings.get(k) for k in INTER_BROKER_KEYS):
            raise
        return InterBrokerClient(listener, None, ssl, unusable=str(e))


def _listener(settings: dict[str, str], listeners: list[Listener]) -> Listener:
    name = (settings.get("inter.broker.listener.name") or "").strip().upper()
    protocol = (settings.get("security.inter.broker.protocol") or "").strip().upper()
    if name and protocol:
        raise SecurityConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol "
                                  "should be set.")
    wanted = name or protocol
    if not wanted:
        return listeners[0]
    for listener in listeners:
        if listener.name == wanted:
            return listener
    key = "inter.broker.listener.name" if name else "security.inter.broker.protocol"
    raise SecurityConfigError(f"{key} must name a listener defined in listeners ({wanted} is not one of "
                              f"{', '.join(lst.name for lst in listeners)})")


def _credentials(settings: dict[str, str], listener: Listener) -> SaslCredentials:
    enabled = listener.sasl_mechanisms()
    mechanism = (settings.get("sasl.mechanism.inter.broker.protocol") or "").strip().upper()
    if not mechanism:
        mechanism = next((m for m in enabled if m in CLIENT_MECHANISMS), "")
        if not mechanism:
            raise SecurityConfigError(f"inter-broker listener {listener.name}: none of its SASL mechanisms "
                                      f"({', '.join(enabled)}) can be used between brokers: enable one of "
                                      f"{', '.join(CLIENT_MECHANISMS)}")
    elif mechanism not in CLIENT_MECHANISMS:
        raise SecurityConfigError(f"sasl.mechanism.inter.broker.protocol={mechanism} is not supported between "
                                  f"kbroker brokers ({', '.join(CLIENT_MECHANISMS)})")
    elif mechanism not in enabled:
        raise SecurityConfigError("sasl.mechanism.inter.broker.protocol must be included in "
                                  f"sasl.enabled.mechanisms of listener {listener.name} when SASL is used for "
                                  "inter-broker communication")
    jaas = listener.mechanism_setting(mechanism, "sasl.jaas.config")
    options = parse_jaas_config(jaas).options if jaas else {}
    username, password = options.get("username"), options.get("password")
    if not username or password is None:
        raise SecurityConfigError(
            f"inter-broker listener {listener.name} uses SASL {mechanism}: its JAAS config "
            f"({listener.prefix}{mechanism.lower()}.sasl.jaas.config) needs the username and password this "
            "broker logs in to the others with")
    return SaslCredentials(mechanism, username, password)
