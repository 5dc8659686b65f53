"""The group and transaction coordinators of a three-broker cluster (``Broker(brokers=3)``), placed as Kafka
places them: a group id or transactional id hashes onto a partition of ``__consumer_offsets`` /
``__transaction_state`` (created by the first FindCoordinator), its coordinator is that partition's leader, and
its state is records of that partition, which stock consumers can read. With replication factor 1 a group whose
coordinator's broker is stopped has no coordinator until the broker is back, and then has its offsets again.
"""

from __future__ import annotations

import time
import uuid

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.coordinator import records as CR
from kbroker.coordinator.runtime import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, partition_for
from kbroker.errors import ErrorCode
from kbroker.wire.messages import (describe_producers as DP, find_coordinator as FC, join_group as JG,
                                   metadata as MD, produce as P, write_txn_markers as W)
from support.clients import CLIENTS
from support.groupclients import commit_offsets, committed_offsets
from support.txn_helpers import read_committed_values

TIMEOUT_S = 30
PARTITIONS = 50  # offsets.topic.num.partitions, transaction.state.log.num.partitions


@pytest.fixture(scope="module")
def cluster():
    with Broker(brokers=3) as b:
        _create_internal_topics(b)
        yield b


def _create_internal_topics(b: Broker) -> None:
    """As Kafka, the first FindCoordinator that needs an internal topic starts its creation and is answered
    COORDINATOR_NOT_AVAILABLE; the creation runs on the broker's next turn, before it reads another request."""
    for key_type in (0, 1):
        assert _find(b, 1, key_type, ["first"]) == [(ErrorCode.COORDINATOR_NOT_AVAILABLE, -1)]
        assert _find(b, 1, key_type, ["first"])[0][0] == ErrorCode.NONE


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _connect(b: Broker, node: int) -> BlockingConnection:
    server = b.cluster.servers[node]
    return BlockingConnection(server.host, server.port)


def _port(b: Broker, node: int) -> int:
    return b.cluster.servers[node].port


def _find(b: Broker, node: int, key_type: int, keys: list[str]) -> list[tuple[int, int]]:
    """FindCoordinator v4 (batched) asked of broker ``node``: (error, coordinator node) per key."""
    c = _connect(b, node)
    try:
        r = c.request(10, 4, FC.FindCoordinatorRequest(key_type=key_type, coordinator_keys=keys))
    finally:
        c.close()
    for x in r.coordinators:
        assert x.error_code or x.port == _port(b, x.node_id)
    return [(x.error_code, x.node_id) for x in r.coordinators]


def _metadata_topic(b: Broker, topic: str):
    """``topic`` as broker 0's Metadata (v12) answers it."""
    c = _connect(b, 0)
    try:
        md = c.request(3, 12, MD.MetadataRequest(topics=[MD.MetadataRequest.MetadataRequestTopic(name=topic)],
                                                 allow_auto_topic_creation=False))
    finally:
        c.close()
    return md.topics[0]


def _internal_leaders(b: Broker, topic: str) -> tuple[bool, dict[int, int]]:
    t = _metadata_topic(b, topic)
    return t.is_internal, {p.partition_index: p.leader_id for p in t.partitions}


@pytest.mark.parametrize("key_type, topic", [(0, OFFSETS_TOPIC), (1, TRANSACTION_STATE_TOPIC)])
def test_a_key_is_coordinated_by_the_leader_of_its_partition(cluster, key_type, topic):
    keys = [_name("k") for _ in range(24)]
    answers = [_find(cluster, node, key_type, keys) for node in (0, 1, 2)]
    assert answers[0] == answers[1] == answers[2]  # every broker names the same coordinator
    internal, leaders = _internal_leaders(cluster, topic)
    assert internal and len(leaders) == PARTITIONS
    assert answers[0] == [(0, leaders[partition_for(k, PARTITIONS)]) for k in keys]
    assert len({node for _, node in answers[0]}) == 3  # spread over the brokers

    # v0-3 answer one key the same way.
    c = _connect(cluster, 1)
    try:
        r = c.request(10, 3, FC.FindCoordinatorRequest(key_type=key_type, key=keys[0]))
    finally:
        c.close()
    assert (r.error_code, r.node_id, r.port) == (0, answers[0][0][1], _port(cluster, answers[0][0][1]))


def test_a_broker_that_is_not_the_coordinator_answers_not_coordinator(cluster):
    group = _name("g")
    ((err, coordinator),) = _find(cluster, 0, 0, [group])
    assert err == 0
    join = JG.JoinGroupRequest(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
                               protocol_type="consumer",
                               protocols=[JG.JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")])
    for node in (0, 1, 2):
        c = _connect(cluster, node)
        try:
            r = c.request(11, 5, join)
        finally:
            c.close()
        # The coordinator asks a new member for its id (KIP-394); the others send it to its coordinator.
        assert r.error_code == (ErrorCode.MEMBER_ID_REQUIRED if node == coordinator else ErrorCode.NOT_COORDINATOR)


def _groups_on_two_coordinators(b: Broker) -> tuple[int, str, int, str]:
    """(node, a group it coordinates, another node, a group that one coordinates)."""
    groups = {}  # coordinator node -> a group it coordinates
    while len(groups) < 2:
        group = _name("g")
        ((err, node),) = _find(b, 0, 0, [group])
        assert err == 0
        groups.setdefault(node, group)
    (down, group), (up, other) = sorted(groups.items())[:2]
    return down, group, up, other


def test_committed_offsets_move_with_the_coordinator_when_its_broker_dies(tmp_path):
    """__consumer_offsets replicated three times (the default, with three brokers): the coordinator's broker
    killed, another replica of its partition leads it, loads the group's records and serves the offsets."""
    with Broker(brokers=3, data_dir=tmp_path) as b:
        _create_internal_topics(b)
        topic = _name("t")
        cluster_client_topic(b, topic, 3)
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        down, group, up, other = _groups_on_two_coordinators(b)
        commit_offsets(b.bootstrap_servers, group, topic, {0: 5, 1: 6, 2: 7})
        commit_offsets(b.bootstrap_servers, other, topic, {0: 1})

        b.kill_broker(down)
        live = next(n for n in (0, 1, 2) if n != down)
        deadline = time.monotonic() + TIMEOUT_S
        while (found := _find(b, live, 0, [group]))[0][0] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found[0][0] == 0 and found[0][1] not in (down, -1), found
        assert committed_offsets(b.bootstrap_servers, group, topic, 3) == {0: 5, 1: 6, 2: 7}
        assert committed_offsets(b.bootstrap_servers, other, topic, 3) == {0: 1}


def test_committed_offsets_wait_out_a_stopped_coordinator_and_come_back_with_it(tmp_path):
    """With one replica of __consumer_offsets, a stopped coordinator's groups wait for its broker."""
    with Broker(brokers=3, data_dir=tmp_path, settings={"offsets.topic.replication.factor": "1",
                                                         "transaction.state.log.replication.factor": "1"}) as b:
        _create_internal_topics(b)
        topic = _name("t")
        cluster_client_topic(b, topic, 3)
        down, group, up, other = _groups_on_two_coordinators(b)
        commit_offsets(b.bootstrap_servers, group, topic, {0: 5, 1: 6, 2: 7})
        commit_offsets(b.bootstrap_servers, other, topic, {0: 1})

        b.stop_broker(down)
        live = next(n for n in (0, 1, 2) if n != down)
        assert _find(b, live, 0, [group]) == [(ErrorCode.COORDINATOR_NOT_AVAILABLE, -1)]
        assert _find(b, live, 0, [other]) == [(0, up)]
        assert committed_offsets(b.bootstrap_servers, other, topic, 3) == {0: 1}  # the other coordinator serves on

        b.start_broker(down)
        assert b.wait_for_leaders(timeout_s=10)
        assert _find(b, live, 0, [group]) == [(0, down)]
        assert committed_offsets(b.bootstrap_servers, group, topic, 3) == {0: 5, 1: 6, 2: 7}


def test_offset_commits_are_records_of_consumer_offsets_in_kafkas_format(cluster):
    from confluent_kafka import Consumer, TopicPartition

    topic, group = _name("t"), _name("g")
    cluster_client_topic(cluster, topic, 1)
    commit_offsets(cluster.bootstrap_servers, group, topic, {0: 17})
    index = partition_for(group, PARTITIONS)
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": _name("reader"),
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(OFFSETS_TOPIC, index, 0)])
        found = None
        deadline = time.monotonic() + TIMEOUT_S
        while found is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            key = CR.decode_offsets_key(m.key())
            if key.kind == CR.OFFSET_COMMIT and (key.group, key.topic, key.partition) == (group, topic, 0):
                found = CR.decode_offset_value(m.value())
    finally:
        c.close()
    assert found is not None and found.offset == 17


def test_producers_may_not_write_to_the_internal_topics(cluster):
    _find(cluster, 0, 0, [_name("g")])  # the topic exists
    leaders = _internal_leaders(cluster, OFFSETS_TOPIC)[1]
    c = _connect(cluster, leaders[0])
    try:
        r = c.request(0, 9, P.ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[P.ProduceRequest.TopicProduceData(
            name=OFFSETS_TOPIC, partition_data=[P.ProduceRequest.PartitionProduceData(index=0, records=None)])]))
    finally:
        c.close()
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def cluster_client_topic(b: Broker, topic: str, partitions: int) -> None:
    CLIENTS["confluent-kafka"](b.bootstrap_servers).create_topic(topic, partitions)


@pytest.mark.parametrize("commit", [True, False])
def test_a_transaction_over_partitions_of_other_brokers(cluster, commit):
    """The transaction coordinator writes the markers through each partition's leader, and the group's offsets
    sent to the transaction reach the group's coordinator (another broker, as it happens) only on commit."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    out, src = _name("out"), _name("src")
    cluster_client_topic(cluster, out, 3)
    cluster_client_topic(cluster, src, 1)
    tid = _name("tx")
    ((err, txn_node),) = _find(cluster, 0, 1, [tid])
    assert err == 0
    while True:  # a group coordinated by another broker than the transaction
        group = _name("g")
        ((err, group_node),) = _find(cluster, 0, 0, [group])
        if group_node != txn_node:
            break
    sent = sum(server.state.markers.sent for server in cluster.cluster.servers.values())
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": tid})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(9):
        p.produce(out, value=f"v{i}".encode(), partition=i % 3)
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    p.send_offsets_to_transaction([TopicPartition(src, 0, 33)], c.consumer_group_metadata(), TIMEOUT_S)
    c.close()
    (p.commit_transaction if commit else p.abort_transaction)(TIMEOUT_S)

    got = read_committed_values(cluster.bootstrap_servers, out, 3)
    # The partitions led by other brokers than the coordinator were marked by WriteTxnMarkers requests.
    assert sum(server.state.markers.sent for server in cluster.cluster.servers.values()) > sent
    assert sorted(got) == (sorted(f"v{i}".encode() for i in range(9)) if commit else [])
    assert committed_offsets(cluster.bootstrap_servers, group, src, 1) == ({0: 33} if commit else {})


def test_write_txn_markers_answers_for_partitions_it_does_not_lead(cluster):
    topic = _name("w")
    cluster_client_topic(cluster, topic, 3)
    c = _connect(cluster, 0)
    try:
        leaders = _internal_leaders(cluster, topic)[1]
        marker = W.WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=999_999, producer_epoch=0, transaction_result=False, coordinator_epoch=0, topics=[
                W.WriteTxnMarkersRequest.WritableTxnMarkerTopic(name=topic, partition_indexes=[0, 1, 2]),
                W.WriteTxnMarkersRequest.WritableTxnMarkerTopic(name=_name("none"), partition_indexes=[0])])
        r = c.request(27, 1, W.WriteTxnMarkersRequest(markers=[marker]))
    finally:
        c.close()
    (result,) = r.markers
    assert {p.partition_index: p.error_code for p in result.topics[0].partitions} == {
        i: ErrorCode.NONE if leaders[i] == 0 else ErrorCode.NOT_LEADER_OR_FOLLOWER for i in range(3)}
    assert result.topics[1].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _leaders_and_epochs(b: Broker, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, leader epoch), as broker 0's Metadata says."""
    return {p.partition_index: (p.leader_id, p.leader_epoch) for p in _metadata_topic(b, topic).partitions}


def test_markers_carry_the_coordinators_leader_epoch_and_older_coordinators_are_fenced(tmp_path):
    """Kafka's coordinator epoch is the leader epoch of the coordinator's __transaction_state partition: after
    that partition's leadership moved (its leader epoch up), a committed transaction's markers carry the new
    epoch on every partition (DescribeProducers, led by whichever broker), and a marker of an older
    coordinator epoch is refused TRANSACTION_COORDINATOR_FENCED."""
    from confluent_kafka import Producer

    with Broker(brokers=3, data_dir=tmp_path) as b:
        _create_internal_topics(b)
        out = _name("out")
        cluster_client_topic(b, out, 3)
        assert b.wait_for_leaders(timeout_s=TIMEOUT_S, full_isr=True)
        tid = _name("tx")
        index = partition_for(tid, PARTITIONS)
        ((err, node),) = _find(b, 0, 1, [tid])
        assert err == 0
        target = (node + 1) % 3
        b.move_leader(TRANSACTION_STATE_TOPIC, index, target)
        deadline = time.monotonic() + TIMEOUT_S
        while _find(b, 0, 1, [tid]) != [(0, target)] and time.monotonic() < deadline:
            time.sleep(0.05)
        leader, epoch = _leaders_and_epochs(b, TRANSACTION_STATE_TOPIC)[index]
        assert leader == target and epoch >= 1

        p = Producer({"bootstrap.servers": b.bootstrap_servers, "transactional.id": tid})
        p.init_transactions(TIMEOUT_S)
        p.begin_transaction()
        for i in range(3):
            p.produce(out, value=b"v", partition=i)
        p.commit_transaction(TIMEOUT_S)

        def describe():
            seen, ids = {}, None
            for partition, (pleader, _e) in _leaders_and_epochs(b, out).items():
                c = _connect(b, pleader)
                try:
                    r = c.request(61, 0, DP.DescribeProducersRequest(topics=[
                        DP.DescribeProducersRequest.TopicRequest(name=out, partition_indexes=[partition])]))
                finally:
                    c.close()
                (state,) = r.topics[0].partitions[0].active_producers
                seen[partition] = state.coordinator_epoch
                ids = state.producer_id, state.producer_epoch
            return seen, ids

        # The commit is answered once the coordinator has logged it; the markers follow (as in Kafka), so a
        # partition may show no marker yet (coordinator epoch -1) for a moment.
        deadline = time.monotonic() + TIMEOUT_S
        seen, (producer_id, producer_epoch) = describe()
        while -1 in seen.values() and time.monotonic() < deadline:
            time.sleep(0.05)
            seen, (producer_id, producer_epoch) = describe()
        assert seen == {0: epoch, 1: epoch, 2: epoch}

        pleader = _leaders_and_epochs(b, out)[0][0]
        stale = W.WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=False,
            coordinator_epoch=epoch - 1,
            topics=[W.WriteTxnMarkersRequest.WritableTxnMarkerTopic(name=out, partition_indexes=[0])])
        c = _connect(b, pleader)
        try:
            r = c.request(27, 1, W.WriteTxnMarkersRequest(markers=[stale]))
        finally:
            c.close()
        assert r.markers[0].topics[0].partitions[0].error_code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
