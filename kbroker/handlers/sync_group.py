"""SyncGroup (14): v0-5. The leader hands in every member's assignment; each member gets its own once the
leader's has arrived. v3 adds static membership, v5 the protocol type and name (checked when given).
Authorisation: READ on the group, else GROUP_AUTHORIZATION_FAILED (as KafkaApis).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import sync_group as API

R = API.SyncGroupResponse


async def _answer(ctx, reply) -> R:
    res = await reply
    ctx.broker.changes.notify()
    return R(throttle_time_ms=0, error_code=res.error_code, protocol_type=res.protocol_type,
             protocol_name=res.protocol_name, assignment=res.assignment or b"")


def handle(ctx, req: API.SyncGroupRequest):
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, assignment=b"")
    reply = ctx.broker.groups.sync_group(
        req.group_id, req.generation_id, req.member_id, req.group_instance_id, req.protocol_type,
        req.protocol_name, {a.member_id: bytes(a.assignment) for a in req.assignments},
    )
    ctx.broker.changes.notify()
    return _answer(ctx, reply)
