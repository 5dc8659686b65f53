"""AlterReplicaLogDirs (34), DescribeLogDirs (35) and ListConfigResources (74, KIP-1142) through kafka-python's
admin client, a stock client, over a socket to a broker with its data in a directory.
"""

from __future__ import annotations

import os
import uuid

import pytest

from kbroker import Broker

TIMEOUT_MS = 30000


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    from kafka.admin import KafkaAdminClient, NewTopic

    data = tmp_path_factory.mktemp("logdirs")
    with Broker(port=0, data_dir=data) as b:
        a = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers, request_timeout_ms=TIMEOUT_MS)
        topic = f"ld-{uuid.uuid4().hex[:8]}"
        a.create_topics([NewTopic(topic, 2, 1)])
        try:
            yield a, b, topic, os.path.abspath(data)
        finally:
            a.close()


def test_describe_log_dirs_names_the_absolute_directory_and_each_replica(admin):
    a, _b, topic, data = admin
    (broker,) = a.describe_log_dirs({topic: [0, 1]})
    (d,) = broker["log_dirs"]
    assert d["error_code"] == 0 and d["log_dir"] == data
    (t,) = [t for t in d["topics"] if t["name"] == topic]
    assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1]
    assert not any(p["is_future_key"] for p in t["partitions"])


def test_alter_replica_log_dirs_answers_as_kafka(admin):
    """The broker's own directory: nothing to move, no error; another path: LOG_DIR_NOT_FOUND; a partition
    the topic lacks and a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION."""
    from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError

    a, b, topic, data = admin
    node = b.node_ids[0] if b.node_ids else 0
    answers = a.alter_replica_log_dirs({(topic, 0, node): data, (topic, 1, node): data, (topic, 5, node): data,
                                        ("no-such-topic", 0, node): data})
    by = {(tpr.topic, tpr.partition): err for tpr, err in answers.items()}
    assert by == {(topic, 0): NoError, (topic, 1): NoError, (topic, 5): UnknownTopicOrPartitionError,
                  ("no-such-topic", 0): UnknownTopicOrPartitionError}
    (err,) = a.alter_replica_log_dirs({(topic, 0, node): "/no/such/dir"}).values()
    assert err is LogDirNotFoundError
    (broker,) = a.describe_log_dirs({topic: [0]})
    assert [p["is_future_key"] for t in broker["log_dirs"][0]["topics"] if t["name"] == topic
            for p in t["partitions"]] == [False]


def test_list_config_resources_by_type(admin):
    a, b, topic, _data = admin
    """Every type (the topics and the broker), one type, and types kbroker keeps none of."""
    from kafka.errors import UnsupportedVersionError

    a, b, topic, _data = admin
    everything = a.list_config_resources()  # {type name in lower case: [resource names]}
    assert topic in everything["topic"] and everything["broker"] == [str(n) for n in (b.node_ids or [0])]
    only_topics = a.list_config_resources(["TOPIC"])
    assert set(only_topics) == {"topic"} and topic in only_topics["topic"]
    assert a.list_config_resources(["GROUP"]) == {} and a.list_config_resources(["CLIENT_METRICS"]) == {}
    with pytest.raises(UnsupportedVersionError):
        a.list_config_resources(["UNKNOWN"])
