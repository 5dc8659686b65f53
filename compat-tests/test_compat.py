"""The compatibility scenarios. Each runs once per client (the ``client`` fixture) and is one row of the
matrix (its ``scenario`` marker). The client under test does one thing; the suite checks the result on
the broker side, with its own wire probe (kcompat.wire) and a reference reader (kcompat.reference).

Conventions: small record counts; topics are created fresh per test by the reference client; an
operation a client cannot do skips with the client's reason; a feature kbroker does not serve yet skips
only when the target is kbroker and ApiVersions lacks the API (Target.require), and runs everywhere else.
"""

from __future__ import annotations

import socket
import string
import time
import uuid

import pytest

from kcompat import wire
from kcompat.clients import ClientError, Rec
from kcompat.partitioners import partition_for
from kcompat.reference import Reference
from kcompat.target import starts_settings_broker
from kcompat.target import SMALL_MESSAGE_MAX_BYTES

scenario = pytest.mark.scenario
CONSUMER_GROUP_HEARTBEAT = 68  # the KIP-848 consumer group protocol's one request
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
HOUR_AGO_MS = (int(time.time()) - 3600) * 1000  # a fixed CreateTime, clearly not "now"


def records(n: int, prefix: str = "r", partition: int | None = None) -> list[Rec]:
    # Compressible values, so that every codec really shrinks the batch (librdkafka sends a batch
    # uncompressed when compressing does not make it smaller).
    return [Rec(f"{prefix}-key-{i}".encode(), f"{prefix}-value-{i}-{'abcdefgh' * 8}".encode(), partition=partition)
            for i in range(n)]


def contents(recs) -> list[tuple]:
    return [(r.key, r.value) for r in recs]


def sorted_headers(headers) -> list[tuple]:
    # Header order across *different* names is not kept by every client (kafkajs takes an object);
    # the order of values under one name is.
    return sorted(((k, bytes(v) if v is not None else None) for k, v in headers), key=lambda h: h[0])


def require_consumer(client, target) -> None:
    if client.consume_needs_group:
        target.require("consumer groups", why=f"{client.name} consumes only as a group member (it has no assign())")


def skip_unusable_codec(client, codec: str) -> None:
    reason = client.codec_unusable(codec)
    if reason:
        pytest.skip(reason)


def eventually(check, timeout_s: float = 10.0, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


# -- bootstrap and metadata ----------------------------------------------------------


@scenario("bootstrap & metadata")
def test_bootstrap_and_metadata(client, target, topic):
    name = topic(partitions=3)
    cluster = client.cluster([name])
    assert cluster.brokers, "the client saw no brokers"
    for host, port in cluster.brokers:  # every advertised broker is reachable as advertised
        socket.create_connection((host, port), timeout=5).close()
    assert cluster.topics.get(name) == 3, f"client sees {name} with {cluster.topics.get(name)} partitions, not 3"


# -- producing and consuming with each codec -------------------------------------------


@scenario("produce {codec}")
@pytest.mark.parametrize("codec", CODECS)
def test_produce_codec(client, target, ref, topic, codec):
    skip_unusable_codec(client, codec)
    name = topic()
    sent = records(20, codec)
    client.produce(name, sent, compression=codec)
    assert contents(ref.read_partition(name, 0)) == contents(sent)
    batches = wire.read_batches(target.bootstrap, name, 0)
    assert batches and all(b.magic == 2 for b in batches), [b.magic for b in batches]
    assert {b.codec for b in batches} == {codec}, f"stored batches are {[b.codec for b in batches]}, sent {codec}"


@scenario("consume {codec}")
@pytest.mark.parametrize("codec", CODECS)
def test_consume_codec(client, target, ref, topic, codec):
    skip_unusable_codec(client, codec)
    require_consumer(client, target)
    name = topic(partitions=2)
    sent = records(10, codec + "-p0", partition=0) + records(10, codec + "-p1", partition=1)
    ref.produce(name, sent, compression=codec)
    assert {b.codec for b in wire.read_batches(target.bootstrap, name, 0)} == {codec}, "reference did not compress"
    got = client.consume_from_beginning(name, count=len(sent))
    for p in (0, 1):
        mine = [r for r in got if r.partition == p]
        assert contents(mine) == contents(r for r in sent if r.partition == p), f"partition {p}"
        assert [r.offset for r in mine] == list(range(10)), f"partition {p} offsets"


# -- partitioning -------------------------------------------------------------------------


@scenario("default partitioner (keyed)")
def test_default_partitioner(client, ref, topic):
    n = 6
    name = topic(partitions=n)
    keys = [f"user-{i}".encode() for i in range(40)] + [b"", b"\xff\xfe", "ключ".encode()]
    keys = [k for k in keys if client.name != "kcat" or k]  # kcat cannot tell an empty key from none
    client.produce(name, [Rec(k, b"v:" + k) for k in keys])
    stored = [(r.key, p) for p, recs in ref.read_partitions(name, list(range(n))).items() for r in recs]
    assert sorted(k for k, _ in stored) == sorted(keys), "records lost or duplicated"
    landed = dict(stored)
    expected = {k: partition_for(client.partitioner, k, n) for k in keys}
    wrong = {k: (p, expected[k]) for k, p in landed.items() if expected[k] is not None and p != expected[k]}
    assert not wrong, (f"{len(wrong)} of {len(keys)} keys not where {client.partitioner} puts them "
                       f"(key: (landed, expected)): {dict(list(wrong.items())[:5])}")
    assert len(set(landed.values())) > 1, "every key in one partition: the partitioner was not used"


@scenario("explicit partition")
def test_explicit_partition(client, ref, topic):
    name = topic(partitions=3)
    sent = records(5, "p2", partition=2) + records(5, "p0", partition=0)
    client.produce(name, sent)
    got = ref.read_partitions(name, [0, 1, 2])
    assert contents(got[2]) == contents(sent[:5])
    assert contents(got[0]) == contents(sent[5:])
    assert got[1] == []


# -- headers and timestamps ----------------------------------------------------------------

HEADERS = (("trace-id", b"4bf92f35"), ("empty", b""), ("dup", b"first"), ("dup", b"second"),
           ("utf8", "√ünïcødé".encode()))


@scenario("produce headers")
def test_produce_headers(client, ref, topic):
    name = topic()
    sent = [Rec(f"k{i}".encode(), f"v{i}".encode(), headers=HEADERS) for i in range(3)]
    client.produce(name, sent)
    got = ref.read_partition(name, 0)
    assert contents(got) == contents(sent)
    for r in got:
        assert sorted_headers(r.headers) == sorted_headers(HEADERS)


@scenario("produce timestamps")
def test_produce_timestamps(client, ref, topic):
    name = topic()
    sent = [Rec(f"k{i}".encode(), f"v{i}".encode(), timestamp=HOUR_AGO_MS + i * 1000) for i in range(3)]
    client.produce(name, sent)
    got = ref.read_partition(name, 0)
    assert [r.timestamp for r in got] == [r.timestamp for r in sent]


@scenario("consume headers & timestamps")
def test_consume_headers_and_timestamps(client, target, ref, topic):
    require_consumer(client, target)
    name = topic()
    sent = [Rec(f"k{i}".encode(), f"v{i}".encode(), headers=HEADERS, timestamp=HOUR_AGO_MS + i * 1000)
            for i in range(3)]
    ref.produce(name, sent)
    got = client.consume_from_beginning(name, count=3)
    assert contents(got) == contents(sent)
    assert [r.timestamp for r in got] == [r.timestamp for r in sent]
    for r in got:
        assert sorted_headers(r.headers) == sorted_headers(HEADERS)


# -- idempotence ----------------------------------------------------------------------------


@scenario("idempotent produce")
def test_idempotent_produce(client, target, ref, topic):
    target.require("idempotent producer")
    name = topic()
    sent = records(30, "idem")
    client.produce(name, sent, idempotent=True)
    assert contents(ref.read_partition(name, 0)) == contents(sent), "records lost, duplicated or reordered"
    batches = wire.read_batches(target.bootstrap, name, 0)
    assert all(b.producer_id >= 0 for b in batches), f"a batch without a producer id: {batches}"
    assert len({(b.producer_id, b.producer_epoch) for b in batches}) == 1, "one producer, one id and epoch"
    expected_seq = 0
    for b in batches:  # sequences start at 0 and run on without gaps (KIP-98)
        assert b.base_sequence == expected_seq, f"batch at {b.base_offset}: sequence {b.base_sequence}"
        expected_seq += b.records_count


# -- admin -------------------------------------------------------------------------------------


@scenario("admin: create & delete topic")
def test_admin_create_delete(client, target):
    name = f"compat-admin-{client.name}-{uuid.uuid4().hex[:6]}"
    client.create_topic(name, 3, {"retention.ms": "3600000"})
    try:
        info = eventually(lambda: wire.topic_state(target.bootstrap, name))
        assert info is not None, "the created topic is not in Metadata"
        assert len(info.partitions) == 3
    finally:
        client.delete_topic(name)
    assert eventually(lambda: wire.topic_state(target.bootstrap, name) is None), "the deleted topic is still there"


@scenario("admin: describe & alter configs")
def test_admin_configs(client, target, topic):
    target.require("describe configs")
    target.require("alter configs")
    name = topic(configs={"retention.ms": "3600000"})
    configs = client.describe_topic_configs(name)
    assert configs.get("retention.ms") == "3600000"
    assert configs.get("cleanup.policy") == "delete", "defaults are described too"
    client.alter_topic_configs(name, {"retention.ms": "7200000"})
    assert eventually(lambda: client.describe_topic_configs(name).get("retention.ms") == "7200000")


# -- offsets by time -------------------------------------------------------------------------


@scenario("offsets for timestamp")
def test_offsets_for_times(client, ref, topic):
    name = topic()
    ref.produce(name, [Rec(b"k", f"v{i}".encode(), timestamp=HOUR_AGO_MS + i * 10_000) for i in range(6)])
    assert client.offsets_for_times(name, 1, HOUR_AGO_MS - 1) == {0: 0}
    assert client.offsets_for_times(name, 1, HOUR_AGO_MS) == {0: 0}
    assert client.offsets_for_times(name, 1, HOUR_AGO_MS + 25_000) == {0: 3}
    assert client.offsets_for_times(name, 1, HOUR_AGO_MS + 50_000) == {0: 5}
    assert client.offsets_for_times(name, 1, HOUR_AGO_MS + 50_001) == {0: None}


# -- large messages and errors -----------------------------------------------------------------

LIMIT = SMALL_MESSAGE_MAX_BYTES


def big_value(size: int) -> bytes:
    # Printable (kcat reads records from a text stream) and incompressible enough not to matter.
    alphabet = string.ascii_letters.encode()
    seed = uuid.uuid4().bytes * (size // 16 + 1)
    return bytes(alphabet[b % len(alphabet)] for b in seed[:size])


@scenario("large message near max.message.bytes")
def test_large_message(client, ref, topic):
    name = topic(configs={"max.message.bytes": str(LIMIT)})
    value = big_value(LIMIT - 1024)  # the batch and record headers fit in the rest
    client.produce(name, [Rec(b"big", value)], compression="none")
    (got,) = ref.read_partition(name, 0)
    assert got.value == value


@scenario("consume large message")
def test_consume_large_message(client, target, ref, topic):
    require_consumer(client, target)
    name = topic(configs={"max.message.bytes": str(LIMIT)})
    value = big_value(LIMIT - 1024)
    ref.produce(name, [Rec(b"big", value), Rec(b"small", b"after")])
    got = client.consume_from_beginning(name, count=2)
    assert [(r.key, r.value) for r in got] == [(b"big", value), (b"small", b"after")]


@scenario("error: message too large ({limit})")
@pytest.mark.parametrize("limit", ["topic max.message.bytes", "broker message.max.bytes"])
def test_message_too_large(client, target, topic, limit, request):
    if limit.startswith("topic"):
        bootstrap, name = target.bootstrap, topic(configs={"max.message.bytes": str(LIMIT)})
    else:
        if not starts_settings_broker(target.kind):
            pytest.skip("needs a broker started with message.max.bytes=128 KiB; the suite starts one only for "
                        "kbroker and for Kafka from the jars")
        bootstrap = request.getfixturevalue("settings_broker")
        name = topic(on=Reference(bootstrap))
    c = client.on(bootstrap)
    with pytest.raises(ClientError) as e:
        c.produce(name, [Rec(b"big", big_value(LIMIT + 4096))], compression="none", timeout_s=10)
    assert e.value.kind == "MESSAGE_TOO_LARGE", f"expected MESSAGE_TOO_LARGE, the client reported {e.value}"
    assert Reference(bootstrap).read_partition(name, 0) == [], "a refused record was stored"


@scenario("error: unknown topic, auto-creation off")
def test_unknown_topic_no_autocreate(client, settings_broker):
    name = f"compat-unknown-{uuid.uuid4().hex[:8]}"
    c = client.on(settings_broker)
    started = time.monotonic()
    with pytest.raises(ClientError) as e:
        c.produce(name, [Rec(b"k", b"v")], timeout_s=5)
    # Clients that wait for the topic to appear in Metadata report their own timeout instead.
    assert e.value.kind in ("UNKNOWN_TOPIC_OR_PARTITION", "TIMEOUT"), f"the client reported {e.value}"
    assert time.monotonic() - started < 60, "the client hung instead of failing"
    assert wire.topic_state(settings_broker, name) is None, "the topic was created although auto-creation is off"


# -- consumer groups ---------------------------------------------------------------------------


@scenario("group: join & consume")
def test_group_consume(client, target, ref, topic):
    target.require("consumer groups")
    name = topic(partitions=3)
    sent = [r for p in range(3) for r in records(5, f"g{p}", partition=p)]
    ref.produce(name, sent)
    got = client.group_consume(name, f"compat-{uuid.uuid4().hex[:8]}", count=len(sent))
    assert sorted(contents(got)) == sorted(contents(sent))


@scenario("group: commit & resume")
def test_group_commit_resume(client, target, ref, topic):
    target.require("consumer groups")
    name = topic()
    group = f"compat-{uuid.uuid4().hex[:8]}"
    sent = records(10, "resume")
    ref.produce(name, sent)
    first = client.group_consume(name, group, count=4)
    assert [r.offset for r in first] == [0, 1, 2, 3]
    second = client.group_consume(name, group, count=6)
    assert [r.offset for r in second] == [4, 5, 6, 7, 8, 9], "the group did not resume at its committed offset"
    assert contents(first + second) == contents(sent)


def assert_rebalanced(before: list[set[int]], after: set[int], partitions: int) -> None:
    assert before[0] and before[1], f"both members should own partitions: {before}"
    assert not (before[0] & before[1]), f"a partition assigned twice: {before}"
    assert before[0] | before[1] == set(range(partitions)), f"partitions left unassigned: {before}"
    assert after == set(range(partitions)), f"after the second member left, the first owns {after}"


@scenario("group: rebalance")
def test_group_rebalance(client, target, topic):
    target.require("consumer groups")
    name = topic(partitions=4)
    before, after = client.group_rebalance(name, f"compat-{uuid.uuid4().hex[:8]}", 4)
    assert_rebalanced(before, after, 4)


def require_kip848(client, target) -> None:
    if not client.kip848:  # a client without the new protocol skips with its own reason first
        client.group_consume_kip848("", "", 0)
    if target.is_kbroker and CONSUMER_GROUP_HEARTBEAT not in target.api_versions:
        pytest.skip("kbroker does not serve KIP-848 yet (ApiVersions lacks ConsumerGroupHeartbeat(68)): "
                    "an expected skip; real Kafka 4 runs it")


def assert_consumer_group(ref, group: str) -> None:
    """The group the client used is a consumer-protocol group on the broker (ListGroups v5's type): a
    client that fell back to the classic protocol would have made a classic one."""
    kind = ref.group_type(group)
    assert kind == "consumer", f"the broker lists group {group} as {kind!r}, not a consumer-protocol group"


@scenario("group: join & consume (group.protocol=consumer, KIP-848)")
def test_group_consume_kip848(client, target, ref, topic):
    require_kip848(client, target)
    name = topic(partitions=3)
    sent = [r for p in range(3) for r in records(4, f"k848-{p}", partition=p)]
    ref.produce(name, sent)
    group = f"compat-{uuid.uuid4().hex[:8]}"
    first = client.group_consume_kip848(name, group, count=6)
    second = client.group_consume_kip848(name, group, count=len(sent) - 6)
    assert sorted(contents(first + second)) == sorted(contents(sent)), "records lost or read twice across members"
    assert_consumer_group(ref, group)


@scenario("group: rebalance (group.protocol=consumer, KIP-848)")
def test_group_rebalance_kip848(client, target, ref, topic):
    require_kip848(client, target)
    name = topic(partitions=4)
    group = f"compat-{uuid.uuid4().hex[:8]}"
    before, after = client.group_rebalance_kip848(name, group, 4)
    assert_rebalanced(before, after, 4)
    assert_consumer_group(ref, group)


@scenario("admin: list & describe groups")
def test_admin_groups(client, target, ref, topic):
    target.require("consumer groups")
    target.require("group admin")
    client.list_groups()  # a client without the admin call skips before any work
    name = topic()
    group = f"compat-{uuid.uuid4().hex[:8]}"
    ref.produce(name, records(3, "ga"))
    assert len(client.group_consume(name, group, count=3)) == 3
    assert group in client.list_groups()
    described = client.describe_group(group)
    assert str(described["state"]).replace("_", "").lower() == "empty", described
    assert described["members"] == 0, described


# -- transactions ---------------------------------------------------------------------------------


@scenario("transactions & read_committed")
def test_transactions(client, target, ref, topic):
    target.require("transactions")
    name = topic()
    committed, aborted = records(5, "committed"), records(5, "aborted")
    client.produce_transactions(name, committed, aborted, f"compat-{uuid.uuid4().hex[:8]}")
    assert contents(ref.read_partition(name, 0, read_committed=True)) == contents(committed)
    assert contents(ref.read_partition(name, 0)) == contents(committed + aborted)
    batches = wire.read_batches(target.bootstrap, name, 0)
    assert sum(b.control for b in batches) == 2, "one commit and one abort marker"
    assert all(b.transactional for b in batches)
    require_consumer(client, target)
    got = client.consume_from_beginning(name, count=len(committed), read_committed=True)
    assert contents(got) == contents(committed)


# -- stream processing ----------------------------------------------------------------------------

WORDS_IN = ["the quick brown fox", "jumps over the lazy dog", "The dog barks", "the fox runs; the dog sleeps"]


def word_counts(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        for word in line.lower().replace(";", " ").split():
            counts[word] = counts.get(word, 0) + 1
    return counts


@scenario("streams: word count, exactly_once_v2")
def test_streams_word_count(client, target, ref, topic):
    client.word_count  # clients without a Streams library skip here
    target.require("transactions")
    target.require("consumer groups")
    source, sink = topic(partitions=2), topic(partitions=2)
    ref.produce(source, [Rec(None, line.encode()) for line in WORDS_IN])
    expected = word_counts(WORDS_IN)
    app = f"compat-wc-{uuid.uuid4().hex[:8]}"
    seen = client.word_count(source, sink, app, expected)
    assert seen == expected
    # On the broker side: the committed output ends with the expected count per word (a count may be
    # written more than once on its way there, never past it), and every output batch is transactional.
    last: dict[str, int] = {}
    for p in range(2):
        for r in ref.read_partition(sink, p, read_committed=True):
            count = int.from_bytes(r.value, "big", signed=True)
            assert count <= expected[r.key.decode()], f"{r.key!r} counted {count} times"
            last[r.key.decode()] = count
        assert all(b.transactional for b in wire.read_batches(target.bootstrap, sink, p) if b.records_count)
    assert last == expected
