"""Brokers with listeners, TLS, SASL and ACLs for the security tests, and the clients' settings for them."""

from __future__ import annotations

import threading
import time

from support.brokerproc import BrokerProcess
from kbroker import Broker
from kbroker.security.certs import write_certs
from kbroker.client import BlockingConnection

from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import sasl_authenticate as SA
from kbroker.wire.messages import sasl_handshake as SH

TIMEOUT_S = 20
LISTENERS = ("PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0")


def broker_settings(certs: dict, **extra) -> dict[str, str]:
    """Four listeners; SSL asks for client certificates; SASL_PLAINTEXT also offers OAUTHBEARER."""
    return {
        "listeners": LISTENERS,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs["server.pem"]),
        "ssl.truststore.location": str(certs["ca.pem"]),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        **extra,
    }


def make_certs(directory) -> dict:
    return {k: str(v) for k, v in write_certs(directory).items()}


def start_broker(certs: dict, *, users=(("alice", "alice-secret"), ("admin", "admin-secret")), acl: bool = False,
                 super_users=("User:admin",), **extra) -> Broker:
    fields = {"sasl_users": list(users)}
    if acl:
        fields.update(authorizer_enabled=True, super_users=list(super_users))
    return Broker(port=0, storage="memory", settings=broker_settings(certs, **extra), **fields).start()


def confluent_conf(broker_listeners: dict, certs: dict, protocol: str, mechanism: str | None = None,
                   user: str | None = None, password: str | None = None, **extra) -> dict:
    conf = {"bootstrap.servers": broker_listeners[protocol], "security.protocol": protocol}
    if "SSL" in protocol:
        conf["ssl.ca.location"] = certs["ca.pem"]
    if mechanism:
        conf["sasl.mechanism"] = mechanism
    if user is not None:
        conf.update({"sasl.username": user, "sasl.password": password})
    conf.update(extra)
    return conf


def confluent_produce(conf: dict, topic: str, values, timeout: float = TIMEOUT_S) -> list:
    """Produces; returns the delivery errors (None for each success)."""
    from confluent_kafka import Producer

    results = []
    p = Producer({**conf, "linger.ms": 5, "message.timeout.ms": int(timeout * 1000)})
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: results.append(err))
    assert p.flush(timeout + 5) == 0
    return results


def confluent_consume(conf: dict, topic: str, count: int, group: str | None = None, timeout: float = TIMEOUT_S):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**conf, "group.id": group or f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        if group is None:
            c.assign([TopicPartition(topic, 0, 0)])
        else:
            c.subscribe([topic])
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise AssertionError(m.error())
            got.append(m.value())
        return got
    finally:
        c.close()


def sasl_login(raw: BlockingConnection, mechanism: str, token: bytes, handshake_version: int = 1,
               authenticate_version: int = 1):
    """ApiVersions, SaslHandshake, SaslAuthenticate over a raw socket; returns the SaslAuthenticate answer."""
    raw.request(18, 0, AV.ApiVersionsRequest())
    hs = raw.request(17, handshake_version, SH.SaslHandshakeRequest(mechanism=mechanism))
    assert hs.error_code == 0, hs
    return raw.request(36, authenticate_version, SA.SaslAuthenticateRequest(auth_bytes=token))


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


class SecureBrokerProcess(BrokerProcess):
    """A kbroker process that also reads the per-listener ready lines: ``listeners`` is {name: host:port}."""

    def __init__(self, data_dir, *args, listener_count: int, **kw):
        super().__init__(data_dir, *args, **kw)
        self.listener_count = listener_count
        self.listeners: dict[str, str] = {}
        self.first_line = ""

    def _read_ready_line(self, timeout: float) -> str:
        first = super()._read_ready_line(timeout)
        self.first_line = first
        lines: list[str] = []

        def read():
            for _ in range(self.listener_count):
                lines.append(self.proc.stdout.readline().strip())

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        self.listeners = {}
        for line in lines:
            assert line.startswith("kbroker listening on ") and "://" in line, lines
            name, address = line[len("kbroker listening on "):].split("://", 1)
            self.listeners[name] = address
        return first
