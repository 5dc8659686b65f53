"""DeleteAcls (31): v1-3 (v1 adds pattern types, KIP-290; v2 is flexible). Each filter deletes the bindings
it matches and lists them (a binding matched by an earlier filter is listed there only). A filter with
UNKNOWN values is INVALID_REQUEST. Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED); without an
authorizer, SECURITY_DISABLED.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import delete_acls as API

R = API.DeleteAclsResponse


def handle(ctx, req: API.DeleteAclsRequest) -> R:
    if not ctx.authorize_cluster(acl.ALTER):
        return R(throttle_time_ms=0, filter_results=[
            R.DeleteAclsFilterResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                     error_message="Cluster authorization failed.", matching_acls=[])
            for _ in req.filters])
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return R(throttle_time_ms=0, filter_results=[
            R.DeleteAclsFilterResult(error_code=ErrorCode.SECURITY_DISABLED,
                                     error_message="No Authorizer is configured.", matching_acls=[])
            for _ in req.filters])
    results = []
    for f in req.filters:
        flt = acl.AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter,
                            f.principal_filter, f.host_filter, f.operation, f.permission_type)
        problem = flt.validate()
        if problem:
            results.append(R.DeleteAclsFilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=problem,
                                                    matching_acls=[]))
            continue
        deleted = authorizer.delete(flt)
        results.append(R.DeleteAclsFilterResult(error_code=0, error_message=None, matching_acls=[
            R.DeleteAclsMatchingAcl(error_code=0, error_message=None, resource_type=b.resource_type,
                                    resource_name=b.resource_name, pattern_type=b.pattern_type,
                                    principal=b.principal, host=b.host, operation=b.operation,
                                    permission_type=b.permission) for b in deleted]))
    return R(throttle_time_ms=0, filter_results=results)
