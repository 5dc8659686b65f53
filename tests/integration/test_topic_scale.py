"""Many topics and partitions: the bound on one admin request, the event loop kept serving others while a
request creates thousands of partitions, nothing half created when a creation fails, the all-topics
Metadata answer right after many changes, and every topic kept across kill -9. None of it is timed."""

from __future__ import annotations

import errno
import json
import os
import threading
import uuid

import pytest
from support.brokerproc import BrokerProcess

from kbroker import Broker
from kbroker.client import BlockingClient, BlockingConnection, ClientError
from kbroker.client.aio import metadata_request
from kbroker.errors import ErrorCode
from kbroker.topic_store import FileTopicStore
from kbroker.wire.messages import create_partitions, create_topics

C = create_topics.CreateTopicsRequest
CP = create_partitions.CreatePartitionsRequest
TOO_MANY = "Excessively large number of partitions per request."


def _topic_dirs(data_dir) -> set[str]:
    return {n for n in os.listdir(data_dir) if not n.startswith((".", "__")) and "-" in n}


def _all_topics(b) -> dict[str, int]:
    with BlockingConnection(b.host, b.port) as c:
        md = c.request(3, 12, metadata_request(12, None))
    return {t.name: len(t.partitions) for t in md.topics}


def _create(c: BlockingConnection, topics: dict[str, int], version: int = 7):
    req = C(topics=[C.CreatableTopic(name=n, num_partitions=p, replication_factor=-1, assignments=[], configs=[])
                    for n, p in topics.items()], timeout_ms=60000)
    return c.request(19, version, req).topics


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", storage="segment") as broker:
        yield broker


# -- the bound --------------------------------------------------------------------------------------------

def test_a_create_topics_request_over_10000_partitions_is_refused_whole_with_nothing_created(b, tmp_path):
    with BlockingConnection(b.host, b.port) as c:
        results = _create(c, {"small": 1, "half": 5000, "rest": 5000})  # 10,001 in all
        assert [(r.name, r.error_code, r.error_message) for r in results] == [
            (n, ErrorCode.POLICY_VIOLATION, TOO_MANY) for n in ("small", "half", "rest")]
        # exactly at the bound is allowed (the partitions are only counted: validate_only creates nothing)
        req = C(topics=[C.CreatableTopic(name="v", num_partitions=10000, replication_factor=-1, assignments=[],
                                         configs=[])], timeout_ms=60000, validate_only=True)
        assert c.request(19, 7, req).topics[0].error_code == 0
    assert _all_topics(b) == {}
    assert _topic_dirs(tmp_path / "data") == set()


def test_the_bound_is_the_setting_and_counts_default_partitions(tmp_path):
    settings = {"controller.max.records.per.batch": "10", "num.partitions": "4"}
    with Broker(port=0, data_dir=tmp_path / "data", settings=settings) as b:
        with BlockingConnection(b.host, b.port) as c:
            # 4 (num.partitions for -1) + 4 + 3 = 11 > 10
            results = _create(c, {"a": -1, "b": 4, "c": 3})
            assert {r.error_code for r in results} == {ErrorCode.POLICY_VIOLATION}
            assert [r.error_code for r in _create(c, {"a": -1, "b": 4, "c": 2})] == [0, 0, 0]
            # CreatePartitions: 7 new partitions in all, then 11
            grow = CP(topics=[CP.CreatePartitionsTopic(name="a", count=8, assignments=None),
                              CP.CreatePartitionsTopic(name="c", count=9, assignments=None)], timeout_ms=1000)
            res = c.request(37, 3, grow).results
            assert [(r.error_code, r.error_message) for r in res] == [(ErrorCode.POLICY_VIOLATION, TOO_MANY)] * 2
            grow.topics[1].count = 5
            assert [r.error_code for r in c.request(37, 3, grow).results] == [0, 0]
        assert _all_topics(b) == {"a": 8, "b": 4, "c": 5}
        assert _topic_dirs(tmp_path / "data") == set()  # made at their first write (segment.py create_new)


# -- responsiveness and failures ----------------------------------------------------------------------------

def test_other_clients_are_served_while_one_request_creates_thousands_of_partitions(b):
    """The creation stops at partition 3,000 until the test has had an answer on another connection: if
    the loop were not given turns while it creates, that answer would never come."""
    answered = threading.Event()
    store = b.state.log_store
    open_log = store.open_log

    def slow_open_log(topic, topic_id, partition, config):
        if topic == "big" and partition == 3000:
            assert answered.wait(30), "no other request was answered while the partitions were made"
        return open_log(topic, topic_id, partition, config)

    store.open_log = slow_open_log
    creator = BlockingConnection(b.host, b.port, timeout_s=120)
    req = C(topics=[C.CreatableTopic(name="big", num_partitions=4000, replication_factor=-1, assignments=[],
                                     configs=[])], timeout_ms=60000)
    creator.send_bytes(creator.frame(19, 7, req))
    with BlockingConnection(b.host, b.port) as other:
        md = other.request(3, 12, metadata_request(12, ["big"]))
        # asked while "big" is being made: not visible yet, and not auto-created under it
        assert md.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    answered.set()
    result = creator.read_response(19).topics[0]
    creator.close()
    assert result.error_code == 0 and result.num_partitions == 4000
    assert _all_topics(b) == {"big": 4000}


def test_a_creation_that_runs_out_of_file_descriptors_leaves_nothing_behind(b, tmp_path):
    store = b.state.log_store
    open_log = store.open_log

    def failing_open_log(topic, topic_id, partition, config):
        if topic == "doomed" and partition == 250:
            os.makedirs(os.path.join(store.data_dir, f"{topic}-{partition}"), exist_ok=True)  # as a half-made one
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return open_log(topic, topic_id, partition, config)

    store.open_log = failing_open_log
    with BlockingConnection(b.host, b.port) as c:
        ok, doomed = _create(c, {"fine": 3, "doomed": 600})
        assert ok.error_code == 0
        assert doomed.error_code == ErrorCode.KAFKA_STORAGE_ERROR and "Too many open files" in doomed.error_message
        store.wait_for_removals()  # the renamed ("-delete") directories go on a worker thread
        assert _topic_dirs(tmp_path / "data") == set()  # the half-made one gone; fine's come at their first write
        assert _all_topics(b) == {"fine": 3}
        store.open_log = open_log
        assert _create(c, {"doomed": 600})[0].error_code == 0  # the name is free again
    assert _all_topics(b) == {"fine": 3, "doomed": 600}


# -- Metadata for all topics after many changes -------------------------------------------------------------

def test_metadata_for_all_topics_follows_creations_deletions_and_new_partitions(b):
    expected: dict[str, int] = {}
    with BlockingClient(b.bootstrap_servers) as c:
        for batch in range(3):
            names = {f"t{batch}-{i}": 1 + i % 3 for i in range(100)}
            c.create_topics({n: {"partitions": p} for n, p in names.items()})
            expected.update(names)
            assert _all_topics(b) == expected  # asked between changes: never a stale answer
        doomed = [n for n in expected if n.endswith("7")]
        c.delete_topics(doomed)
        for n in doomed:
            del expected[n]
        assert _all_topics(b) == expected
        c.create_partitions({"t1-1": 9})
        expected["t1-1"] = 9
        c.create_topic("t0-7", 2)  # a deleted name again
        expected["t0-7"] = 2
        with BlockingConnection(b.host, b.port) as raw:
            for version in (0, 1, 4, 9, 12, 13):  # each version's kept answer
                md = raw.request(3, version, metadata_request(version, None))
                assert {t.name: len(t.partitions) for t in md.topics} == expected
                assert md.brokers[0].port == b.port


def test_metadata_for_all_topics_shows_each_principal_only_its_topics(tmp_path):
    from confluent_kafka.admin import AdminClient, NewTopic
    from support.securityhelpers import confluent_conf, make_certs, start_broker
    from test_security_acls import binding, create_acls

    certs = make_certs(tmp_path / "certs")
    b = start_broker(certs, acl=True)
    try:
        admin = AdminClient(confluent_conf(b.listeners, certs, "SASL_SSL", "PLAIN", "admin", "admin-secret"))
        alice = AdminClient(confluent_conf(b.listeners, certs, "SASL_SSL", "PLAIN", "alice", "alice-secret"))
        for f in admin.create_topics([NewTopic(f"x{i}", 1, 1) for i in range(20)]).values():
            f.result(30)
        create_acls(admin, binding("User:alice", "DESCRIBE", "x1", pattern="PREFIXED"))
        everything = {f"x{i}" for i in range(20)}
        for _ in range(2):  # asked twice each, in turn: one principal's answer is never another's
            assert set(admin.list_topics(timeout=30).topics) == everything
            assert set(alice.list_topics(timeout=30).topics) == {"x1"} | {f"x{i}" for i in range(10, 20)}
        for f in admin.delete_topics(["x12"]).values():
            f.result(30)
        assert set(alice.list_topics(timeout=30).topics) == {"x1"} | {f"x{i}" for i in range(10, 20)} - {"x12"}
    finally:
        b.stop()


# -- restarts ---------------------------------------------------------------------------------------------

def test_every_topic_survives_kill_9_and_a_restart(tmp_path):
    proc = BrokerProcess(tmp_path / "data").start()
    try:
        expected: dict[str, int] = {}
        with BlockingClient(proc.bootstrap_servers) as c:
            c.create_topics({f"bulk{i}": {"partitions": 1} for i in range(600)})
            expected.update({f"bulk{i}": 1 for i in range(600)})
            for i in range(60):  # one topic per request: each one an append to the metadata log
                c.create_topic(f"single{i}", 2, config={"retention.ms": str(1000 + i)} if i % 2 else None)
                expected[f"single{i}"] = 2
            c.delete_topics([f"bulk{i}" for i in range(0, 600, 3)])
            for i in range(0, 600, 3):
                del expected[f"bulk{i}"]
            c.create_partitions({"single5": 4})
            expected["single5"] = 4
        proc.kill()
        proc.start()
        assert _all_topics(proc) == expected
        from kbroker.wire.messages import describe_configs as D
        with BlockingClient(proc.bootstrap_servers) as c:
            resp = c.send(32, D.DescribeConfigsRequest(resources=[D.DescribeConfigsRequest.DescribeConfigsResource(
                resource_type=2, resource_name="single7", configuration_keys=["retention.ms"])]))
            assert resp.results[0].configs[0].value == "1007"
        proc.stop(timeout=120)  # a clean stop fsyncs every segment
        proc.start()  # and a clean start
        assert _all_topics(proc) == expected
    finally:
        proc.kill()


def test_a_data_directory_written_before_the_metadata_log_loads(tmp_path):
    """Format 1: one metadata.json, rewritten whole on every change, no journal beside it."""
    import kbroker.broker_state as kb
    data = tmp_path / "data"
    ids = {f"old{i}": str(uuid.uuid4()) for i in range(5)}
    doc = {"format_version": 1, "cluster_id": "old-cluster-id", "producer_id_block_end": 3000,
           "topics": {n: {"id": i, "partitions": 2, "configs": {"retention.ms": "5000"}} for n, i in ids.items()}}
    (data / kb.STATE_DIR).mkdir(parents=True)
    (data / kb.STATE_DIR / "metadata.json").write_text(json.dumps(doc))
    with Broker(port=0, data_dir=data) as b:
        assert _all_topics(b) == {n: 2 for n in ids}
        with BlockingClient(b.bootstrap_servers) as c:
            assert c.metadata([]).cluster_id == "old-cluster-id"
            c.create_topic("new", 1)
    with Broker(port=0, data_dir=data) as b:
        assert _all_topics(b) == {**{n: 2 for n in ids}, "new": 1}


# -- the metadata store itself --------------------------------------------------------------------------------

def test_the_topic_journal_folds_in_the_old_document_and_compacts_without_bringing_back_deleted_topics(tmp_path):
    path = tmp_path / "metadata.json"
    t = lambda i: {"id": str(i), "partitions": 1, "configs": {}}  # noqa: E731
    path.write_text(json.dumps({"format_version": 1, "cluster_id": "c", "topics": {"old": t(0), "gone": t(1)}}))
    s = FileTopicStore(path)
    assert s.load() == {"cluster_id": "c", "topics": {"old": t(0), "gone": t(1)}}
    s.append([{"op": "delete_topic", "name": "gone"}, {"op": "topic", "name": "new", "value": t(2)}])
    assert not path.exists()  # folded into the journal
    s.close()
    expected = {"cluster_id": "c", "topics": {"old": t(0), "new": t(2)}}
    s = FileTopicStore(path)
    assert s.load() == expected
    s._log.compact_min_bytes, s._log.compact_ratio = 0, 1.0  # compact at every chance
    for i in range(10, 20):
        s.append([{"op": "topic", "name": f"t{i}", "value": t(i)}])
        s.append([{"op": "delete_topic", "name": f"t{i}"}, {"op": "set", "key": "producer_id_block_end", "value": i}])
    assert s._log.compactions > 0
    s.close()
    s = FileTopicStore(path)
    assert s.load() == dict(expected, producer_id_block_end=19)
    s.close()
