"""DescribeShareGroupOffsets (90): v0-1 (KIP-932): each share-partition's start offset (SPSO) and leader epoch
as the share coordinator keeps them (asked with ReadShareGroupStateSummary when it is another broker); v1 adds
the lag (KIP-1226): records below the high watermark the group has not finished, i.e. from the start offset,
less those in flight already acknowledged or archived (-1 where this broker does not lead the partition). A
null topic list describes every share-partition of the group with state here or assigned to a member. A
partition without state answers start offset -1 (and lag -1), as Kafka's; a topic that does not exist
UNKNOWN_TOPIC_OR_PARTITION per partition.
Authorisation, as KafkaApis: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED for the group) and DESCRIBE on
each topic (topics not allowed are TOPIC_AUTHORIZATION_FAILED). A group coordinated elsewhere: NOT_COORDINATOR.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_share_group_offsets as API

R = API.DescribeShareGroupOffsetsResponse


async def handle(ctx, req: API.DescribeShareGroupOffsetsRequest) -> R:
    return R(throttle_time_ms=0, groups=[await _group(ctx, g) for g in req.groups])


async def _group(ctx, g):
    broker = ctx.broker
    if not ctx.authorize(acl.DESCRIBE, acl.GROUP, g.group_id):
        return R.DescribeShareGroupOffsetsResponseGroup(group_id=g.group_id, topics=[],
                                                        error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not broker.groups.hosts(g.group_id):
        return R.DescribeShareGroupOffsetsResponseGroup(group_id=g.group_id, topics=[],
                                                        error_code=ErrorCode.NOT_COORDINATOR)
    if g.topics is None:
        wanted: dict[str, list[int]] = {}
        keys = {(t, i) for _g, t, i in broker.share.group_keys(g.group_id)}
        for assigned in (broker.groups.share_group_assignment(g.group_id) or {}).values():
            keys.update((t, i) for t, parts in assigned.items() for i in parts)
        for topic_id, index in sorted(keys, key=lambda k: (str(k[0]), k[1])):
            topic = broker.topics.by_id.get(topic_id)
            if topic is not None:
                wanted.setdefault(topic.name, []).append(index)
    else:
        wanted = {t.topic_name: list(t.partitions) for t in g.topics}
    topics = []
    for name, indexes in wanted.items():
        topic = broker.topics.get(name)
        error = 0
        if not ctx.authorize(acl.DESCRIBE, acl.TOPIC, name):
            error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif topic is None:
            error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        parts = []
        for index in indexes:
            if error or not 0 <= index < len(topic.partitions):
                parts.append(R.DescribeShareGroupOffsetsResponsePartition(
                    partition_index=index, start_offset=-1, leader_epoch=-1, lag=-1,
                    error_code=error or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            p = topic.partitions[index]
            hw = p.high_watermark if p.is_leader else None
            start, epoch, lag = await broker.share.start_and_lag((g.group_id, topic.topic_id, index), hw)
            parts.append(R.DescribeShareGroupOffsetsResponsePartition(
                partition_index=index, start_offset=start, leader_epoch=epoch, lag=lag, error_code=0))
        topics.append(R.DescribeShareGroupOffsetsResponseTopic(
            topic_name=name, topic_id=topic.topic_id if topic is not None else API.ZERO_UUID, partitions=parts))
    return R.DescribeShareGroupOffsetsResponseGroup(group_id=g.group_id, topics=topics, error_code=0)
