"""ShareGroupHeartbeat (76): v1, share groups (KIP-932; v0 was Kafka 4.0's early access, removed in 4.1). A
member (its id made up by the client) joins with epoch 0 and its subscribed topic names, heartbeats at its epoch
and leaves with -1; the answer carries its epoch, the heartbeat interval and, when it joined, sent its
subscription or got a new one, its assignment (partitions may be shared with other members). RackId is kept and
described, not used by the assignor.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED); the subscribed topics need
DESCRIBE (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..wire.messages import share_group_heartbeat as API
from .consumer_group_heartbeat import refused, response

R = API.ShareGroupHeartbeatResponse


def handle(ctx, req: API.ShareGroupHeartbeatRequest) -> R:
    denied = refused(ctx, R, req.group_id, req.subscribed_topic_names)
    if denied is not None:
        return denied
    res = ctx.broker.groups.share_group_heartbeat(
        req.group_id, req.member_id, req.member_epoch, req.rack_id, req.subscribed_topic_names,
        ctx.client_id or "", ctx.client_host)
    return response(R, res)
