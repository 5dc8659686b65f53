"""Heartbeat (12): v0-4. Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin. v3 adds
the group instance id (FENCED_INSTANCE_ID for a replaced static member).
Authorisation: READ on the group, else GROUP_AUTHORIZATION_FAILED (as KafkaApis).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import heartbeat as API

R = API.HeartbeatResponse


def handle(ctx, req: API.HeartbeatRequest) -> R:
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    err = ctx.broker.groups.heartbeat(req.group_id, req.generation_id, req.member_id, req.group_instance_id)
    return R(throttle_time_ms=0, error_code=err)
