"""DeleteGroups (42): v0-2. Deletes groups with no members and their committed offsets (a share group: its
ShareGroup* records, and the share-partition state is told through the ShareGroupListener);
NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for an unknown one.
Needs DELETE on each group (GROUP_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import delete_groups as API

R = API.DeleteGroupsResponse


def handle(ctx, req: API.DeleteGroupsRequest) -> R:
    allowed = ctx.authorized(acl.DELETE, acl.GROUP, req.groups_names)
    errors = ctx.broker.groups.delete_groups([g for g in req.groups_names if g in allowed])
    errors.update({g: ErrorCode.GROUP_AUTHORIZATION_FAILED for g in req.groups_names if g not in allowed})
    ctx.broker.changes.notify()
    return R(throttle_time_ms=0, results=[R.DeletableGroupResult(group_id=g, error_code=errors.get(g, 0))
                                          for g in req.groups_names])
