"""OffsetDelete (47): v0 (KIP-496). Deletes a group's committed offsets for partitions of topics the group
is not consuming (GROUP_SUBSCRIBED_TO_TOPIC otherwise); GROUP_ID_NOT_FOUND for an unknown group.
Authorisation, as KafkaApis: DELETE on the group (GROUP_AUTHORIZATION_FAILED) and READ on each topic
(TOPIC_AUTHORIZATION_FAILED); a topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION, before the group
is looked at.
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
    topics = ctx.broker.topics
    refused = {}  # (topic, partition) -> the error found before the coordinator is asked, as KafkaApis
    for t in req.topics:
        code = ErrorCode.TOPIC_AUTHORIZATION_FAILED if t.name not in allowed else \
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if topics.get(t.name) is None else 0
        if code:
            refused.update({(t.name, p.partition_index): code for p in t.partitions})
    wanted = [(t.name, p.partition_index) for t in req.topics for p in t.partitions
              if (t.name, p.partition_index) not in refused]
    res = ctx.broker.groups.delete_offsets(req.group_id, wanted)
    errors = dict(res.partition_errors or {})
    errors.update(refused)
    # A group error (GROUP_ID_NOT_FOUND...) answers for the partitions the coordinator was asked about: only
    # those refused before are listed.
    shown = set(refused) if res.error_code else {(t.name, p.partition_index) for t in req.topics
                                                 for p in t.partitions}
    out = []
    for t in req.topics:
        parts = [R.OffsetDeleteResponsePartition(partition_index=p.partition_index,
                                                 error_code=errors.get((t.name, p.partition_index), 0))
                 for p in t.partitions if (t.name, p.partition_index) in shown]
        if parts:
            out.append(R.OffsetDeleteResponseTopic(name=t.name, partitions=parts))
    return R(error_code=res.error_code, throttle_time_ms=0, topics=out)
