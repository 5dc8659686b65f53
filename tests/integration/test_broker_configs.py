"""Broker configs as Kafka describes and changes them (issue 16's settings, issue 18's known differences):
every key Kafka lists, its source and synonyms, dynamic broker configs per broker and as the cluster default,
applied at once and kept across restarts. Facts checked against a real Kafka 4.4 broker's answers."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from support.brokerproc import BrokerProcess
from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.wire.messages import alter_configs as AC
from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import create_topics as CT
from kbroker.wire.messages import describe_configs as DC
from kbroker.wire.messages import incremental_alter_configs as IAC
from kbroker.client import BlockingConnection

BROKER, TOPIC = 4, 2
DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT, TOPIC_CONFIG = 2, 3, 4, 5, 1
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

ISSUE_16_DEFAULTS = {
    "connections.max.idle.ms": "600000", "connection.failed.authentication.delay.ms": "100",
    "sasl.server.max.receive.size": "524288", "socket.request.max.bytes": "104857600",
    "queued.max.request.bytes": "-1", "fetch.max.bytes": "57671680", "max.connections": "2147483647",
    "max.connections.per.ip": "2147483647", "max.connections.per.ip.overrides": "",
}


def _describe(c: BlockingConnection, name: str, keys=None, resource_type=BROKER) -> dict:
    R = DC.DescribeConfigsRequest
    resp = c.request(32, 4, R(resources=[R.DescribeConfigsResource(resource_type=resource_type, resource_name=name,
                                                                  configuration_keys=keys)], include_synonyms=True))
    result = resp.results[0]
    assert result.error_code == 0, (result.error_code, result.error_message)
    return {e.name: (e.value, e.config_source, e.read_only, [(s.name, s.value, s.source) for s in e.synonyms])
            for e in result.configs}


def _incremental(c: BlockingConnection, name: str, ops, resource_type=BROKER) -> tuple[int, str | None]:
    I = IAC.IncrementalAlterConfigsRequest
    resp = c.request(44, 1, I(resources=[I.AlterConfigsResource(
        resource_type=resource_type, resource_name=name,
        configs=[I.AlterableConfig(name=n, config_operation=op, value=v) for n, op, v in ops])]))
    return resp.responses[0].error_code, resp.responses[0].error_message


def _connect(b) -> socket.socket | None:
    """A connection the broker answered (kept open by the caller), or None if it closed it at once."""
    s = socket.create_connection((b.host, b.port), timeout=10)
    raw = BlockingConnection.over(s)
    try:
        raw.request(18, 0, AV.ApiVersionsRequest())
        return s
    except (ConnectionError, OSError):
        s.close()
        return None


@pytest.fixture
def b():
    with Broker(port=0, storage="memory", settings={"num.partitions": "3", "log.retention.hours": "1"}) as broker:
        yield broker


@pytest.fixture
def c(b):
    client = BlockingConnection(b.host, b.port)
    yield client
    client.close()


def test_broker_resource_lists_what_kafka_lists(c):
    configs = _describe(c, "0")
    assert len(configs) >= 350  # every key a Kafka 4.4 broker lists
    for key in ("advertised.listeners", "default.replication.factor", "num.partitions", "listeners",
                "offsets.topic.replication.factor", "ssl.keystore.location"):
        assert key in configs
    for key, default in ISSUE_16_DEFAULTS.items():
        assert configs[key][:2] == (default, DEFAULT), key
        assert configs[key][3] == [(key, default, DEFAULT)], key
    # As Kafka: given in the configuration -> STATIC_BROKER_CONFIG, then the default as a synonym.
    assert configs["num.partitions"] == ("3", STATIC, True, [("num.partitions", "3", STATIC),
                                                             ("num.partitions", "1", DEFAULT)])
    # Synonyms are the names of one setting, the ones before the described name dropped: log.retention.ms has
    # no value and no synonym; log.retention.hours has its own.
    assert configs["log.retention.ms"] == (None, DEFAULT, False, [])
    assert configs["log.retention.hours"] == ("1", STATIC, True, [("log.retention.hours", "1", STATIC),
                                                                  ("log.retention.hours", "168", DEFAULT)])
    assert configs["advertised.listeners"] == (None, DEFAULT, True, [])
    # Dynamic ones are not read-only (Kafka's DynamicBrokerConfig).
    assert [configs[k][2] for k in ("max.connections", "message.max.bytes", "connections.max.idle.ms")] == \
        [False, False, True]
    # The cluster default level: what Kafka 4 writes when it formats a new cluster.
    assert _describe(c, "") == {"min.insync.replicas": ("1", DYNAMIC_DEFAULT, False,
                                                        [("min.insync.replicas", "1", DYNAMIC_DEFAULT)])}
    assert configs["min.insync.replicas"] == ("1", DYNAMIC_DEFAULT, False, [
        ("min.insync.replicas", "1", DYNAMIC_DEFAULT), ("min.insync.replicas", "1", DEFAULT)])


def test_dynamic_configs_apply_at_once_per_broker_and_as_cluster_default(b, c):
    key = "max.connections.per.ip"
    assert _incremental(c, "", [(key, SET, "3")]) == (0, None)  # the cluster default
    assert _describe(c, "")[key] == ("3", DYNAMIC_DEFAULT, False, [(key, "3", DYNAMIC_DEFAULT)])
    assert _describe(c, "0", [key])[key] == ("3", DYNAMIC_DEFAULT, False,
                                             [(key, "3", DYNAMIC_DEFAULT), (key, "2147483647", DEFAULT)])
    kept = [_connect(b), _connect(b)]  # with c: 3 connections
    assert all(kept)
    assert _connect(b) is None  # over the limit, at once
    assert _incremental(c, "0", [(key, SET, "10")]) == (0, None)  # this broker wins over the cluster default
    assert _describe(c, "0", [key])[key] == ("10", DYNAMIC_BROKER, False, [
        (key, "10", DYNAMIC_BROKER), (key, "3", DYNAMIC_DEFAULT), (key, "2147483647", DEFAULT)])
    kept.append(_connect(b))
    assert kept[-1] is not None
    assert _incremental(c, "0", [(key, DELETE, None)]) == (0, None)
    assert _incremental(c, "", [(key, DELETE, None)]) == (0, None)
    assert _describe(c, "0", [key])[key][:2] == ("2147483647", DEFAULT)
    for s in kept:
        s.close()


def test_dynamic_log_defaults_reach_every_topic(b, c):
    CR = CT.CreateTopicsRequest
    c.request(19, 5, CR(topics=[CR.CreatableTopic(name="t", num_partitions=1, replication_factor=1)],
                        timeout_ms=10000))
    # As Kafka: log.retention.hours sets it, but log.retention.ms names it, so no synonym and DEFAULT_CONFIG.
    assert _describe(c, "t", ["retention.ms"], TOPIC)["retention.ms"] == ("3600000", DEFAULT, False, [])
    assert _incremental(c, "", [("log.retention.ms", SET, "1000")]) == (0, None)
    assert _describe(c, "t", ["retention.ms"], TOPIC)["retention.ms"] == ("1000", DYNAMIC_DEFAULT, False, [
        ("log.retention.ms", "1000", DYNAMIC_DEFAULT), ("log.retention.hours", "1", STATIC),
        ("log.retention.hours", "168", DEFAULT)])
    assert b.call(lambda: b.state.topics.get("t").partitions[0].log.config.retention_ms) == 1000
    created = c.request(19, 5, CR(topics=[CR.CreatableTopic(name="t2", num_partitions=1, replication_factor=1)],
                                  timeout_ms=10000)).topics[0]
    assert [(e.value, e.config_source) for e in created.configs if e.name == "retention.ms"] == [
        ("1000", DYNAMIC_DEFAULT)]  # CreateTopics v5+ says where each value comes from, as DescribeConfigs
    assert _incremental(c, "", [("log.retention.ms", DELETE, None)]) == (0, None)
    assert b.call(lambda: b.state.topics.get("t").partitions[0].log.config.retention_ms) == 3600000


def test_refusals_say_what_kafka_says(c):
    assert _incremental(c, "0", [("num.partitions", SET, "3")]) == (
        ErrorCode.INVALID_REQUEST, "Cannot update these configs dynamically: [num.partitions]")
    assert _incremental(c, "0", [("max.connections", SET, "abc")]) == (
        ErrorCode.INVALID_REQUEST, "Invalid value abc for configuration max.connections: Not a number of type INT")
    assert _incremental(c, "", [("listeners", SET, "PLAINTEXT://:9092")]) == (
        ErrorCode.INVALID_REQUEST,
        "Cannot update these configs at default cluster level, broker id must be specified: [listeners]")
    assert _incremental(c, "7", [("max.connections", SET, "100")]) == (
        ErrorCode.INVALID_REQUEST, "Unexpected broker id, expected 0, but received 7")
    A = AC.AlterConfigsRequest
    resp = c.request(33, 2, A(resources=[A.AlterConfigsResource(resource_type=BROKER, resource_name="0", configs=[
        A.AlterableConfig(name="connections.max.idle.ms", value="1000")])]))
    assert (resp.responses[0].error_code, resp.responses[0].error_message) == (
        ErrorCode.INVALID_REQUEST, "Cannot update these configs dynamically: [connections.max.idle.ms]")


def test_topic_configs_kafka_knows(c):
    CR = CT.CreateTopicsRequest
    c.request(19, 5, CR(topics=[CR.CreatableTopic(name="tt", num_partitions=2, replication_factor=1, configs=[
        CR.CreatableTopicConfig(name="cleanup.policy", value="compact,delete")])], timeout_ms=10000))
    # SUBTRACT that leaves a list empty is accepted, as Kafka 4 accepts it.
    assert _incremental(c, "tt", [("cleanup.policy", SUBTRACT, "compact,delete")], TOPIC) == (0, None)
    assert _incremental(c, "tt", [("leader.replication.throttled.replicas", SET, "0:0,1:0"),
                                  ("follower.replication.throttled.replicas", SET, "*")], TOPIC) == (0, None)
    assert _incremental(c, "tt", [("leader.replication.throttled.replicas", SET, "abc")], TOPIC) == (
        ErrorCode.INVALID_CONFIG,
        "Invalid value [abc] for configuration leader.replication.throttled.replicas: "
        "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following "
        "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
    configs = _describe(c, "tt", ["cleanup.policy", "leader.replication.throttled.replicas",
                                  "follower.replication.throttled.replicas"], TOPIC)
    assert configs["cleanup.policy"] == ("", TOPIC_CONFIG, False, [("cleanup.policy", "", TOPIC_CONFIG),
                                                                   ("log.cleanup.policy", "delete", DEFAULT)])
    assert configs["leader.replication.throttled.replicas"] == (
        "0:0,1:0", TOPIC_CONFIG, False, [("leader.replication.throttled.replicas", "0:0,1:0", TOPIC_CONFIG)])
    assert configs["follower.replication.throttled.replicas"][:2] == ("*", TOPIC_CONFIG)


def test_settings_from_file_set_and_env_are_static_and_dynamic_ones_persist(tmp_path, monkeypatch):
    props = tmp_path / "server.properties"
    props.write_text("connections.max.idle.ms=120000\nqueued.max.request.bytes=209715200\n")
    monkeypatch.setenv("KAFKA_SASL_SERVER_MAX_RECEIVE_SIZE", "65536")
    proc = BrokerProcess(tmp_path / "data", "--config", str(props), "--set", "max.connections=500")
    proc.start()
    try:
        admin = AdminClient({"bootstrap.servers": proc.bootstrap_servers})
        res = ConfigResource(ConfigResource.Type.BROKER, "0")
        entries = admin.describe_configs([res])[res].result(30)
        for key, value in (("connections.max.idle.ms", "120000"), ("queued.max.request.bytes", "209715200"),
                           ("sasl.server.max.receive.size", "65536"), ("max.connections", "500")):
            assert (entries[key].value, entries[key].source) == (value, STATIC), key
        # The stock admin client changes a dynamic config; it applies at once and survives a restart.
        change = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
            ConfigEntry("max.connections.per.ip", "77", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([change])[change].result(30)
        assert admin.describe_configs([res])[res].result(30)["max.connections.per.ip"].value == "77"
    finally:
        proc.stop()
    proc.start()
    try:
        admin = AdminClient({"bootstrap.servers": proc.bootstrap_servers})
        entry = admin.describe_configs([res])[res].result(30)["max.connections.per.ip"]
        assert (entry.value, entry.source) == ("77", DYNAMIC_BROKER)
    finally:
        proc.kill()


def test_limits_are_checked_together_as_kafka_checks_them(c):
    with pytest.raises(ValueError, match="max.connections.per.ip can be set to zero only if"):
        Broker(port=0, storage="memory", settings={"max.connections.per.ip": "0"})
    with pytest.raises(ValueError, match="queued.max.request.bytes must be larger or equal"):
        Broker(port=0, storage="memory", settings={"queued.max.request.bytes": "1000"})
    with pytest.raises(ValueError, match="replica.fetch.wait.max.ms should always be less than or equal to"):
        Broker(port=0, storage="memory", settings={"replica.lag.time.max.ms": "300"})
    with pytest.raises(ValueError, match="replica.socket.timeout.ms should always be at least"):
        Broker(port=0, storage="memory", settings={"replica.socket.timeout.ms": "100"})
    code, message = _incremental(c, "0", [("max.connections.per.ip", SET, "0")])
    assert code == ErrorCode.INVALID_REQUEST and "can be set to zero only if" in message
    assert _incremental(c, "0", [("max.connections.per.ip", SET, "0"),
                                 ("max.connections.per.ip.overrides", SET, "127.0.0.1:100")]) == (0, None)


def test_a_listener_limit_is_dynamic_with_the_base_key_as_synonym(b, c):
    key = "listener.name.plaintext.max.connections"
    assert _incremental(c, "", [(key, SET, "0")]) == (ErrorCode.INVALID_REQUEST, "Invalid max.connections 0")
    assert _incremental(c, "", [(key, SET, "2")]) == (0, None)
    # read_only as Kafka computes it: the prefixed name is not in its list of dynamic configs.
    assert _describe(c, "")[key] == ("2", DYNAMIC_DEFAULT, True, [(key, "2", DYNAMIC_DEFAULT)])
    assert b.config.listener_max_connections == {"PLAINTEXT": 2}
    kept = _connect(b)  # with c: 2 on PLAINTEXT
    assert kept is not None and _connect(b) is None
    assert _incremental(c, "", [(key, DELETE, None)]) == (0, None)
    assert b.config.listener_max_connections == {}
    kept.close()
