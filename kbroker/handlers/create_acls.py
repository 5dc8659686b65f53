"""CreateAcls (30): v1-3 (v1 adds pattern types, KIP-290; v2 is flexible). Each creation is validated as
Kafka's AclControlManager does (INVALID_REQUEST with its message: a concrete resource type, LITERAL or
PREFIXED, an operation, ALLOW or DENY, a non-empty name, ``kafka-cluster`` for the cluster, a ``Type:name``
principal) and persisted; creating an existing binding succeeds. Needs ALTER on the cluster
(CLUSTER_AUTHORIZATION_FAILED); without an authorizer, SECURITY_DISABLED.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import create_acls as API

R = API.CreateAclsResponse


def handle(ctx, req: API.CreateAclsRequest) -> R:
    if not ctx.authorize_cluster(acl.ALTER):
        return R(throttle_time_ms=0, results=[
            R.AclCreationResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                error_message="Cluster authorization failed.") for _ in req.creations])
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return R(throttle_time_ms=0, results=[
            R.AclCreationResult(error_code=ErrorCode.SECURITY_DISABLED, error_message="No Authorizer is configured.")
            for _ in req.creations])
    results = []
    for c in req.creations:
        binding = acl.AclBinding(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal, c.host,
                                 c.operation, c.permission_type)
        problem = binding.validate()
        if problem:
            results.append(R.AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=problem))
            continue
        authorizer.create(binding)
        results.append(R.AclCreationResult(error_code=0, error_message=""))  # Kafka's: empty, not null
    return R(throttle_time_ms=0, results=results)
