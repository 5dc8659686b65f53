"""Topic names that collide in Kafka's metric names, where '.' and '_' are the same character: Kafka's
controller refuses the second (ReplicationControlManager.validateNewTopicNames: INVALID_TOPIC_EXCEPTION,
"Topic 'a_b' collides with existing topic: a.b"), over a raw socket and with a stock admin client."""

from __future__ import annotations

import pytest

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.wire.messages import create_topics, delete_topics, metadata
from kbroker.client import BlockingConnection

C = create_topics.CreateTopicsRequest


@pytest.fixture
def c():
    with Broker(port=0, storage="memory") as b:
        client = BlockingConnection(b.host, b.port)
        yield client
        client.close()


def _create(c, *names, validate_only=False):
    resp = c.request(19, 5, C(topics=[C.CreatableTopic(name=n, num_partitions=1, replication_factor=1,
                                                       assignments=[], configs=[]) for n in names],
                              timeout_ms=5000, validate_only=validate_only))
    return [(t.name, t.error_code, t.error_message) for t in resp.topics]


def test_a_name_colliding_with_an_existing_topic_is_refused(c):
    assert _create(c, "orders.eu") == [("orders.eu", 0, None)]
    assert _create(c, "orders_eu") == [("orders_eu", ErrorCode.INVALID_TOPIC_EXCEPTION,
                                        "Topic 'orders_eu' collides with existing topic: orders.eu")]
    assert _create(c, "orders_eu", validate_only=True)[0][1] == ErrorCode.INVALID_TOPIC_EXCEPTION
    # The same name is TOPIC_ALREADY_EXISTS, not a collision; a name without '.' or '_' never collides.
    assert _create(c, "orders.eu")[0][1] == ErrorCode.TOPIC_ALREADY_EXISTS
    assert _create(c, "orderseu") == [("orderseu", 0, None)]


def test_the_message_names_the_least_colliding_topic(c):
    assert [e for _, e, _ in _create(c, "x_y.z", "x.y.z")] == [0, ErrorCode.INVALID_TOPIC_EXCEPTION]
    assert _create(c, "x_y_z")[0][2] == "Topic 'x_y_z' collides with existing topic: x_y.z"


def test_a_deleted_topic_no_longer_collides(c):
    assert _create(c, "a.b")[0][1] == 0
    D = delete_topics.DeleteTopicsRequest
    assert c.request(20, 4, D(topic_names=["a.b"], timeout_ms=5000)).responses[0].error_code == 0
    assert _create(c, "a_b")[0][1] == 0


def test_auto_creation_of_a_colliding_name_creates_nothing(c):
    """Metadata and Produce auto-create through the same check; as Kafka, whose auto-creation the controller
    refuses, the client sees UNKNOWN_TOPIC_OR_PARTITION and the connection stays open."""
    assert _create(c, "logs.app")[0][1] == 0
    M = metadata.MetadataRequest
    resp = c.request(3, 9, M(topics=[M.MetadataRequestTopic(name="logs_app")], allow_auto_topic_creation=True))
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    resp = c.request(3, 9, M(topics=[M.MetadataRequestTopic(name="logs_app")], allow_auto_topic_creation=False))
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_kafka_python_admin_sees_the_collision():
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import InvalidTopicError

    with Broker(port=0, storage="memory") as b:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers, request_timeout_ms=10000)
        try:
            admin.create_topics([NewTopic("events.v1", 1, 1)])
            with pytest.raises(InvalidTopicError, match="collides with existing topic: events.v1"):
                admin.create_topics([NewTopic("events_v1", 1, 1)])
        finally:
            admin.close()
