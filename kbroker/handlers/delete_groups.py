"""DeleteGroups (42): v0-2. Deletes groups with no members and their committed offsets;
NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for an unknown one.
"""

from __future__ import annotations

from ..wire.messages import delete_groups as API

VERSIONS = (0, 2)
R = API.DeleteGroupsResponse


def handle(ctx, req: API.DeleteGroupsRequest) -> R:
    errors = ctx.broker.groups.delete_groups(list(req.groups_names))
    ctx.broker.changes.notify()
    return R(throttle_time_ms=0, results=[R.DeletableGroupResult(group_id=g, error_code=errors.get(g, 0))
                                          for g in req.groups_names])
