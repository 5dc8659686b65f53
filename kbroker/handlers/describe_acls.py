"""DescribeAcls (29): v1-3 (v1 adds pattern types, KIP-290; v2 is flexible). The ACL bindings matching the
filter, grouped by resource pattern. Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED); without
an authorizer, SECURITY_DISABLED, as Kafka answers. A filter with UNKNOWN values is INVALID_REQUEST.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_acls as API

R = API.DescribeAclsResponse


def handle(ctx, req: API.DescribeAclsRequest) -> R:
    if not ctx.authorize_cluster(acl.DESCRIBE):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                 error_message="Cluster authorization failed.", resources=[])
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return R(throttle_time_ms=0, error_code=ErrorCode.SECURITY_DISABLED,
                 error_message="No Authorizer is configured on the broker", resources=[])
    flt = acl.AclFilter(req.resource_type_filter, req.resource_name_filter, req.pattern_type_filter,
                        req.principal_filter, req.host_filter, req.operation, req.permission_type)
    problem = flt.validate()
    if problem:
        return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, error_message=problem, resources=[])
    resources: dict[tuple, list] = {}
    for b in authorizer.describe(flt):
        resources.setdefault((b.resource_type, b.resource_name, b.pattern_type), []).append(
            R.AclDescription(principal=b.principal, host=b.host, operation=b.operation, permission_type=b.permission))
    return R(throttle_time_ms=0, error_code=0, error_message="", resources=[  # Kafka's: empty, not null
        R.DescribeAclsResource(resource_type=t, resource_name=n, pattern_type=p, acls=acls)
        for (t, n, p), acls in resources.items()])
