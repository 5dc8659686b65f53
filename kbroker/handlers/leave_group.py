"""LeaveGroup (13): v0-5. One member up to v2, a batch of members (by id or group instance id) from v3
(KIP-345), a reason from v5. Before v3 the member's own error is the answer's error.
Authorisation: READ on the group, else GROUP_AUTHORIZATION_FAILED (as KafkaApis).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import leave_group as API

R = API.LeaveGroupResponse


def handle(ctx, req: API.LeaveGroupRequest) -> R:
    groups = ctx.broker.groups
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, members=[])
    if ctx.version < 3:
        res = groups.leave_group(req.group_id, [(req.member_id, None, None)])
        err = res.error_code or (res.members[0].error_code if res.members else 0)
        ctx.broker.changes.notify()
        return R(throttle_time_ms=0, error_code=err)
    res = groups.leave_group(req.group_id, [(m.member_id, m.group_instance_id, m.reason) for m in req.members])
    ctx.broker.changes.notify()
    return R(throttle_time_ms=0, error_code=res.error_code, members=[
        R.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id, error_code=m.error_code)
        for m in res.members])
