"""Client quotas over sockets (issue 16, KIP-546 / KIP-599 / KIP-612): AlterClientQuotas and DescribeClientQuotas
with Kafka's validation and matching, kept across a restart; a producer held to its producer_byte_rate by
throttle_time_ms and a muted connection while a producer without a quota is not slowed; consumer_byte_rate,
request_percentage and controller_mutation_rate; connection_creation_rate per address."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
import uuid

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.wire.messages import alter_client_quotas as ACQ
from kbroker.wire.messages import api_versions as AV
from kbroker.wire.messages import create_topics as CT
from kbroker.wire.messages import describe_client_quotas as DCQ
from kbroker.wire.messages import metadata as MD

TIMEOUT_S = 30


def alter(conn: BlockingConnection, entries, validate_only=False, version=1):
    """entries: [({type: name or None}, {key: value or None (remove)})]; the answer's (code, message) per entry."""
    req = ACQ.AlterClientQuotasRequest(validate_only=validate_only, entries=[
        ACQ.AlterClientQuotasRequest.EntryData(
            entity=[ACQ.AlterClientQuotasRequest.EntityData(entity_type=t, entity_name=n) for t, n in entity.items()],
            ops=[ACQ.AlterClientQuotasRequest.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in ops.items()])
        for entity, ops in entries])
    resp = conn.request(49, version, req)
    return [(e.error_code, e.error_message) for e in resp.entries]


def describe(conn: BlockingConnection, components=(), strict=False, version=1):
    """components: [(type, match type, match)]; (error code, message, {entity: values})."""
    req = DCQ.DescribeClientQuotasRequest(strict=strict, components=[
        DCQ.DescribeClientQuotasRequest.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components])
    resp = conn.request(48, version, req)
    found = None if resp.entries is None else {
        tuple(sorted((e.entity_type, e.entity_name) for e in entry.entity)): {v.key: v.value for v in entry.values}
        for entry in resp.entries}
    return resp.error_code, resp.error_message, found


def connect(b, client_id="quota-test") -> BlockingConnection:
    return BlockingConnection(b.host, b.port, client_id=client_id, timeout_s=TIMEOUT_S)


def test_alter_and_describe_with_kafkas_validation_and_matching(tmp_path):
    with Broker(port=0, data_dir=tmp_path) as b, connect(b) as c:
        assert alter(c, [
            ({"user": "alice"}, {"producer_byte_rate": 1024.0, "request_percentage": 50.5}),
            ({"user": "alice", "client-id": None}, {"consumer_byte_rate": 2048.0}),
            ({"user": None}, {"controller_mutation_rate": 3.5}),
            ({"client-id": "app"}, {"producer_byte_rate": 10.0}),
            ({"ip": "127.0.0.1"}, {"connection_creation_rate": 7.0}),
            ({"ip": None}, {"connection_creation_rate": 100.0}),
        ], version=0) == [(0, None)] * 6
        refused = alter(c, [
            ({"ip": "10.0.0.1"}, {"producer_byte_rate": 10.0}),
            ({"user": "bob"}, {"producer_byte_rate": 1.5}),
            ({"user": "dave"}, {"connection_creation_rate": 1.0}),
            ({"user": "bob", "ip": "10.0.0.1"}, {"request_percentage": 1.0}),
            ({"user": ""}, {"request_percentage": 1.0}),
            ({"group": "g"}, {"request_percentage": 1.0}),
            ({}, {"request_percentage": 1.0}),
            ({"ip": "no-such-host.invalid"}, {"connection_creation_rate": 1.0}),
            ({"client-id": "x"}, {"request_percentage": 0.0}),
            ({"ip": "10.0.0.2"}, {"connection_creation_rate": 3e9}),
            ({"user": "erin"}, {"request_percentage": 1.0, "producer_byte_rate": 2.0}),
            ({"user": "erin"}, {"request_percentage": 5.0}),
        ])
        assert refused == [
            (ErrorCode.INVALID_REQUEST, "Invalid configuration key producer_byte_rate"),
            (ErrorCode.INVALID_REQUEST, "producer_byte_rate cannot be a fractional value."),
            (ErrorCode.INVALID_REQUEST, "Invalid configuration key connection_creation_rate"),
            (ErrorCode.INVALID_REQUEST, "Invalid quota entity combination, IP entity shouldnot be combined with "
                                        "User or ClientId"),
            (ErrorCode.INVALID_REQUEST, "Empty user not supported"),
            (ErrorCode.INVALID_REQUEST, "Unhandled client quota entity type: group"),
            (ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity"),
            (ErrorCode.INVALID_REQUEST, "no-such-host.invalid is not a valid IP or resolvable host."),
            (ErrorCode.INVALID_REQUEST, "Quota request_percentage must be greater than 0"),
            (ErrorCode.INVALID_REQUEST, "Proposed value for connection_creation_rate is too large for an INT."),
            # an entity named twice: one answer, Kafka's message, the first change kept
            (ErrorCode.INVALID_REQUEST, "Ignoring duplicate entity ClientQuotaEntity(entries={user=erin})"),
        ]
        # validate_only checks and changes nothing
        assert alter(c, [({"user": "carol"}, {"producer_byte_rate": 5.0})], validate_only=True) == [(0, None)]
        # a removal, and a set on an existing entity
        assert alter(c, [({"user": "alice"}, {"request_percentage": None, "producer_byte_rate": 4096.0})]) == \
            [(0, None)]

        code, _, everything = describe(c)
        assert code == 0 and everything == {
            (("user", "alice"),): {"producer_byte_rate": 4096.0},
            (("client-id", None), ("user", "alice")): {"consumer_byte_rate": 2048.0},
            (("user", None),): {"controller_mutation_rate": 3.5},
            (("client-id", "app"),): {"producer_byte_rate": 10.0},
            (("ip", "127.0.0.1"),): {"connection_creation_rate": 7.0},
            (("ip", None),): {"connection_creation_rate": 100.0},
            (("user", "erin"),): {"request_percentage": 1.0, "producer_byte_rate": 2.0},
        }
        # exact name, default, any name; strict leaves out entities with more types
        assert describe(c, [("user", 0, "alice")])[2].keys() == {(("user", "alice"),),
                                                                 (("client-id", None), ("user", "alice"))}
        assert describe(c, [("user", 0, "alice")], strict=True)[2].keys() == {(("user", "alice"),)}
        assert describe(c, [("user", 1, None)], version=0)[2].keys() == {(("user", None),)}
        assert describe(c, [("user", 2, None), ("client-id", 1, None)])[2].keys() == \
            {(("client-id", None), ("user", "alice"))}
        # "any specified name" takes the default too, as Kafka 4's ClientQuotasImage matches it
        assert describe(c, [("ip", 2, None)], strict=True)[2].keys() == {(("ip", "127.0.0.1"),), (("ip", None),)}
        assert describe(c, [], strict=True)[2] == {}
        assert describe(c, [("user", 0, "nobody")])[2] == {}
        # filters Kafka refuses
        assert describe(c, [("ip", 2, None), ("user", 2, None)])[:2] == (
            ErrorCode.INVALID_REQUEST, "Invalid entity filter component combination. IP filter component should "
                                       "not be used with user or clientId filter component.")
        assert describe(c, [("user", 2, None), ("user", 1, None)])[:2] == (
            ErrorCode.INVALID_REQUEST, "Entity type user cannot appear more than once in the filter.")
        assert describe(c, [("group", 2, None)])[:2] == (ErrorCode.UNSUPPORTED_VERSION,
                                                         "Unsupported entity type group")
        assert describe(c, [("user", 0, None)])[:2] == (
            ErrorCode.INVALID_REQUEST, "Request specified MATCH_TYPE_EXACT, but set match string to null.")
        assert describe(c, [("user", 1, "x")])[:2] == (
            ErrorCode.INVALID_REQUEST, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
        assert describe(c, [("user", 7, None)])[:2] == (ErrorCode.INVALID_REQUEST, "Unknown match type 7")
        assert describe(c, [("user", 7, None)])[2] is None
    with Broker(port=0, data_dir=tmp_path) as b, connect(b) as c:  # kept by the controller across a restart
        assert describe(c)[2] == everything


def _measure_producer(bootstrap: str, client_id: str, topic: str, seconds: float, results: dict) -> None:
    from confluent_kafka import Producer

    throttles = []

    def on_stats(text):
        import json
        for broker in json.loads(text)["brokers"].values():
            if broker.get("nodeid", -1) >= 0:
                throttles.append(broker["throttle"]["max"])

    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                  "statistics.interval.ms": 200, "stats_cb": on_stats, "enable.idempotence": False,
                  "acks": 1, "queue.buffering.max.kbytes": 2000})
    acked = []
    payload = b"x" * 10_000
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, payload, on_delivery=lambda err, msg: err is None and acked.append(
                (time.monotonic(), len(msg.value()))))
        except BufferError:
            p.poll(0.05)
            continue
        p.poll(0)
    p.flush(TIMEOUT_S)
    p.poll(0.5)  # one more statistics report
    results[client_id] = (start, acked, max(throttles, default=0))


def test_producer_byte_rate_holds_a_producer_to_its_rate_and_not_the_others():
    rate = 1_000_000
    # three samples of one second: a burst of about two seconds' worth passes before the throttling starts
    with Broker(port=0, control_port=0, settings={"quota.window.num": "3"}) as b, connect(b) as c:
        topic = f"quota-{uuid.uuid4().hex[:6]}"
        assert c.request(19, 5, CT.CreateTopicsRequest(timeout_ms=10000, topics=[
            CT.CreateTopicsRequest.CreatableTopic(name=topic, num_partitions=1, replication_factor=1,
                                                  assignments=[], configs=[])])).topics[0].error_code == 0
        assert alter(c, [({"client-id": "slow"}, {"producer_byte_rate": float(rate)})]) == [(0, None)]
        results: dict = {}
        threads = [threading.Thread(target=_measure_producer, args=(b.bootstrap_servers, cid, topic, 6.0, results))
                   for cid in ("slow", "free")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * 2)
        start, acked, slow_throttle = results["slow"]
        # after the allowed burst, the rate is the quota's (within what one throttle period can overshoot)
        late = sum(n for t, n in acked if t - start >= 3.0)
        late_s = max(t for t, _ in acked) - (start + 3.0)
        assert late_s > 2.0
        assert 0.5 * rate < late / late_s < 1.6 * rate, late / late_s
        assert slow_throttle > 0  # librdkafka saw throttle_time_ms
        free_start, free_acked, free_throttle = results["free"]
        free_bytes = sum(n for _, n in free_acked)
        assert free_throttle == 0
        assert free_bytes > 3 * sum(n for _, n in acked), (free_bytes, sum(n for _, n in acked))
        with urllib.request.urlopen(b.control_url + "/metrics", timeout=TIMEOUT_S) as r:
            metrics = r.read().decode()
        throttled = [line for line in metrics.splitlines()
                     if line.startswith('kbroker_client_quota_throttle_time_ms_total{client_id="slow"')]
        assert throttled and float(throttled[0].split()[-1]) > 0
        assert any(line.startswith('kbroker_client_quota_rate{client_id="slow",quota_type="Produce"')
                   for line in metrics.splitlines())


def _fetch(conn, topic_id, topic, version=12):
    from kbroker.wire.messages import fetch as F
    req = F.FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=50 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[F.FetchRequest.FetchTopic(
                             topic=topic, partitions=[F.FetchRequest.FetchPartition(
                                 partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                 log_start_offset=-1, partition_max_bytes=50 << 20)])],
                         forgotten_topics_data=[], rack_id="")
    return conn.request(1, version, req)


def test_consumer_byte_rate_answers_empty_with_throttle_and_mutes_the_connection():
    from confluent_kafka import Producer
    with Broker(port=0, settings={"quota.window.num": "2"}) as b, connect(b, "reader") as c:
        topic = f"quota-{uuid.uuid4().hex[:6]}"
        p = Producer({"bootstrap.servers": b.bootstrap_servers, "batch.num.messages": 1})
        for _ in range(100):
            p.produce(topic, b"y" * 10_000)
        assert p.flush(TIMEOUT_S) == 0
        assert alter(c, [({"user": None, "client-id": "reader"}, {"consumer_byte_rate": 100_000.0})]) == [(0, None)]
        first = _fetch(c, None, topic)
        # at most one window's worth of bytes in one answer (Kafka's getMaxValueInQuotaWindow): 100 kB here
        got = sum(len(p.records) for t in first.responses for p in t.partitions)
        assert 0 < got <= 100_000 + 11_000, got
        throttled = _fetch(c, None, topic)
        assert throttled.throttle_time_ms > 0 and throttled.responses == []
        # the connection is muted for the throttle time: the next answer waits for it
        start = time.monotonic()
        assert c.request(18, 0, AV.ApiVersionsRequest()).error_code == 0
        assert time.monotonic() - start >= throttled.throttle_time_ms / 1000 * 0.8
        # another client is not muted
        with connect(b, "other") as other:
            start = time.monotonic()
            assert sum(len(p.records) for t in _fetch(other, None, topic).responses for p in t.partitions) > 200_000
            assert time.monotonic() - start < 1.0


def test_request_percentage_throttles_a_busy_client_for_at_most_one_window():
    with Broker(port=0, settings={"quota.window.num": "2"}) as b, connect(b, "busy") as c:
        assert alter(c, [({"client-id": "busy"}, {"request_percentage": 0.01})]) == [(0, None)]
        throttle = 0
        for _ in range(5000):
            throttle = c.request(3, 9, MD.MetadataRequest(topics=None, allow_auto_topic_creation=False)).throttle_time_ms
            if throttle:
                break
        assert 0 < throttle <= 1000
        with connect(b, "idle") as other:
            assert other.request(3, 9, MD.MetadataRequest(topics=None)).throttle_time_ms == 0


def _create(conn, version, names, partitions):
    return conn.request(19, version, CT.CreateTopicsRequest(timeout_ms=10000, topics=[
        CT.CreateTopicsRequest.CreatableTopic(name=n, num_partitions=partitions, replication_factor=1,
                                              assignments=[], configs=[]) for n in names]))


def test_controller_mutation_rate_refuses_v6_and_throttles_older_versions():
    with Broker(port=0, settings={"quota.window.num": "2"}) as b, connect(b, "admin") as c:
        assert alter(c, [({"client-id": "admin"}, {"controller_mutation_rate": 5.0})]) == [(0, None)]
        # a burst of rate x samples x window (10 partitions): the first topic drains it and more
        tag = uuid.uuid4().hex[:6]
        resp = _create(c, 7, [f"m1-{tag}", f"m2-{tag}"], 12)
        assert [(t.error_code, t.error_message) for t in resp.topics] == [
            (0, None), (ErrorCode.THROTTLING_QUOTA_EXCEEDED, "The throttling quota has been exceeded.")]
        assert resp.throttle_time_ms > 0
        with connect(b, "admin") as old:  # v5 knows no THROTTLING_QUOTA_EXCEEDED: created, and throttled
            resp = _create(old, 5, [f"m3-{tag}", f"m4-{tag}"], 10)
            assert [t.error_code for t in resp.topics] == [0, 0]
            assert resp.throttle_time_ms > 0
        with connect(b, "someone-else") as other:
            assert [t.error_code for t in _create(other, 7, [f"m5-{tag}"], 20).topics] == [0]


def _burst(host, port, source: str, count: int) -> list[bool]:
    """Open ``count`` connections from ``source`` at once, send an ApiVersions on each; which were answered."""
    socks = [socket.create_connection((host, port), timeout=TIMEOUT_S, source_address=(source, 0))
             for _ in range(count)]
    conns = [BlockingConnection.over(s) for s in socks]
    out = []
    try:
        for conn in conns:
            try:
                conn.send_bytes(conn.frame(18, 0, AV.ApiVersionsRequest()))
            except OSError:
                pass
        for conn in conns:
            try:
                out.append(conn.read_frame() is not None)
            except OSError:
                out.append(False)
    finally:
        for s in socks:
            s.close()
    return out


def test_connection_creation_rate_per_address_refuses_a_burst_and_spares_other_addresses():
    with Broker(port=0, settings={"quota.window.num": "2"}) as b, connect(b) as c:
        assert alter(c, [({"ip": "127.0.0.1"}, {"connection_creation_rate": 5.0})]) == [(0, None)]
        served = _burst(b.host, b.port, "127.0.0.1", 20)
        # the rate over one window: 5 pass, the rest are held for their throttle time and closed
        assert sum(served) == 5, served
        assert all(_burst(b.host, b.port, "127.0.0.2", 20))  # another address is not limited
        # the default for every address, and its removal
        assert alter(c, [({"ip": "127.0.0.1"}, {"connection_creation_rate": None}),
                         ({"ip": None}, {"connection_creation_rate": 1.0})]) == [(0, None), (0, None)]
        assert _burst(b.host, b.port, "127.0.0.3", 3) == [True, False, False]
        assert alter(c, [({"ip": None}, {"connection_creation_rate": None})]) == [(0, None)]
        assert all(_burst(b.host, b.port, "127.0.0.3", 20))


def test_a_quota_set_through_one_broker_holds_on_every_broker_of_the_cluster():
    with Broker(port=0, brokers=2, settings={"quota.window.num": "2"}) as b:
        first, second = [tuple(a.rsplit(":", 1)) for a in b.bootstrap_servers.split(",")]
        with BlockingConnection(first[0], int(first[1]), client_id="admin", timeout_s=TIMEOUT_S) as c:
            assert alter(c, [({"client-id": "busy"}, {"request_percentage": 0.01})]) == [(0, None)]
        with BlockingConnection(second[0], int(second[1]), client_id="busy", timeout_s=TIMEOUT_S) as c:
            assert describe(c, [("client-id", 0, "busy")])[2] == {(("client-id", "busy"),): {"request_percentage": 0.01}}
            throttle = 0
            for _ in range(5000):
                throttle = c.request(3, 9, MD.MetadataRequest(topics=None)).throttle_time_ms
                if throttle:
                    break
            assert throttle > 0


def _request_rates(b) -> dict[str, float]:
    with urllib.request.urlopen(b.control_url + "/metrics", timeout=TIMEOUT_S) as r:
        lines = r.read().decode().splitlines()
    rates = {}
    for line in lines:
        if line.startswith("kbroker_client_quota_rate{") and 'quota_type="Request"' in line:
            client_id = line.split('client_id="', 1)[1].split('"', 1)[0]
            rates[client_id] = float(line.split()[-1])
    return rates


def test_request_percentage_counts_the_answers_encoding_and_sending():
    """Kafka's request_percentage counts the request handler's time and the network thread's for the request
    (ClientRequestQuotaManager: recordNoThrottle of the channel's network time once the answer is sent).
    Two clients, each under its own client-id default sensor, send the same 20 Fetches of one partition: one
    fetches from offset 0 and is answered with 16 MB each time, the other from the log end and is answered
    with no records. The handler does about the same work for both; writing 16 MB to the socket is many
    times that. Before, only the handler's time was measured and the two rates were within a factor of about
    1.5; now the big answers' writes count, and the first client's rate is several times the second's."""
    from kbroker.records.builder import simple_batch
    from kbroker.wire.messages import fetch as F
    from kbroker.wire.messages import produce as P

    with Broker(port=0, control_port=0, storage="memory",
                settings={"quota.window.num": "2", "message.max.bytes": "20000000"}) as b:
        with connect(b, "admin") as c:
            topic = f"quota-{uuid.uuid4().hex[:6]}"
            assert c.request(19, 5, CT.CreateTopicsRequest(timeout_ms=10000, topics=[
                CT.CreateTopicsRequest.CreatableTopic(name=topic, num_partitions=1, replication_factor=1,
                                                      assignments=[], configs=[])])).topics[0].error_code == 0
            PR = P.ProduceRequest
            resp = c.request(0, 9, PR(acks=1, timeout_ms=10000, topic_data=[PR.TopicProduceData(
                name=topic, partition_data=[PR.PartitionProduceData(index=0, records=bytes(
                    simple_batch(b"z" * 16_000_000)))])]))
            assert resp.responses[0].partition_responses[0].error_code == 0
            # a bound no client reaches here: the rates are measured, nobody is throttled
            assert alter(c, [({"client-id": None}, {"request_percentage": 1e6})]) == [(0, None)]

        def fetch(conn, offset):
            return conn.request(1, 12, F.FetchRequest(
                replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=50 << 20, isolation_level=0, session_id=0,
                session_epoch=-1, topics=[F.FetchRequest.FetchTopic(topic=topic, partitions=[
                    F.FetchRequest.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=offset,
                                                  last_fetched_epoch=-1, log_start_offset=-1,
                                                  partition_max_bytes=50 << 20)])],
                forgotten_topics_data=[], rack_id=""))

        with connect(b, "big") as big, connect(b, "empty") as empty:
            for _ in range(20):
                assert len(fetch(big, 0).responses[0].partitions[0].records) > 16_000_000
                assert fetch(empty, 1).responses[0].partitions[0].records in (None, b"")
            rates = _request_rates(b)
        assert rates["big"] > 3 * rates["empty"], rates
