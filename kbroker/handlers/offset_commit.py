"""OffsetCommit (8): v2-9. Offsets with metadata (and from v6 the leader epoch) for a group member's
generation, or standalone (generation -1, empty member id) for a group with no members. v2-4 carry a
retention time, ignored since Kafka 2.1 (offsets.retention.minutes applies). Unknown topics or partitions
get UNKNOWN_TOPIC_OR_PARTITION. Acknowledged commits are replicated records of
__consumer_offsets (coordinator/offsets_topic.py): the answer waits for that. A member of a
consumer-protocol group (KIP-848) commits with v9+ at its member epoch (else STALE_MEMBER_EPOCH; below v9,
UNSUPPORTED_VERSION, as Kafka). v10 names topics by id (KIP-848): an unknown id gets UNKNOWN_TOPIC_ID.
Authorisation, as KafkaApis: READ on the group (else every partition is GROUP_AUTHORIZATION_FAILED) and
READ on each topic (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..coordinator.service import when_written
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import offset_commit as API

R = API.OffsetCommitResponse


def resolve_topic_ids(broker, topics) -> set[int]:
    """v10 (and TxnOffsetCommit v6): each topic's name from its id, set on the request's topic; returns the
    indexes of unknown ids."""
    unknown = set()
    for i, t in enumerate(topics):
        topic = broker.topics.by_id.get(t.topic_id)
        if topic is None:
            unknown.add(i)
        else:
            t.name = topic.name
    return unknown


def handle(ctx, req: API.OffsetCommitRequest) -> R:
    broker = ctx.broker
    unknown_ids = resolve_topic_ids(broker, req.topics) if ctx.version >= 10 else set()
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, topics=[R.OffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=[
            R.OffsetCommitResponsePartition(partition_index=p.partition_index,
                                            error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
            for p in t.partitions]) for t in req.topics])
    offsets = {}
    unknown = set()
    known = [t for i, t in enumerate(req.topics) if i not in unknown_ids]
    unauthorized = {t.name for t in known if not ctx.authorize(acl.READ, acl.TOPIC, t.name)}
    for t in known:
        topic = broker.topics.get(t.name)
        for p in t.partitions:
            if t.name in unauthorized:
                continue
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                unknown.add((t.name, p.partition_index))
            else:
                offsets[(t.name, p.partition_index)] = (p.committed_offset, p.committed_leader_epoch,
                                                        p.committed_metadata)
    errors = broker.groups.commit_offsets(req.group_id, req.generation_id_or_member_epoch, req.member_id,
                                          req.group_instance_id, offsets, api_version=ctx.version) if offsets else {}
    if not offsets and unknown:
        errors = {}
    topics = []
    for i, t in enumerate(req.topics):
        topics.append(R.OffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=[
            R.OffsetCommitResponsePartition(
                partition_index=p.partition_index,
                error_code=ErrorCode.UNKNOWN_TOPIC_ID if i in unknown_ids
                else ErrorCode.TOPIC_AUTHORIZATION_FAILED if t.name in unauthorized
                else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if (t.name, p.partition_index) in unknown
                else errors.get((t.name, p.partition_index), 0))
            for p in t.partitions]))
    return when_written(broker.groups.written(req.group_id), R(throttle_time_ms=0, topics=topics))
