"""DescribeTopicPartitions (KIP-966) over a socket with kbroker's own client: every partition's leader,
epoch, replicas and ISR; paging by ResponsePartitionLimit and the cursor as Kafka's handler pages (a topic
cut short, a page ending between topics, the cursor's partition index); unknown and illegal topic names;
a cursor topic missing from the list; DESCRIBE authorisation and the authorised-operations bit set."""

from __future__ import annotations

import pytest

from kbroker import Broker
from kbroker.client import BlockingClient, BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.security import acl
from kbroker.wire.messages import describe_topic_partitions as DTP
from kbroker.wire.primitives import ZERO_UUID

Q = DTP.DescribeTopicPartitionsRequest
R = DTP.DescribeTopicPartitionsResponse
KEY = 75


def ask(conn, topics, limit=2000, cursor=None):
    cur = None if cursor is None else Q.Cursor(topic_name=cursor[0], partition_index=cursor[1])
    return conn.request(KEY, 0, Q(topics=[Q.TopicRequest(name=t) for t in topics],
                                  response_partition_limit=limit, cursor=cur))


def pages(conn, topics, limit):
    """Every page from the start, following NextCursor; the (topic, partitions) of each."""
    out, cursor = [], None
    while True:
        resp = ask(conn, topics, limit, cursor)
        out.append([(t.name, [p.partition_index for p in t.partitions]) for t in resp.topics])
        if resp.next_cursor is None:
            return out
        cursor = (resp.next_cursor.topic_name, resp.next_cursor.partition_index)


@pytest.fixture(scope="module")
def broker():
    with Broker(port=0, storage="memory") as b:
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("dtp-a", 5)
            c.create_topic("dtp-b", 3)
            c.create_topic("dtp-c", 1)
        yield b


@pytest.fixture
def conn(broker):
    with BlockingConnection(broker.host, broker.port, negotiate_versions=True) as c:
        yield c


def test_advertised_and_describes_every_partition(broker, conn):
    assert conn.versions[KEY] == 0
    resp = ask(conn, ["dtp-b"])
    assert resp.next_cursor is None
    (t,) = resp.topics
    assert (t.error_code, t.name, t.is_internal) == (0, "dtp-b", False)
    assert t.topic_id == broker.state.topics.get("dtp-b").topic_id
    assert t.topic_authorized_operations == acl.all_operations(acl.TOPIC)
    node = broker.state.node_id
    for i, p in enumerate(t.partitions):
        assert (p.error_code, p.partition_index, p.leader_id) == (0, i, node)
        assert p.leader_epoch == broker.state.topics.get("dtp-b").partitions[i].leader_epoch
        assert (p.replica_nodes, p.isr_nodes, p.offline_replicas) == ([node], [node], [])
        assert (p.eligible_leader_replicas, p.last_known_elr) == ([], [])


def test_pages_named_topics_in_name_order(conn):
    # Kafka answers in name order whatever the request's order; 4 partitions per page.
    assert pages(conn, ["dtp-c", "dtp-a", "dtp-b"], 4) == [
        [("dtp-a", [0, 1, 2, 3])],
        [("dtp-a", [4]), ("dtp-b", [0, 1, 2])],
        [("dtp-c", [0])],
    ]


def test_a_page_ending_between_topics_points_at_the_next_topic(conn):
    resp = ask(conn, ["dtp-b", "dtp-c"], limit=3)
    assert [(t.name, len(t.partitions)) for t in resp.topics] == [("dtp-b", 3)]
    assert (resp.next_cursor.topic_name, resp.next_cursor.partition_index) == ("dtp-c", 0)


def test_the_cursor_partition_index_applies_to_its_topic_only(conn):
    resp = ask(conn, ["dtp-a", "dtp-b"], cursor=("dtp-a", 3))
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in resp.topics] == [
        ("dtp-a", [3, 4]), ("dtp-b", [0, 1, 2])]
    assert resp.next_cursor is None


def test_every_topic_when_none_is_named(conn):
    everything = [t for page in pages(conn, [], 2) for t in page]
    names = [n for n, _ in everything]
    assert names == sorted(names)
    for topic, count in (("dtp-a", 5), ("dtp-b", 3), ("dtp-c", 1)):
        assert sorted(i for n, parts in everything if n == topic for i in parts) == list(range(count))


def test_unknown_and_illegal_names(conn):
    resp = ask(conn, ["dtp-c", "no-such-topic", "bad/name"])
    got = {t.name: (t.error_code, len(t.partitions)) for t in resp.topics}
    assert got == {"dtp-c": (0, 1), "no-such-topic": (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 0),
                   "bad/name": (ErrorCode.INVALID_TOPIC_EXCEPTION, 0)}


def test_a_cursor_topic_missing_from_the_list_is_an_invalid_request(conn):
    resp = ask(conn, ["dtp-a", "dtp-b"], cursor=("dtp-z", 0))
    assert [(t.name, t.error_code) for t in resp.topics] == [("dtp-a", ErrorCode.INVALID_REQUEST),
                                                             ("dtp-b", ErrorCode.INVALID_REQUEST)]


def test_the_broker_limit_caps_the_request_limit():
    with Broker(port=0, storage="memory", settings={"max.request.partition.size.limit": "2"}) as b:
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("capped", 3)
        with BlockingConnection(b.host, b.port) as conn:
            resp = ask(conn, ["capped"], limit=100)
    assert [p.partition_index for p in resp.topics[0].partitions] == [0, 1]
    assert (resp.next_cursor.topic_name, resp.next_cursor.partition_index) == ("capped", 2)


def _allow(b, operation, name):
    b.call(b.state.authorizer.create, acl.AclBinding(acl.TOPIC, name, acl.PatternType.LITERAL, "User:ANONYMOUS",
                                                     "*", operation, acl.PermissionType.ALLOW))


def test_describe_is_authorised_per_topic():
    with Broker(port=0, storage="memory", authorizer_enabled=True) as b:
        for name in ("seen", "hidden"):
            _allow(b, acl.CREATE, name)  # CREATE does not imply DESCRIBE
        with BlockingClient(b.bootstrap_servers) as c:
            c.create_topic("seen", 2)
            c.create_topic("hidden", 2)
        _allow(b, acl.DESCRIBE, "seen")
        with BlockingConnection(b.host, b.port) as conn:
            named = ask(conn, ["seen", "hidden", "absent"])
            everything = ask(conn, [])
    # Refused topics come last, with the zero topic id, whether they exist or not.
    assert [(t.name, t.error_code, len(t.partitions)) for t in named.topics[:1]] == [("seen", 0, 2)]
    assert sorted((t.name, t.error_code, len(t.partitions)) for t in named.topics[1:]) == [
        ("absent", ErrorCode.TOPIC_AUTHORIZATION_FAILED, 0), ("hidden", ErrorCode.TOPIC_AUTHORIZATION_FAILED, 0)]
    assert all(t.topic_id == ZERO_UUID for t in named.topics[1:])
    assert named.topics[0].topic_authorized_operations == acl.bit_set([acl.CREATE, acl.DESCRIBE])
    assert [t.name for t in everything.topics] == ["seen"]


def test_a_limit_of_zero_or_less_answers_one_partition(conn):
    # As a real Kafka 4.4.0 answers (compared over the wire).
    for limit in (0, -5):
        resp = ask(conn, ["dtp-a"], limit=limit)
        assert [(t.name, [p.partition_index for p in t.partitions]) for t in resp.topics] == [("dtp-a", [0])]
        assert (resp.next_cursor.topic_name, resp.next_cursor.partition_index) == ("dtp-a", 1)
