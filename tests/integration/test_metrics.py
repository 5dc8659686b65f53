"""GET /metrics: scraped after known traffic from stock clients, the values are what that traffic makes them."""

from __future__ import annotations

import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError
from prometheus_client.parser import text_string_to_metric_families

from kbroker import Broker


@pytest.fixture
def broker():
    with Broker(port=0, storage="memory", control_port=0, num_partitions=2) as b:
        yield b


def scrape(b) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    with urllib.request.urlopen(b.control_url + "/metrics", timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _produce(b, topic: str, n: int, size: int = 100) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"x" * size, key=str(i).encode(), partition=i % 2)
    assert p.flush(30) == 0


def test_messages_bytes_and_log_offsets_after_produce(broker, topic_name):
    _produce(broker, topic_name, 50)
    s = scrape(broker)
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name) == 50
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total") == 50  # all topics: no label
    bytes_in = value(s, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic_name)
    size = value(s, "kafka_log_log_size", topic=topic_name, partition="0") + \
        value(s, "kafka_log_log_size", topic=topic_name, partition="1")
    assert bytes_in == size > 50 * 100  # what was appended is what is stored: the batches as sent
    assert value(s, "kafka_log_log_logendoffset", topic=topic_name, partition="0") == 25
    assert value(s, "kafka_log_log_logendoffset", topic=topic_name, partition="1") == 25
    assert value(s, "kafka_log_log_logstartoffset", topic=topic_name, partition="1") == 0
    assert value(s, "kafka_controller_kafkacontroller_globalpartitioncount") == 2
    produces = sum(v for (name, labels), v in s.items()
                   if name == "kafka_network_requestmetrics_requests_total" and ("request", "Produce") in labels)
    assert produces >= 1
    assert value(s, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == produces
    assert value(s, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") >= produces

    _produce(broker, topic_name, 10)
    assert value(scrape(broker), "kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name) == 60


def test_bytes_out_lag_and_connections_by_client_software(broker, topic_name):
    _produce(broker, topic_name, 40)
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g-metrics",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic_name, 0, 0), TopicPartition(topic_name, 1, 0)])
        got = 0
        while got < 40:
            m = c.poll(10)
            assert m is not None and m.error() is None
            got += 1
        # Commit partition 0 up to 15 of 20, partition 1 fully: lag 5 and 0.
        c.commit(offsets=[TopicPartition(topic_name, 0, 15), TopicPartition(topic_name, 1, 20)], asynchronous=False)
        s = scrape(broker)
        assert value(s, "kafka_consumergroup_lag", consumergroup="g-metrics", topic=topic_name, partition="0") == 5
        assert value(s, "kafka_consumergroup_lag", consumergroup="g-metrics", topic=topic_name, partition="1") == 0
        assert value(s, "kafka_consumergroup_lag_sum", consumergroup="g-metrics", topic=topic_name) == 5
        assert value(s, "kafka_consumergroup_current_offset", consumergroup="g-metrics", topic=topic_name,
                     partition="0") == 15
        # The consumer fetched every stored byte (possibly more than once: at least once).
        stored = sum(value(s, "kafka_log_log_size", topic=topic_name, partition=p) for p in ("0", "1"))
        assert value(s, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic_name) >= stored
        # librdkafka names itself in ApiVersions (KIP-511): the producer is gone, the consumer is connected.
        software = {labels: v for (name, labels), v in s.items()
                    if name == "kafka_server_socket_server_metrics_connections_software"}
        assert any(dict(labels)["clientSoftwareName"] == "confluent-kafka-python" for labels in software), software
        assert value(s, "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT",
                     networkProcessor="0") >= 1
        fetches = value(s, "kafka_network_requestmetrics_totaltimems_count", request="FetchConsumer")
        assert fetches >= 1
    finally:
        c.close()


def test_errors_by_api_and_code(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([topic_name + "-missing"])
        s = scrape(broker)
        assert value(s, "kafka_network_requestmetrics_errors_total", request="DeleteTopics",
                     error="UNKNOWN_TOPIC_OR_PARTITION") == 1
        versions = [dict(labels) for (name, labels), v in s.items()
                    if name == "kafka_network_requestmetrics_requests_total" and ("request", "DeleteTopics") in labels]
        assert len(versions) == 1 and int(versions[0]["version"]) >= 1
        software = [dict(labels)["clientSoftwareName"] for (name, labels), v in s.items()
                    if name == "kafka_server_socket_server_metrics_connections_software"]
        assert "kafka-python" in software
    finally:
        admin.close()


def test_long_polling_fetch_is_counted_while_it_waits(broker, topic_name):
    _produce(broker, topic_name, 2)
    c = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g-wait",
                  "auto.offset.reset": "latest", "fetch.wait.max.ms": 5000})
    try:
        c.assign([TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 1)])
        # Nothing new to read: the consumer's fetch waits in the purgatory, watching both partitions.
        while True:
            assert c.poll(0.2) is None
            s = scrape(broker)
            if value(s, "kafka_server_delayedoperationpurgatory_numdelayedoperations", delayedOperation="Fetch"):
                break
        assert value(s, "kafka_server_delayedoperationpurgatory_purgatorysize", delayedOperation="Fetch") == 2
    finally:
        c.close()


def test_fsync_latency_is_observed(tmp_path, topic_name):
    with Broker(port=0, data_dir=tmp_path, control_port=0, fsync="always") as b:
        before = value(scrape(b), "kafka_log_logflushstats_logflushrateandtimems_count")
        _produce(b, topic_name, 5)
        after = value(scrape(b), "kafka_log_logflushstats_logflushrateandtimems_count")
        assert after - before >= 1


def test_event_loop_stall_is_measured(broker, topic_name):
    """Whatever holds the broker's loop (here a callback that computes for 300 ms of CPU time) shows as the
    loop's lag and as held by the loop (its thread was running): the longest since start, the recent longest,
    a sample in each histogram; a Produce sent meanwhile waits for it. A callback that sleeps holds the loop
    as long but uses no CPU: lag, not held."""
    import threading
    import time

    from kbroker.loop_lag import PERIOD_S

    def spin(cpu_s):
        blocked.set()
        end = time.thread_time() + cpu_s
        while time.thread_time() < end:
            pass

    before = scrape(broker)
    assert value(before, "kbroker_event_loop_lag_max_ms") < 300
    blocked = threading.Event()
    stall = threading.Thread(target=broker.call, args=(spin, 0.3))
    stall.start()
    assert blocked.wait(10)
    t0 = time.monotonic()
    _produce(broker, topic_name, 1)  # a stock client over a socket, answered only after the stall
    assert time.monotonic() - t0 > 0.1
    stall.join(30)
    after = scrape(broker)
    # the sampling timer fell due at most one period after the spin began: at least 300 - 20 ms late
    least_ms = 300 - PERIOD_S * 1000 - 5
    for name in ("kbroker_event_loop_lag", "kbroker_event_loop_lag_held"):
        assert value(after, name + "_max_ms") >= least_ms
        assert value(after, name + "_recent_max_ms") >= least_ms
        assert value(after, name + "_ms_bucket", le="250.0") < value(after, name + "_ms_bucket", le="+Inf")
        assert value(after, name + "_ms_count") > value(before, name + "_ms_count")
        assert value(after, name + "_ms_sum") - value(before, name + "_ms_sum") >= least_ms

    held_before = value(after, "kbroker_event_loop_lag_held_ms_sum")
    lag_before = value(after, "kbroker_event_loop_lag_ms_sum")
    broker.call(time.sleep, 0.3)
    _produce(broker, topic_name, 1)
    slept = scrape(broker)
    assert value(slept, "kbroker_event_loop_lag_ms_sum") - lag_before >= 250
    assert value(slept, "kbroker_event_loop_lag_held_ms_sum") - held_before < 250
