"""OffsetDelete (47): v0 (KIP-496). Deletes a group's committed offsets for partitions of topics the group
is not consuming (GROUP_SUBSCRIBED_TO_TOPIC otherwise); GROUP_ID_NOT_FOUND for an unknown group.
Authorisation, as KafkaApis: DELETE on the group (GROUP_AUTHORIZATION_FAILED) and READ on each topic
(TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import offset_delete as API

R = API.OffsetDeleteResponse


def handle(ctx, req: API.OffsetDeleteRequest) -> R:
    if not ctx.authorize(acl.DELETE, acl.GROUP, req.group_id):
        return R(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, throttle_time_ms=0, topics=[])
    allowed = ctx.authorized(acl.READ, acl.TOPIC, [t.name for t in req.topics])
    wanted = [(t.name, p.partition_index) for t in req.topics if t.name in allowed for p in t.partitions]
    res = ctx.broker.groups.delete_offsets(req.group_id, wanted)
    errors = dict(res.partition_errors or {})
    errors.update({(t.name, p.partition_index): ErrorCode.TOPIC_AUTHORIZATION_FAILED
                   for t in req.topics if t.name not in allowed for p in t.partitions})
    return R(error_code=res.error_code, throttle_time_ms=0, topics=[
        R.OffsetDeleteResponseTopic(name=t.name, partitions=[
            R.OffsetDeleteResponsePartition(partition_index=p.partition_index,
                                            error_code=errors.get((t.name, p.partition_index), 0))
            for p in t.partitions]) for t in req.topics])
