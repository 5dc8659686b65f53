"""ShareGroupHeartbeat (76): v1, share groups (KIP-932; v0 was Kafka 4.0's early access, removed in 4.1). A
member (its id made up by the client) joins with epoch 0 and its subscribed topic names, heartbeats at its epoch
and leaves with -1; the answer carries its epoch, the heartbeat interval and, when it joined, sent its
subscription or got a new one, its assignment (partitions may be shared with other members). RackId is kept and
described, not used by the assignor.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED); the subscribed topics need
DESCRIBE (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import share_group_heartbeat as API

R = API.ShareGroupHeartbeatResponse


def handle(ctx, req: API.ShareGroupHeartbeatRequest) -> R:
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if req.subscribed_topic_names and ctx.broker.authorizer is not None:
        allowed = ctx.authorized(acl.DESCRIBE, acl.TOPIC, req.subscribed_topic_names)
        denied = sorted(set(req.subscribed_topic_names) - allowed)
        if denied:
            return R(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                     error_message=f"Topic authorization failed for topics {denied}")
    res = ctx.broker.groups.share_group_heartbeat(
        req.group_id, req.member_id, req.member_epoch, req.rack_id, req.subscribed_topic_names,
        ctx.client_id or "", ctx.client_host)
    assignment = None
    if res.assignment is not None:
        assignment = R.Assignment(topic_partitions=[
            R.TopicPartitions(topic_id=t, partitions=sorted(ps)) for t, ps in res.assignment.items()])
    return R(throttle_time_ms=0, error_code=res.error_code, error_message=res.error_message,
             member_id=res.member_id, member_epoch=res.member_epoch,
             heartbeat_interval_ms=res.heartbeat_interval_ms, assignment=assignment)
