"""AlterPartitionReassignments (45): v0-1 (KIP-455), flexible from v0; v1 adds
``allow_replication_factor_change`` (KIP-860; the response echoes it).

Each partition's target replicas go to the controller (``Controller.alter_reassignments``, Kafka's
reassignment algorithm in ``controller.reassign``): the target's new replicas join as followers and catch
up; when the whole target is in the ISR the leaving replicas go, the leader moves if it is not in the
target, and the replicas become the target. Null replicas cancel (NO_REASSIGNMENT_IN_PROGRESS when none is
in progress). Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty, repeated
or unregistered brokers), INVALID_REPLICATION_FACTOR (v1, the option off and the count changed). Needs ALTER
on the cluster, else CLUSTER_AUTHORIZATION_FAILED at the top and for every partition (Kafka's
getErrorResponse). The answer comes once the reassignment is started, not finished, as Kafka's.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import alter_partition_reassignments as API

R = API.AlterPartitionReassignmentsResponse


async def handle(ctx, req: API.AlterPartitionReassignmentsRequest) -> R:
    allow = req.allow_replication_factor_change if ctx.version >= 1 else True
    if not ctx.authorize_cluster(acl.ALTER):
        code, message = ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."
        return R(throttle_time_ms=0, allow_replication_factor_change=allow, error_code=code, error_message=message,
                 responses=[R.ReassignableTopicResponse(name=t.name, partitions=[
                     R.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=code,
                                                     error_message=message) for p in t.partitions])
                     for t in req.topics])
    asked = [(t.name, [(p.partition_index, p.replicas) for p in t.partitions]) for t in req.topics]
    results = await ctx.broker.controller.alter_reassignments(asked, allow)
    return R(throttle_time_ms=0, allow_replication_factor_change=allow, error_code=0, error_message=None,
             responses=[R.ReassignableTopicResponse(name=name, partitions=[
                 R.ReassignablePartitionResponse(partition_index=index, error_code=code, error_message=message)
                 for index, code, message in parts]) for name, parts in results])
