"""DeleteGroups (42): v0-3. Deletes groups with no members and their committed offsets (a share group: its
ShareGroup* records, and the share-partition state is told through the ShareGroupListener);
NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for an unknown one. v3 adds a per-group
``error_message``; Kafka 4.4 fills it only for a failure of the whole coordinator operation with a message of
its own (or a streams group's topology-description plugin, which kbroker has not), and leaves it null for the
outcomes above, so kbroker's are null.
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
