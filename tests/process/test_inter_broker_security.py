"""Inter-broker security: clusters of three brokers whose only listener needs SASL (PLAIN, SCRAM) or TLS, so
that followers' fetches and transaction markers must authenticate (and verify the other broker's certificate)
as Kafka's brokers do (inter.broker.listener.name / security.inter.broker.protocol,
sasl.mechanism.inter.broker.protocol, the listener's JAAS username and password). confluent-kafka replicates a
replication-factor-3 topic with acks=all and commits a transaction over partitions led by every broker, read back
read_committed; kbroker's client authenticates with each mechanism and is refused with a wrong password."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from kbroker import Broker
from kbroker.client.aio import Connection
from kbroker.client.protocol import ClientError
from kbroker.client.sasl import SaslCredentials
from kbroker.errors import ErrorCode
from kbroker.inter_broker import inter_broker_client
from kbroker.security import SecurityConfigError
from kbroker.security.listeners import resolve_listeners
from support.securityhelpers import make_certs

TIMEOUT_S = 30
RECORDS = 300
USERS = [("broker", "broker-secret"), ("alice", "alice-secret")]
MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"


def _jaas(module: str, user: str, password: str) -> str:
    return f'org.apache.kafka.common.security.{module} required username="{user}" password="{password}";'


def _settings(protocol: str, mechanism: str | None, certs: dict | None, password: str = "broker-secret") -> dict:
    name = protocol.lower()
    s = {"listeners": f"{protocol}://127.0.0.1:0", "inter.broker.listener.name": protocol,
         "offsets.topic.num.partitions": "3", "transaction.state.log.num.partitions": "3"}
    if certs is not None:
        s.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": certs["server.pem"],
                  "ssl.truststore.location": certs["ca.pem"]})
    if mechanism is not None:
        s.update({f"listener.name.{name}.sasl.enabled.mechanisms": MECHANISMS,
                  "sasl.mechanism.inter.broker.protocol": mechanism,
                  f"listener.name.{name}.plain.sasl.jaas.config": _jaas("plain.PlainLoginModule", "broker", password),
                  f"listener.name.{name}.scram-sha-256.sasl.jaas.config":
                      _jaas("scram.ScramLoginModule", "broker", password),
                  f"listener.name.{name}.scram-sha-512.sasl.jaas.config":
                      _jaas("scram.ScramLoginModule", "broker", password)})
    return s


def _client_conf(b: Broker, protocol: str, mechanism: str | None, certs: dict | None) -> dict:
    conf = {"bootstrap.servers": b.bootstrap_servers, "security.protocol": protocol}
    if certs is not None:
        conf["ssl.ca.location"] = certs["ca.pem"]
    if mechanism is not None:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": "alice", "sasl.password": "alice-secret"})
    return conf


CASES = [("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SSL", None),
         ("SASL_SSL", "SCRAM-SHA-512")]


@pytest.mark.parametrize("protocol, mechanism", CASES)
def test_a_cluster_whose_only_listener_is_secured_replicates_and_writes_markers(tmp_path, protocol, mechanism):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    certs = make_certs(tmp_path / "certs") if "SSL" in protocol else None
    with Broker(brokers=3, storage="memory", sasl_users=USERS,
                settings=_settings(protocol, mechanism, certs)) as b:
        conf = _client_conf(b, protocol, mechanism, certs)
        admin = AdminClient(conf)
        topic = f"secure-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "3"})])[topic].result(TIMEOUT_S)
        # acks=all with min.insync.replicas=3: every record acknowledged only once both followers have it
        p = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": TIMEOUT_S * 1000})
        errors = []
        for i in range(RECORDS):
            p.produce(topic, value=b"v%d" % i, partition=i % 3, on_delivery=lambda err, _m: errors.append(err))
        assert p.flush(TIMEOUT_S + 5) == 0
        assert errors == [None] * RECORDS
        assert b.wait_for_leaders(TIMEOUT_S, full_isr=True)
        leaders = b.call(lambda: sorted({p.leader for p in b.cluster.controller.topic(topic).partitions}))
        assert leaders == [0, 1, 2]  # every broker leads one: markers must cross between brokers

        tp = Producer({**conf, "transactional.id": f"tx-{topic}", "linger.ms": 5})
        tp.init_transactions(TIMEOUT_S)
        tp.begin_transaction()
        for i in range(30):
            tp.produce(topic, value=b"t%d" % i, partition=i % 3)
        tp.commit_transaction(TIMEOUT_S)
        c = Consumer({**conf, "group.id": f"g-{topic}", "isolation.level": "read_committed",
                      "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, i, 0) for i in range(3)])
            got = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < RECORDS + 30 and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append(m.value())
        finally:
            c.close()
        # read_committed sees the transaction: its markers reached every partition, two of them (led by brokers
        # other than the coordinator's) as WriteTxnMarkers over the secured listener
        assert sorted(got) == sorted([b"v%d" % i for i in range(RECORDS)] + [b"t%d" % i for i in range(30)])
        sent = b.call(lambda: sum(s.state.markers.sent for s in b.cluster.servers.values()))
        assert sent >= 2


@pytest.fixture(scope="module")
def sasl_broker():
    with Broker(storage="memory", sasl_users=USERS, settings={
            "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": MECHANISMS}) as b:
        yield b


@pytest.mark.parametrize("mechanism", MECHANISMS.split(","))
def test_kbrokers_client_authenticates_with_each_mechanism(sasl_broker, mechanism):
    async def main(password: str):
        conn = await Connection.open(sasl_broker.host, sasl_broker.port, timeout_s=10,
                                     sasl=SaslCredentials(mechanism, "alice", password))
        try:
            from kbroker.client.aio import metadata_request

            resp = await conn.send(3, metadata_request(conn.version(3), []))
            return [b.node_id for b in resp.brokers]
        finally:
            await conn.close()

    assert asyncio.run(main("alice-secret")) == [0]
    with pytest.raises(ClientError) as e:
        asyncio.run(main("wrong"))
    assert e.value.code == ErrorCode.SASL_AUTHENTICATION_FAILED


def _resolve(settings: dict):
    from kbroker.config import BrokerConfig, apply_settings

    config = BrokerConfig(port=0)
    apply_settings(config, settings)
    return inter_broker_client(config.settings, resolve_listeners(config))


def test_the_inter_broker_listener_and_its_credentials_are_read_as_kafka_reads_them():
    base = {"listeners": "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT",
            "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.internal.scram-sha-512.sasl.jaas.config":
                _jaas("scram.ScramLoginModule", "broker", "s3cret")}
    assert _resolve(base).listener_name == "PLAINTEXT"  # neither key: the first listener
    client = _resolve({**base, "inter.broker.listener.name": "INTERNAL"})
    assert client.listener_name == "INTERNAL"
    assert (client.sasl.mechanism, client.sasl.username, client.sasl.password) == ("SCRAM-SHA-512", "broker",
                                                                                    "s3cret")
    assert "s3cret" not in repr(client)
    assert _resolve({**base, "security.inter.broker.protocol": "PLAINTEXT"}).sasl is None
    for bad in ({"inter.broker.listener.name": "INTERNAL", "security.inter.broker.protocol": "PLAINTEXT"},
                {"inter.broker.listener.name": "NOPE"},
                {"inter.broker.listener.name": "INTERNAL", "sasl.mechanism.inter.broker.protocol": "PLAIN"},
                {"inter.broker.listener.name": "INTERNAL", "sasl.mechanism.inter.broker.protocol": "GSSAPI"},
                {"inter.broker.listener.name": "INTERNAL",
                 "listener.name.internal.scram-sha-512.sasl.jaas.config":
                     'org.apache.kafka.common.security.scram.ScramLoginModule required;'}):
        with pytest.raises(SecurityConfigError):
            _resolve({**base, **bad})
