"""ElectLeaders (43): v0-2. v0 elects preferred replicas only; v1 adds ``election_type`` (KIP-460:
0 PREFERRED, 1 UNCLEAN) and a top-level error code; v2 is flexible.

The controller elects (``Controller.elect_leaders``, the rules in ``controller.elect``): per partition
ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE or
UNKNOWN_TOPIC_OR_PARTITION with Kafka's messages; null ``topic_partitions`` asks for every partition and leaves
out those that needed no election. An election type other than 0 and 1 is INVALID_REQUEST for the whole
request. Needs ALTER on the cluster (Kafka's ControllerApis), else CLUSTER_AUTHORIZATION_FAILED at the top
and for every partition named (Kafka's ElectLeadersRequest.getErrorResponse). ``timeout_ms`` is not waited
on: the election is written before the answer, as the new leaders learn of it.
"""

from __future__ import annotations

from ..controller import PREFERRED_ELECTION, UNCLEAN_ELECTION
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import elect_leaders as API

R = API.ElectLeadersResponse


def _error_response(req: API.ElectLeadersRequest, code: int, message: str | None) -> R:
    return R(throttle_time_ms=0, error_code=code, replica_election_results=[
        R.ReplicaElectionResult(topic=t.topic, partition_result=[
            R.PartitionResult(partition_id=p, error_code=code, error_message=message) for p in t.partitions])
        for t in req.topic_partitions or ()])


async def handle(ctx, req: API.ElectLeadersRequest) -> R:
    if not ctx.authorize_cluster(acl.ALTER):
        return _error_response(req, ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    election_type = req.election_type if ctx.version >= 1 else PREFERRED_ELECTION
    if election_type not in (PREFERRED_ELECTION, UNCLEAN_ELECTION):
        return _error_response(req, ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}")
    asked = None if req.topic_partitions is None else \
        [(t.topic, list(t.partitions)) for t in req.topic_partitions]
    results = await ctx.broker.controller.elect_leaders(election_type, asked)
    return R(throttle_time_ms=0, error_code=0, replica_election_results=[
        R.ReplicaElectionResult(topic=name, partition_result=[
            R.PartitionResult(partition_id=index, error_code=code, error_message=message)
            for index, code, message in parts])
        for name, parts in results])
