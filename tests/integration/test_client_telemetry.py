"""Client telemetry (KIP-714) with a stock client: a client-metrics subscription set with IncrementalAlterConfigs
makes librdkafka push the metrics it names, which the control plane shows decoded (HTTP and Python); and the
protocol's rules over a socket: instance ids, subscription ids that change with the subscriptions, throttling,
sizes, compression types, terminating pushes, and the subscriptions' validation and durability."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.client_metrics import client_metrics_manager
from kbroker.errors import ErrorCode
from kbroker.records.compression import GZIP, NONE, ZSTD, compress
from kbroker.wire.messages import describe_configs as DC
from kbroker.wire.messages import get_telemetry_subscriptions as GT
from kbroker.wire.messages import incremental_alter_configs as IAC
from kbroker.wire.messages import push_telemetry as PT

ZERO = uuid.UUID(int=0)
CLIENT_METRICS = 16
IQ = IAC.IncrementalAlterConfigsRequest
SET, DELETE, APPEND = 0, 1, 2


def set_subscription(conn, name, ops, validate_only=False):
    r = conn.request(44, 1, IQ(resources=[IQ.AlterConfigsResource(
        resource_type=CLIENT_METRICS, resource_name=name,
        configs=[IQ.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops])],
        validate_only=validate_only))
    (res,) = r.responses
    return res.error_code, res.error_message


def get_subscriptions(conn, instance_id=ZERO):
    return conn.request(71, 0, GT.GetTelemetrySubscriptionsRequest(client_instance_id=instance_id))


def push(conn, instance_id, subscription_id, payload=b"", compression=NONE, terminating=False):
    return conn.request(72, 0, PT.PushTelemetryRequest(
        client_instance_id=instance_id, subscription_id=subscription_id, terminating=terminating,
        compression_type=compression,
        metrics=compress(compression, payload) if payload and compression <= ZSTD else payload)).error_code


def otlp(name: str, value: float) -> bytes:
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    data = metrics_pb2.MetricsData()
    rm = data.resource_metrics.add()
    rm.resource.attributes.append(common_pb2.KeyValue(key="client_rack", value=common_pb2.AnyValue(
        string_value="r1")))
    m = rm.scope_metrics.add().metrics.add()
    m.name = name
    m.gauge.data_points.add(as_double=value, time_unix_nano=1_000_000_000)
    return data.SerializeToString()


def test_librdkafka_pushes_what_the_subscription_asks_for():
    from confluent_kafka import Producer

    with Broker(port=0, storage="memory", control_port=0) as b:
        with BlockingConnection(b.host, b.port) as admin:
            assert set_subscription(admin, "producers", [
                ("metrics", SET, "org.apache.kafka.producer.node.request.latency,"
                                 "org.apache.kafka.producer.record.queue.time"),
                ("interval.ms", SET, "200"), ("match", SET, "client_id=telemetry-.*")]) == (0, None)
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "client.id": "telemetry-producer"})
        try:
            for _ in range(20):
                p.produce("telemetry-topic", b"v")
            assert p.flush(10) == 0
            assert b.control.wait_for_telemetry("org.apache.kafka.producer.node.request.latency",
                                                client_id="telemetry-producer", timeout_ms=30000)
        finally:
            p.flush(5)
        (pushed,) = [t for t in b.control.telemetry() if t["client_id"] == "telemetry-producer"]
        with urllib.request.urlopen(f"{b.control_url}/telemetry/{pushed['client_instance_id']}", timeout=10) as r:
            over_http = json.loads(r.read())
        node = b.state.node_id
    assert over_http["client_instance_id"] == pushed["client_instance_id"]
    assert pushed["client_software_name"] == "confluent-kafka-python" and pushed["subscriptions"] == ["producers"]
    assert pushed["push_interval_ms"] == 200
    names = {m["name"] for m in pushed["metrics"]}
    # Only what the subscription asked for, and the client's own latency towards this broker.
    assert names and all(n.startswith(("org.apache.kafka.producer.node.request.latency",
                                       "org.apache.kafka.producer.record.queue.time")) for n in names), names
    latency = next(m for m in pushed["metrics"] if m["name"] == "org.apache.kafka.producer.node.request.latency.max")
    assert latency["type"] == "gauge" and [p["attributes"]["node.id"] for p in latency["points"]] == [node]
    assert latency["points"][0]["value"] >= 0


@pytest.fixture
def broker():
    with Broker(port=0, storage="memory", settings={"telemetry.max.bytes": "2000"}) as b:
        yield b


@pytest.fixture
def conn(broker):
    with BlockingConnection(broker.host, broker.port, client_id="raw-client", negotiate_versions=True) as c:
        yield c


def test_no_subscription_no_metrics(conn):
    r = get_subscriptions(conn)
    assert r.error_code == 0 and r.client_instance_id != ZERO
    assert (r.requested_metrics, r.push_interval_ms, r.telemetry_max_bytes) == ([], 300000, 2000)
    assert r.accepted_compression_types == [ZSTD, 3, GZIP, 2] and r.delta_temporality


def test_subscription_matching_and_throttling(conn):
    assert set_subscription(conn, "raw", [("metrics", SET, "a.b,c"), ("interval.ms", SET, "60000"),
                                          ("match", SET, "client_id=raw-.*,client_software_name=kbroker.*")])[0] == 0
    assert set_subscription(conn, "others", [("metrics", SET, "*"), ("match", SET, "client_id=nobody")])[0] == 0
    first = get_subscriptions(conn)
    assert (sorted(first.requested_metrics), first.push_interval_ms) == (["a.b", "c"], 60000)
    # Asking again within the interval is throttled; the instance id is kept.
    again = get_subscriptions(conn, first.client_instance_id)
    assert again.error_code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    # A push within the interval right after the first GetTelemetrySubscriptions is accepted; the next is not.
    assert push(conn, first.client_instance_id, first.subscription_id, otlp("a.b.c", 1.0), ZSTD) == 0
    assert push(conn, first.client_instance_id, first.subscription_id, otlp("a.b.c", 2.0)) == \
        ErrorCode.THROTTLING_QUOTA_EXCEEDED
    # A "*" subscription matching the client asks for everything.
    assert set_subscription(conn, "others", [("match", SET, "client_id=raw-client")])[0] == 0
    everything = get_subscriptions(conn, first.client_instance_id)  # re-evaluated: not throttled
    assert everything.error_code == 0 and everything.requested_metrics == ["*"]
    assert everything.subscription_id != first.subscription_id and everything.push_interval_ms == 60000


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_subscription_makes_the_old_id_unknown(broker, conn):
    clock = FakeClock()  # the push interval passes when the test says so
    broker.call(lambda: setattr(client_metrics_manager(broker.state), "clock", clock))
    assert set_subscription(conn, "s", [("metrics", SET, "x"), ("interval.ms", SET, "100")])[0] == 0
    r = get_subscriptions(conn)
    assert set_subscription(conn, "s", [("metrics", APPEND, "y")])[0] == 0
    assert push(conn, r.client_instance_id, r.subscription_id, otlp("x.1", 1.0)) == ErrorCode.UNKNOWN_SUBSCRIPTION_ID
    # After UNKNOWN_SUBSCRIPTION_ID the client may ask again at once...
    fresh = get_subscriptions(conn, r.client_instance_id)
    assert fresh.error_code == 0 and sorted(fresh.requested_metrics) == ["x", "y"]
    # ... and push again once the interval has passed since the refused push.
    assert push(conn, r.client_instance_id, fresh.subscription_id, otlp("x.1", 7.5)) == \
        ErrorCode.THROTTLING_QUOTA_EXCEEDED
    clock.now += 0.1
    assert push(conn, r.client_instance_id, fresh.subscription_id, otlp("x.1", 7.5), GZIP) == 0
    (kept,) = broker.control.telemetry()
    assert kept["client_id"] == "raw-client" and kept["resource"] == {"client_rack": "r1"}
    assert kept["metrics"] == [{"name": "x.1", "type": "gauge", "unit": "", "description": "",
                                "points": [{"attributes": {}, "value": 7.5, "time_ms": 1000}]}]


def test_push_refusals(broker, conn):
    clock = FakeClock()
    broker.call(lambda: setattr(client_metrics_manager(broker.state), "clock", clock))
    assert set_subscription(conn, "s", [("metrics", SET, "*"), ("interval.ms", SET, "100")])[0] == 0
    r = get_subscriptions(conn)
    iid, sid = r.client_instance_id, r.subscription_id
    assert push(conn, ZERO, sid, otlp("m", 1.0)) == ErrorCode.INVALID_REQUEST
    assert push(conn, iid, sid, otlp("m", 1.0), compression=9) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert get_subscriptions(conn, iid).error_code == 0  # not throttled after that error
    assert push(conn, iid, sid, otlp("m", 1.0)) == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    clock.now += 0.1
    assert push(conn, iid, sid, b"\x00" * 3000) == ErrorCode.TELEMETRY_TOO_LARGE
    assert get_subscriptions(conn, iid).error_code == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    other = get_subscriptions(conn)  # another instance
    assert push(conn, other.client_instance_id, other.subscription_id, b"\x12\xff\xff") == ErrorCode.INVALID_RECORD
    # Small compressed, too large once decompressed.
    third = get_subscriptions(conn)
    assert push(conn, third.client_instance_id, third.subscription_id, b"\x0a" * 5000, ZSTD) == \
        ErrorCode.TELEMETRY_TOO_LARGE
    last = get_subscriptions(conn)
    assert push(conn, last.client_instance_id, last.subscription_id, otlp("m", 1.0), terminating=True) == 0
    clock.now += 1
    assert push(conn, last.client_instance_id, last.subscription_id, otlp("m", 1.0)) == ErrorCode.INVALID_REQUEST
    assert [p["terminating"] for p in broker.control.telemetry()] == [True]


def test_subscription_validation(conn):
    assert set_subscription(conn, "s", [("interval.ms", SET, "50")]) == (
        ErrorCode.INVALID_REQUEST, "Invalid value 50 for interval.ms, interval must be between 100 and 3600000 (1 hour)")
    assert set_subscription(conn, "s", [("colour", SET, "red")]) == (
        ErrorCode.INVALID_REQUEST, "Unknown client metrics configuration: colour")
    assert set_subscription(conn, "s", [("match", SET, "client_colour=red")]) == (
        ErrorCode.INVALID_CONFIG, "Illegal client matching pattern: client_colour=red")
    # As Kafka 4.4's ClientMetricsConfigs: a regex java.util.regex refuses, and a pattern that Java's
    # split("=") does not cut into exactly a selector and a regex, are illegal patterns.
    for bad in ("client_id=(", "client_id=a=b", "client_id=", "client_id==", "=x"):
        assert set_subscription(conn, "s", [("match", SET, bad)]) == (
            ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {bad}"), bad
    assert set_subscription(conn, "s", [("metrics", SET, "a")], validate_only=True) == (0, None)
    assert describe(conn, "s") == []


def describe(conn, name):
    r = conn.request(32, 4, DC.DescribeConfigsRequest(resources=[DC.DescribeConfigsRequest.DescribeConfigsResource(
        resource_type=CLIENT_METRICS, resource_name=name, configuration_keys=None)]))
    (res,) = r.results
    assert res.error_code == 0
    return [(c.name, c.value, c.config_source) for c in res.configs]


def test_subscriptions_are_durable_and_deleted_with_their_last_config(tmp_path):
    with Broker(port=0, data_dir=tmp_path) as b:
        with BlockingConnection(b.host, b.port) as c:
            assert set_subscription(c, "kept", [("metrics", SET, "org.apache.kafka."),
                                                ("interval.ms", SET, "1000")])[0] == 0
            assert set_subscription(c, "gone", [("metrics", SET, "x")])[0] == 0
            assert set_subscription(c, "gone", [("metrics", DELETE, None)])[0] == 0
    with Broker(port=0, data_dir=tmp_path) as b:
        with BlockingConnection(b.host, b.port) as c:
            assert describe(c, "kept") == [("interval.ms", "1000", 7), ("metrics", "org.apache.kafka.", 7)]
            assert describe(c, "gone") == []
            r = get_subscriptions(c)
    assert (r.requested_metrics, r.push_interval_ms) == (["org.apache.kafka."], 1000)


def test_match_regexes_are_full_matches_with_java_regex_features():
    # Kafka matches with java.util.regex's matches(): the whole value, and lookarounds, backreferences and
    # possessive quantifiers (which RE2 lacks) work.
    from kbroker.client_metrics import Subscription

    s = Subscription.parse("s", {"match": "client_id=app-(?!test)\\w+, client_software_name=(lib)\\1?.*+"})
    assert s.matches({"client_id": "app-orders", "client_software_name": "liblibrdkafka"})
    assert not s.matches({"client_id": "app-test1", "client_software_name": "librdkafka"})  # lookahead
    assert not s.matches({"client_id": "my-app-orders", "client_software_name": "librdkafka"})  # not a prefix
    assert not s.matches({"client_id": "app-orders"})  # every selector must be there
