"""--emulate-kafka: each emulated release advertises that release's published ranges (for the APIs kbroker
serves), clients recognise the release, and versions above the release's are refused."""

from __future__ import annotations

import struct

import pytest

from kbroker import Broker
from kbroker.handlers import HANDLERS, TELEMETRY_APIS
from kbroker.releases import RELEASES
from kbroker.wire.messages import api_versions
from kbroker.client import BlockingConnection

# The versions each release is recognised by (Kafka's message definitions at the release).
FINGERPRINTS = {"2.8": (0, 9), "3.0": (2, 7), "3.9": (1, 17), "4.0": (2, 10), "4.1": (0, 13), "4.2": (2, 11),
                "4.3": (35, 5), "4.4": (18, 5)}
# kafka-python 3.0 knows releases up to 4.3: a 4.4 broker is a 4.3 one to it.
KAFKA_PYTHON_SEES = {"4.4": (4, 3)}


def _advertised(b) -> dict[int, tuple[int, int]]:
    c = BlockingConnection(b.host, b.port)
    resp = c.request(18, 3, api_versions.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    c.close()
    assert resp.error_code == 0
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_advertises_the_release_ranges(release):
    with Broker(port=0, storage="memory", emulate_kafka=release) as b:
        got = _advertised(b)
    published = RELEASES[release]
    for key, (lo, hi) in got.items():
        if key in TELEMETRY_APIS:  # advertised by a Kafka 3.7+ broker with a telemetry reporter
            assert release >= "3.9" and (lo, hi) == (0, 0)
            continue
        assert key in published, f"API {key} is not in Kafka {release}"
        # The release's max, or kbroker's newest version where kbroker has not implemented the release's yet.
        assert hi == min(published[key][1], HANDLERS[key].max_version), \
            f"API {key}: max {hi}, Kafka {release} has {published[key][1]}"
        assert lo == max(published[key][0], HANDLERS[key].min_version)
    # Every API the release has and kbroker serves is advertised.
    assert set(got) - set(TELEMETRY_APIS) == {k for k in published if k in HANDLERS}
    api, version = FINGERPRINTS[release]
    assert got[api][1] == version


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_kafka_python_recognises_the_release(release):
    from kafka import KafkaConsumer

    with Broker(port=0, storage="memory", emulate_kafka=release) as b:
        # With no api_version configured, kafka-python infers the broker's release from ApiVersions.
        consumer = KafkaConsumer(bootstrap_servers=b.bootstrap_servers)
        try:
            version = consumer.config["api_version"]
        finally:
            consumer.close()
    assert tuple(version[:2]) == KAFKA_PYTHON_SEES.get(release, tuple(int(x) for x in release.split(".")))


def test_versions_above_the_release_are_refused():
    with Broker(port=0, storage="memory", emulate_kafka="2.8") as b:
        c = BlockingConnection(b.host, b.port)
        # ApiVersions v4 is newer than 2.8's v3: UNSUPPORTED_VERSION with a v0 body listing 0-3.
        body = struct.pack(">hhih", 18, 4, 9, -1)
        c.send_bytes(struct.pack(">i", len(body)) + body)
        frame = c.read_frame()
        resp, _ = api_versions.RESPONSE_DECODERS[0](memoryview(frame), 4)
        assert resp.error_code == 35
        assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, 0, 3)]
        # Metadata v12 is newer than 2.8's v11: the connection is closed, as Kafka 2.8 would.
        from kbroker.wire.messages import metadata

        c2 = BlockingConnection(b.host, b.port)
        c2.send_bytes(c2.frame(3, 12, metadata.MetadataRequest(topics=None)))
        assert c2.read_frame() is None
        assert c.request(3, 11, metadata.MetadataRequest(topics=None)).brokers


def test_confluent_kafka_works_against_every_release():
    from confluent_kafka import Consumer, Producer, TopicPartition

    for release in sorted(RELEASES):
        with Broker(port=0, storage="memory", emulate_kafka=release) as b:
            p = Producer({"bootstrap.servers": b.bootstrap_servers, "compression.type": "zstd"})
            p.produce("emulated", value=release.encode(), partition=0)
            assert p.flush(10) == 0
            c = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": "g", "auto.offset.reset": "earliest"})
            c.assign([TopicPartition("emulated", 0, 0)])
            msg = None
            for _ in range(50):
                msg = c.poll(0.2)
                if msg is not None and not msg.error():
                    break
            c.close()
            assert msg is not None and msg.value() == release.encode()


def test_default_advertisement_is_kafka_4_4_where_implemented():
    """Without emulation kbroker advertises Kafka 4.4's ranges, cut to the versions it implements (the README's
    compatibility table lists the gaps), and nothing 4.4 does not have but the telemetry APIs."""
    from kafka import KafkaConsumer

    with Broker(port=0, storage="memory") as b:
        got = _advertised(b)
        consumer = KafkaConsumer(bootstrap_servers=b.bootstrap_servers)
        try:
            assert tuple(consumer.config["api_version"][:2]) == KAFKA_PYTHON_SEES["4.4"]
        finally:
            consumer.close()
    kafka44 = RELEASES["4.4"]
    assert set(got) - set(kafka44) == set(TELEMETRY_APIS)
    for key, (lo, hi) in got.items():
        if key in kafka44:
            assert kafka44[key][0] <= lo <= hi <= kafka44[key][1], key
    # What 4.4 added over 4.1 that kbroker implements is advertised at 4.4's version.
    for key in (2, 18, 35):
        assert got[key][1] == kafka44[key][1]
