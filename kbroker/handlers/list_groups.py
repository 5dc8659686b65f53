"""ListGroups (16): v0-5. Every group with its protocol type; v4 adds its state and a state filter
(KIP-518), v5 its type ("classic", "consumer" or "share") and a type filter (KIP-848); a share group (KIP-932)
is listed with protocol type "share" and state Empty or Stable.
Authorisation, as KafkaApis: DESCRIBE on the cluster lists every group; otherwise only the groups the
principal may DESCRIBE are listed.
"""

from __future__ import annotations

from ..security import acl
from ..wire.messages import list_groups as API

R = API.ListGroupsResponse


def handle(ctx, req: API.ListGroupsRequest) -> R:
    res = ctx.broker.groups.list_groups(req.states_filter or None, req.types_filter or None)
    if not ctx.authorize_cluster(acl.DESCRIBE, log_denied=False):
        res.groups = [g for g in res.groups if ctx.authorize(acl.DESCRIBE, acl.GROUP, g.group_id, log_denied=False)]
    return R(throttle_time_ms=0, error_code=res.error_code, groups=[
        R.ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type or "", group_state=g.state,
                      group_type=g.group_type) for g in res.groups])
