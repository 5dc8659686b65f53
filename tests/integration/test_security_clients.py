"""Listeners, TLS and SASL with stock clients over real sockets: confluent-kafka (librdkafka), kafka-python
and aiokafka produce and consume over SASL_SSL with PLAIN and SCRAM-SHA-256/512, over SSL with a client
certificate, and with OAUTHBEARER unsecured tokens; a wrong password fails authentication; SCRAM users made
with the admin client log in; and, byte for byte, what a connection may do before it has authenticated."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages import metadata as MD
from kbroker.wire.messages import sasl_authenticate as SA
from kbroker.wire.messages import sasl_handshake as SH
from kbroker.client import BlockingConnection
from support.securityhelpers import (TIMEOUT_S, confluent_conf, confluent_consume, confluent_produce, host_port,
                             make_certs, sasl_login, start_broker)

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(certs):
    b = start_broker(certs)
    yield b
    b.stop()


def topic() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


# -- confluent-kafka -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_sasl_ssl_produce_and_consume(broker, certs, mechanism):
    conf = confluent_conf(broker.listeners, certs, "SASL_SSL", mechanism, "alice", "alice-secret")
    t = topic()
    assert confluent_produce(conf, t, [b"a", b"b", b"c"]) == [None, None, None]
    assert confluent_consume(conf, t, 3, group=f"g-{t}") == [b"a", b"b", b"c"]


def test_metadata_advertises_the_listener_the_client_came_through(broker, certs):
    from confluent_kafka.admin import AdminClient

    for protocol in ("PLAINTEXT", "SASL_SSL"):
        extra = {} if protocol == "PLAINTEXT" else {"sasl.mechanism": "PLAIN", "sasl.username": "alice",
                                                     "sasl.password": "alice-secret"}
        admin = AdminClient(confluent_conf(broker.listeners, certs, protocol, **extra))
        md = admin.list_topics(timeout=TIMEOUT_S)
        (b,) = md.brokers.values()
        assert f"{b.host}:{b.port}" == broker.listeners[protocol]


def test_confluent_wrong_password_is_an_authentication_failure(broker, certs):
    from confluent_kafka import KafkaError, Producer

    errors = []
    p = Producer({**confluent_conf(broker.listeners, certs, "SASL_SSL", "SCRAM-SHA-256", "alice", "wrong"),
                  "error_cb": errors.append})
    deadline = time.monotonic() + TIMEOUT_S
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth and "Authentication failed" in auth[0].str()


def test_confluent_ssl_with_a_client_certificate(broker, certs):
    conf = confluent_conf(broker.listeners, certs, "SSL", **{"ssl.certificate.location": certs["client-cert.pem"],
                                                             "ssl.key.location": certs["client-key.pem"]})
    t = topic()
    assert confluent_produce(conf, t, [b"over tls"]) == [None]
    assert confluent_consume(conf, t, 1) == [b"over tls"]


def test_ssl_listener_requires_the_client_certificate(broker, certs):
    import ssl
    import socket

    host, port = host_port(broker.listeners["SSL"])
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(b"\x00\x00\x00\x00")
                assert tls.recv(1) == b""  # TLS 1.3 reports the refused certificate on first read
                raise ConnectionError("closed")


def test_confluent_oauthbearer_unsecured_token(broker, certs):
    conf = confluent_conf(broker.listeners, certs, "SASL_PLAINTEXT", "OAUTHBEARER",
                          **{"sasl.oauthbearer.config": "principal=bob", "enable.sasl.oauthbearer.unsecure.jwt": True})
    t = topic()
    assert confluent_produce(conf, t, [b"token"]) == [None]
    assert confluent_consume(conf, t, 1) == [b"token"]


def test_scram_users_made_with_the_admin_client_log_in(broker, certs):
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)

    admin = AdminClient(confluent_conf(broker.listeners, certs, "SASL_SSL", "SCRAM-SHA-512", "admin", "admin-secret"))
    user = f"u{uuid.uuid4().hex[:8]}"
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"pw-256"),
    ])
    futures[user].result(TIMEOUT_S)
    described = admin.describe_user_scram_credentials([user])[user].result(TIMEOUT_S)
    (info,) = described.scram_credential_infos
    assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_256, 8192)
    conf = confluent_conf(broker.listeners, certs, "SASL_SSL", "SCRAM-SHA-256", user, "pw-256")
    assert confluent_produce(conf, topic(), [b"x"]) == [None]

    admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)])[user].result(
        TIMEOUT_S)
    errors = []
    p = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + TIMEOUT_S
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors)


# -- kafka-python ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_sasl_ssl_produce_and_consume(broker, certs, mechanism):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    common = dict(bootstrap_servers=broker.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                  ssl_cafile=certs["ca.pem"], sasl_mechanism=mechanism, sasl_plain_username="alice",
                  sasl_plain_password="alice-secret")
    t = topic()
    p = KafkaProducer(**common, acks="all")
    try:
        for v in (b"one", b"two"):
            p.send(t, v).get(TIMEOUT_S)
    finally:
        p.close()
    c = KafkaConsumer(**common, auto_offset_reset="earliest", consumer_timeout_ms=TIMEOUT_S * 1000)
    try:
        c.assign([TopicPartition(t, 0)])
        got = [m.value for _, m in zip(range(2), c)]
    finally:
        c.close()
    assert got == [b"one", b"two"]


def test_kafka_python_ssl_client_certificate(broker, certs):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=broker.listeners["SSL"], security_protocol="SSL", ssl_cafile=certs["ca.pem"],
                      ssl_certfile=certs["client-cert.pem"], ssl_keyfile=certs["client-key.pem"])
    try:
        assert p.send(topic(), b"cert").get(TIMEOUT_S).offset == 0
    finally:
        p.close()


def test_kafka_python_wrong_password(broker, certs):
    import kafka.errors as Errors
    from kafka import KafkaProducer

    with pytest.raises(Errors.KafkaError):  # it cannot bootstrap: every attempt fails authentication
        KafkaProducer(bootstrap_servers=broker.listeners["SASL_PLAINTEXT"], security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username="alice", sasl_plain_password="wrong",
                      bootstrap_timeout_ms=2000)


# -- aiokafka --------------------------------------------------------------------------------------------

def test_aiokafka_sasl_ssl_scram(broker, certs):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.helpers import create_ssl_context

    t = topic()

    async def run():
        common = dict(bootstrap_servers=broker.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                      ssl_context=create_ssl_context(cafile=certs["ca.pem"]), sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="alice", sasl_plain_password="alice-secret")
        p = AIOKafkaProducer(**common)
        await p.start()
        try:
            await p.send_and_wait(t, b"from aiokafka")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(**common, auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([TopicPartition(t, 0)])
            msg = await asyncio.wait_for(c.getone(), TIMEOUT_S)
        finally:
            await c.stop()
        return msg.value

    assert asyncio.run(run()) == b"from aiokafka"


# -- the exchange, byte for byte -------------------------------------------------------------------------

def test_a_request_before_authentication_closes_the_connection(broker):
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        raw.send_bytes(raw.frame(3, 1, MD.MetadataRequest(topics=None)))
        assert raw.read_frame() is None  # closed, no answer
    finally:
        raw.close()
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:  # SaslAuthenticate without a handshake
        raw.send_bytes(raw.frame(36, 1, SA.SaslAuthenticateRequest(auth_bytes=b"\x00alice\x00alice-secret")))
        assert raw.read_frame() is None
    finally:
        raw.close()


def test_failed_authentication_is_answered_then_the_connection_closed(broker):
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        r = sasl_login(raw, "PLAIN", b"\x00alice\x00nope")
        assert (r.error_code, r.error_message) == (ErrorCode.SASL_AUTHENTICATION_FAILED,
                                                   "Authentication failed: Invalid username or password")
        assert raw.is_closed()
    finally:
        raw.close()
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        hs = raw.request(17, 1, SH.SaslHandshakeRequest(mechanism="GSSAPI"))
        assert hs.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM and "PLAIN" in hs.mechanisms
        assert raw.is_closed()
    finally:
        raw.close()


def test_authenticated_connection_serves_requests_and_sasl_again_is_illegal(broker):
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        r = sasl_login(raw, "PLAIN", b"\x00alice\x00alice-secret")
        assert (r.error_code, r.session_lifetime_ms) == (0, 0)
        assert raw.request(3, 1, MD.MetadataRequest(topics=None)).brokers[0].port == \
            host_port(broker.listeners["SASL_PLAINTEXT"])[1]
        assert raw.request(17, 1, SH.SaslHandshakeRequest(mechanism="PLAIN")).error_code == ErrorCode.ILLEGAL_SASL_STATE
        again = raw.request(36, 1, SA.SaslAuthenticateRequest(auth_bytes=b"x"))
        assert again.error_code == ErrorCode.ILLEGAL_SASL_STATE
    finally:
        raw.close()


def test_sasl_handshake_v0_then_raw_tokens(broker):
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        assert raw.request(17, 0, SH.SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        raw.send_bytes(b"\x00\x00\x00\x13" + b"\x00alice\x00alice-secret")
        assert raw.read_frame() == b""  # PLAIN's empty challenge, size-prefixed, unframed
        assert raw.request(3, 1, MD.MetadataRequest(topics=None)).brokers
    finally:
        raw.close()


def test_plaintext_listener_answers_sasl_with_illegal_state(broker):
    raw = BlockingConnection(*host_port(broker.listeners["PLAINTEXT"]))
    try:
        assert raw.request(17, 1, SH.SaslHandshakeRequest(mechanism="PLAIN")).error_code == ErrorCode.ILLEGAL_SASL_STATE
    finally:
        raw.close()


def _unsecured_token(sub: str, lifetime_s: float) -> bytes:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    now = time.time()
    token = f"{enc({'alg': 'none'})}.{enc({'sub': sub, 'iat': now, 'exp': now + lifetime_s})}."
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


def test_oauthbearer_session_lifetime_is_the_tokens(broker):
    raw = BlockingConnection(*host_port(broker.listeners["SASL_PLAINTEXT"]))
    try:
        r = sasl_login(raw, "OAUTHBEARER", _unsecured_token("bob", 3600))
        assert r.error_code == 0 and 3_500_000 < r.session_lifetime_ms <= 3_600_000
    finally:
        raw.close()


def test_reauthentication_and_expired_sessions(certs):
    """KIP-368 on a clock the test moves: the lifetime is told, a re-authentication renews it, and an expired
    session is closed at its next request."""
    b = start_broker(certs, **{"listener.name.sasl_plaintext.connections.max.reauth.ms": "60000"})
    try:
        server = next(s for s in b.broker_server.servers if s.listener.name == "SASL_PLAINTEXT")
        now = [1000.0]
        b.call(lambda: setattr(server.auth, "monotonic", lambda: now[0]))
        raw = BlockingConnection(*host_port(b.listeners["SASL_PLAINTEXT"]))
        try:
            assert sasl_login(raw, "PLAIN", b"\x00alice\x00alice-secret").session_lifetime_ms == 60000
            now[0] += 50
            assert raw.request(17, 1, SH.SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0  # re-authenticates
            r = raw.request(36, 2, SA.SaslAuthenticateRequest(auth_bytes=b"\x00alice\x00alice-secret"))
            assert (r.error_code, r.session_lifetime_ms) == (0, 60000)
            now[0] += 59
            assert raw.request(3, 1, MD.MetadataRequest(topics=None)).brokers
            now[0] += 2  # past the renewed lifetime
            raw.send_bytes(raw.frame(3, 1, MD.MetadataRequest(topics=None)))
            assert raw.read_frame() is None
        finally:
            raw.close()
    finally:
        b.stop()


def test_clients_reauthenticate_before_their_session_expires(certs):
    """KIP-368 with real clients: librdkafka and kafka-python re-authenticate within the lifetime the broker
    tells them, on the same connection, and keep producing."""
    import collections

    from confluent_kafka import Producer
    from kafka import KafkaProducer

    b = start_broker(certs, **{"connections.max.reauth.ms": "1500"})

    def handshakes_per_connection():
        return collections.Counter(r["connection"] for r in b.control.requests(1000) if r["api"] == "SaslHandshake")

    try:
        conf = confluent_conf(b.listeners, certs, "SASL_SSL", "SCRAM-SHA-256", "alice", "alice-secret")
        p = Producer(conf)
        p.produce("reauth", b"before")
        assert p.flush(TIMEOUT_S) == 0
        deadline = time.monotonic() + TIMEOUT_S
        while max(handshakes_per_connection().values()) < 2 and time.monotonic() < deadline:
            p.poll(0.1)
        assert max(handshakes_per_connection().values()) >= 2
        assert confluent_produce(conf, "reauth", [b"after"]) == [None]
        p.produce("reauth", b"after, same producer")
        assert p.flush(TIMEOUT_S) == 0

        seen = set(handshakes_per_connection())
        kp = KafkaProducer(bootstrap_servers=b.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                           ssl_cafile=certs["ca.pem"], sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                           sasl_plain_password="alice-secret")
        try:
            kp.send("reauth", b"kafka-python").get(TIMEOUT_S)
            deadline = time.monotonic() + TIMEOUT_S
            while not any(n >= 2 for c, n in handshakes_per_connection().items() if c not in seen) \
                    and time.monotonic() < deadline:
                kp.send("reauth", b"waiting").get(TIMEOUT_S)
            assert any(n >= 2 for c, n in handshakes_per_connection().items() if c not in seen)
            assert kp.send("reauth", b"kafka-python, re-authenticated").get(TIMEOUT_S).offset >= 0
        finally:
            kp.close()
    finally:
        b.stop()
