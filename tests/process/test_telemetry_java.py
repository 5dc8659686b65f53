"""The Java client (kafka-clients 4.4) pushes its metrics (KIP-714) once a client-metrics subscription names
them, and the control plane shows what it said about itself."""

from __future__ import annotations

import base64

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.wire.messages import incremental_alter_configs as IAC
from support.java_client import java_client_or_skip

IQ = IAC.IncrementalAlterConfigsRequest


def test_java_producer_pushes_telemetry():
    java = java_client_or_skip()
    with Broker(port=0, storage="memory") as b:
        with BlockingConnection(b.host, b.port) as admin:
            r = admin.request(44, 1, IQ(resources=[IQ.AlterConfigsResource(
                resource_type=16, resource_name="java-producers", configs=[
                    IQ.AlterableConfig(name="metrics", config_operation=0, value="org.apache.kafka.producer."),
                    IQ.AlterableConfig(name="interval.ms", config_operation=0, value="100"),
                    IQ.AlterableConfig(name="match", config_operation=0, value="client_software_name=apache-kafka-java")])]))
            assert r.responses[0].error_code == 0
        value = base64.b64encode(b"v").decode()
        messages = [{"key": None, "value": value, "headers": [], "partition": 0, "timestamp": None}] * 5
        # The Java client pushes on its 100 ms interval while the producer stays open after sending (2 s), and once
        # more, terminating, when it closes.
        assert java(b.bootstrap_servers)._call("produce", topic="java-telemetry", messages=messages,
                                               stayOpenMs=2000) == 5
        assert b.control.wait_for_telemetry("org.apache.kafka.producer.topic.record.send.total",
                                            client_id="kbroker-compat", timeout_ms=10000), b.control.requests(300)
        pushed = [t for t in b.control.telemetry() if t["client_id"] == "kbroker-compat"][-1]
    assert pushed["client_software_name"] == "apache-kafka-java" and pushed["subscriptions"] == ["java-producers"]
    names = {m["name"] for m in pushed["metrics"]}
    assert names and all(n.startswith("org.apache.kafka.producer.") for n in names), names
    # What it said about itself: the topic it sent records to (sums are deltas: delta temporality).
    sent = next(m for m in pushed["metrics"] if m["name"] == "org.apache.kafka.producer.topic.record.send.total")
    assert sent["type"] == "sum" and [p["attributes"] for p in sent["points"]] == [{"topic": "java-telemetry"}]
