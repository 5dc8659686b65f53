"""JoinGroup (11): v0-9. v1 adds the rebalance timeout (v0 uses the session timeout for both), v4 requires a
known member id (MEMBER_ID_REQUIRED, KIP-394) unless the member is static, v5 static membership (KIP-345),
v7 the protocol type in the response, v8 a reason, v9 skip_assignment for a static leader that rejoins a
Stable group. The answer waits until the rebalance completes (see coordinator/group_metadata_manager.py).
Authorisation: READ on the group, else GROUP_AUTHORIZATION_FAILED (as KafkaApis).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import join_group as API

R = API.JoinGroupResponse


async def _answer(ctx, reply) -> R:
    res = await reply
    ctx.broker.changes.notify()
    return R(
        throttle_time_ms=0, error_code=res.error_code, generation_id=res.generation_id,
        protocol_type=res.protocol_type,
        protocol_name=res.protocol_name if (res.protocol_name is not None or ctx.version >= 7) else "",
        leader=res.leader or "", skip_assignment=res.skip_assignment, member_id=res.member_id or "",
        members=[R.JoinGroupResponseMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                           metadata=m.metadata) for m in res.members],
    )


def handle(ctx, req: API.JoinGroupRequest):
    v = ctx.version
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, generation_id=-1,
                 protocol_type=None, protocol_name=None if v >= 7 else "", leader="", member_id="", members=[])
    reply = ctx.broker.groups.join_group(
        req.group_id, req.member_id, req.group_instance_id, ctx.client_id or "", ctx.peer.rsplit(":", 1)[0],
        req.session_timeout_ms, req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
        req.protocol_type, [(p.name, p.metadata) for p in req.protocols],
        require_known_member_id=v >= 4 and req.group_instance_id is None, reason=req.reason,
        supports_skip_assignment=v >= 9,
    )
    ctx.broker.changes.notify()
    return _answer(ctx, reply)
