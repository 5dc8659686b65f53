"""AlterShareGroupOffsets (91): v0 (KIP-932): sets the start offset of share-partitions of a share group no
member consumes (NON_EMPTY_GROUP otherwise, top level, every partition with it); each starts afresh there,
nothing in flight, and is written to the share coordinator before the answer. A topic or partition that does
not exist is UNKNOWN_TOPIC_OR_PARTITION for its partitions.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED, top level) and READ on each topic
(TOPIC_AUTHORIZATION_FAILED). A group coordinated elsewhere: NOT_COORDINATOR.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import alter_share_group_offsets as API

R = API.AlterShareGroupOffsetsResponse


def handle(ctx, req: API.AlterShareGroupOffsetsRequest):
    broker = ctx.broker
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return _all_failed(req, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not broker.groups.hosts(req.group_id):
        return _all_failed(req, ErrorCode.NOT_COORDINATOR)
    if not broker.share_group_is_empty(req.group_id):
        return _all_failed(req, ErrorCode.NON_EMPTY_GROUP, "the share group has members")
    return _alter(ctx, req)


def _all_failed(req, code: int, message: str | None = None) -> R:
    return R(throttle_time_ms=0, error_code=code, error_message=message, responses=[
        R.AlterShareGroupOffsetsResponseTopic(topic_name=t.topic_name, topic_id=API.ZERO_UUID, partitions=[
            R.AlterShareGroupOffsetsResponsePartition(partition_index=p.partition_index, error_code=code,
                                                      error_message=message) for p in t.partitions])
        for t in req.topics])


async def _alter(ctx, req) -> R:
    broker = ctx.broker
    out = []
    for t in req.topics:
        topic = broker.topics.get(t.topic_name)
        error = 0
        if not ctx.authorize(acl.READ, acl.TOPIC, t.topic_name):
            error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif topic is None:
            error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        parts = []
        for p in t.partitions:
            code, message = error, None
            if not code and not 0 <= p.partition_index < len(topic.partitions):
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if not code:
                try:
                    await broker.share.set_start_offset((req.group_id, topic.topic_id, p.partition_index),
                                                        p.start_offset)
                except KafkaError as e:
                    code, message = e.code, e.message
            parts.append(R.AlterShareGroupOffsetsResponsePartition(partition_index=p.partition_index,
                                                                   error_code=code, error_message=message))
        out.append(R.AlterShareGroupOffsetsResponseTopic(
            topic_name=t.topic_name, topic_id=topic.topic_id if topic is not None else API.ZERO_UUID,
            partitions=parts))
    return R(throttle_time_ms=0, error_code=0, responses=out)
