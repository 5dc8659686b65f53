"""DeleteShareGroupOffsets (92): v0 (KIP-932): deletes the share state of every partition of the named topics
for a share group no member consumes (NON_EMPTY_GROUP otherwise, top level): tombstones in
``__share_group_state``, written before the answer; the next fetch starts the share-partitions where
``share.auto.offset.reset`` says. A topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION.
Authorisation, as KafkaApis: DELETE on the group (GROUP_AUTHORIZATION_FAILED, top level) and READ on each topic
(TOPIC_AUTHORIZATION_FAILED). A group coordinated elsewhere: NOT_COORDINATOR.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import delete_share_group_offsets as API

R = API.DeleteShareGroupOffsetsResponse


def handle(ctx, req: API.DeleteShareGroupOffsetsRequest):
    broker = ctx.broker
    code, message = 0, None
    if not ctx.authorize(acl.DELETE, acl.GROUP, req.group_id):
        code = ErrorCode.GROUP_AUTHORIZATION_FAILED
    elif not broker.groups.hosts(req.group_id):
        code = ErrorCode.NOT_COORDINATOR
    elif not broker.share_group_is_empty(req.group_id):
        code, message = ErrorCode.NON_EMPTY_GROUP, "the share group has members"
    if code:
        return R(throttle_time_ms=0, error_code=code, error_message=message, responses=[])
    return _delete(ctx, req)


async def _delete(ctx, req) -> R:
    broker = ctx.broker
    out = []
    for t in req.topics:
        topic = broker.topics.get(t.topic_name)
        code, message = 0, None
        if not ctx.authorize(acl.READ, acl.TOPIC, t.topic_name):
            code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif topic is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        else:
            keys = [(req.group_id, topic.topic_id, i) for i in range(len(topic.partitions))]
            try:
                await broker.share.delete_state(keys)
            except KafkaError as e:
                code, message = e.code, e.message
        out.append(R.DeleteShareGroupOffsetsResponseTopic(
            topic_name=t.topic_name, topic_id=topic.topic_id if topic is not None else API.ZERO_UUID,
            error_code=code, error_message=message))
    return R(throttle_time_ms=0, error_code=0, responses=out)
