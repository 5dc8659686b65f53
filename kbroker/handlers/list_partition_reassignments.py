"""ListPartitionReassignments (46): v0 (KIP-455), flexible.

The partitions asked (null topics: every partition) that are being reassigned, each with its replicas (the
target followed by the replicas leaving), ``adding_replicas`` and ``removing_replicas``; partitions not being
reassigned, and unknown topics or partitions, are left out, as Kafka's controller leaves them. Needs DESCRIBE
on the cluster, else CLUSTER_AUTHORIZATION_FAILED at the top, each topic named listed with its partition
indexes only (Kafka's getErrorResponse).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import list_partition_reassignments as API

R = API.ListPartitionReassignmentsResponse


def handle(ctx, req: API.ListPartitionReassignmentsRequest) -> R:
    if not ctx.authorize_cluster(acl.DESCRIBE):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                 error_message="Cluster authorization failed.", topics=[
                     R.OngoingTopicReassignment(name=t.name, partitions=[
                         R.OngoingPartitionReassignment(partition_index=i) for i in t.partition_indexes])
                     for t in req.topics or ()])
    asked = None if req.topics is None else [(t.name, list(t.partition_indexes)) for t in req.topics]
    found = ctx.broker.controller.reassignments(asked)
    return R(throttle_time_ms=0, error_code=0, error_message=None, topics=[
        R.OngoingTopicReassignment(name=name, partitions=[
            R.OngoingPartitionReassignment(partition_index=index, replicas=list(p.replicas),
                                           adding_replicas=list(p.adding), removing_replicas=list(p.removing))
            for index, p in parts]) for name, parts in found])
