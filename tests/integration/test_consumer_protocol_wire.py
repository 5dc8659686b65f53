"""The consumer group protocol's requests as exact frames over a socket (kbroker.client's BlockingConnection):
ConsumerGroupHeartbeat v0 and v1 and ConsumerGroupDescribe v0 and v1, and OffsetCommit / OffsetFetch v10, which
name topics by id (KIP-848), where no stock Python client reaches yet."""

import uuid

import pytest

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.wire.messages import consumer_group_describe as CGD
from kbroker.wire.messages import consumer_group_heartbeat as CGH
from kbroker.wire.messages import offset_commit as OC
from kbroker.wire.messages import offset_fetch as OF
from support.clients import ConfluentClient


@pytest.fixture
def b():
    with Broker(port=0, storage="memory") as broker:
        # What a client's FindCoordinator does first: the group coordinators' topic, loaded before the next request.
        broker.call(lambda: broker.state.coordinator_topic("__consumer_offsets"))
        yield broker


def _topic_id(b, name: str) -> uuid.UUID:
    return b.call(lambda: b.state.topics.get(name).topic_id)


def _join(c, group: str, member: str, topic: str, version: int = 1):
    return c.request(68, version, CGH.ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=0, rebalance_timeout_ms=30000,
        subscribed_topic_names=[topic], topic_partitions=[]))


def test_heartbeat_and_describe_at_each_version(b):
    ConfluentClient(b.bootstrap_servers).create_topic("hb", 3)
    tid = _topic_id(b, "hb")
    c = BlockingConnection(b.host, b.port)
    r = _join(c, "g", "", "hb", version=0)  # v0: the coordinator names the member
    assert r.error_code == 0 and r.member_id and r.member_epoch == 1
    assert [(t.topic_id, sorted(t.partitions)) for t in r.assignment.topic_partitions] == [(tid, [0, 1, 2])]
    r1 = _join(c, "g", "", "hb")  # v1: the client must name itself
    assert (r1.error_code, r1.error_message) == (ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
    bad = c.request(68, 1, CGH.ConsumerGroupHeartbeatRequest(
        group_id="g", member_id="m2", member_epoch=0, rebalance_timeout_ms=30000, subscribed_topic_regex="(",
        topic_partitions=[]))
    assert bad.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION
    for version in (0, 1):
        d = c.request(69, version, CGD.ConsumerGroupDescribeRequest(group_ids=["g", "nope"]))
        g, nope = d.groups
        assert (g.error_code, g.group_state, g.group_epoch, g.assignment_epoch, g.assignor_name) == (
            0, "Stable", 1, 1, "uniform")
        [m] = g.members
        assert m.member_id == r.member_id and m.member_epoch == 1
        assert [(t.topic_id, t.topic_name, t.partitions) for t in m.assignment.topic_partitions] == [
            (tid, "hb", [0, 1, 2])]
        assert m.member_type == (1 if version >= 1 else -1)  # v0 has no member type: the decoder's default
        assert (nope.error_code, nope.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group nope not found.")
    c.close()


def test_offset_commit_and_fetch_v10_name_topics_by_id(b):
    ConfluentClient(b.bootstrap_servers).create_topic("ids", 2)
    tid = _topic_id(b, "ids")
    stranger = uuid.uuid4()
    c = BlockingConnection(b.host, b.port)
    member = _join(c, "g10", "m10", "ids")
    commit = c.request(8, 10, OC.OffsetCommitRequest(
        group_id="g10", generation_id_or_member_epoch=member.member_epoch, member_id="m10", topics=[
            OC.OffsetCommitRequest.OffsetCommitRequestTopic(topic_id=tid, partitions=[
                OC.OffsetCommitRequest.OffsetCommitRequestPartition(partition_index=1, committed_offset=42,
                                                                    committed_metadata="v10")]),
            OC.OffsetCommitRequest.OffsetCommitRequestTopic(topic_id=stranger, partitions=[
                OC.OffsetCommitRequest.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
    assert [(t.topic_id, [(p.partition_index, p.error_code) for p in t.partitions]) for t in commit.topics] == [
        (tid, [(1, 0)]), (stranger, [(0, ErrorCode.UNKNOWN_TOPIC_ID)])]
    stale = c.request(8, 10, OC.OffsetCommitRequest(
        group_id="g10", generation_id_or_member_epoch=member.member_epoch + 1, member_id="m10", topics=[
            OC.OffsetCommitRequest.OffsetCommitRequestTopic(topic_id=tid, partitions=[
                OC.OffsetCommitRequest.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
    assert stale.topics[0].partitions[0].error_code == ErrorCode.STALE_MEMBER_EPOCH

    Group = OF.OffsetFetchRequest.OffsetFetchRequestGroup
    Topics = OF.OffsetFetchRequest.OffsetFetchRequestTopics
    fetched = c.request(9, 10, OF.OffsetFetchRequest(groups=[Group(
        group_id="g10", member_id="m10", member_epoch=member.member_epoch,
        topics=[Topics(topic_id=tid, partition_indexes=[0, 1]), Topics(topic_id=stranger, partition_indexes=[0])])]))
    [g] = fetched.groups
    assert g.error_code == 0
    assert [(t.topic_id, [(p.partition_index, p.committed_offset, p.metadata, p.error_code) for p in t.partitions])
            for t in g.topics] == [(tid, [(0, -1, "", 0), (1, 42, "v10", 0)]),
                                   (stranger, [(0, -1, "", ErrorCode.UNKNOWN_TOPIC_ID)])]
    everything = c.request(9, 10, OF.OffsetFetchRequest(groups=[Group(group_id="g10", topics=None)]))
    assert [(t.topic_id, [(p.partition_index, p.committed_offset) for p in t.partitions])
            for t in everything.groups[0].topics] == [(tid, [(1, 42)])]
    stale = c.request(9, 10, OF.OffsetFetchRequest(groups=[Group(
        group_id="g10", member_id="m10", member_epoch=member.member_epoch + 1, topics=None)]))
    assert stale.groups[0].error_code == ErrorCode.STALE_MEMBER_EPOCH
    # The same offsets by name at v9.
    v9 = c.request(9, 9, OF.OffsetFetchRequest(groups=[Group(group_id="g10", topics=None)]))
    assert [(t.name, [(p.partition_index, p.committed_offset) for p in t.partitions])
            for t in v9.groups[0].topics] == [("ids", [(1, 42)])]
    c.close()
