"""DescribeUserScramCredentials (50): v0 (KIP-554). The SCRAM mechanisms and iteration counts of the users
asked for (all users for a null or empty list); never salts or keys. RESOURCE_NOT_FOUND for a user without
SCRAM credentials, DUPLICATE_RESOURCE for a user named twice, with Kafka's messages. Needs DESCRIBE on the
cluster (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl, scram
from ..wire.messages import describe_user_scram_credentials as API

R = API.DescribeUserScramCredentialsResponse


def handle(ctx, req: API.DescribeUserScramCredentialsRequest) -> R:
    asked = [u.name for u in req.users] if req.users else None
    if not ctx.authorize_cluster(acl.DESCRIBE):
        msg = "Cluster authorization failed."
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=msg,
                 results=[R.DescribeUserScramCredentialsResult(
                     user=u, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=msg, credential_infos=[])
                     for u in asked or []])
    users = ctx.broker.credentials.scram_users()
    results = []
    names = sorted(users) if asked is None else list(dict.fromkeys(asked))
    for name in names:
        if asked is not None and asked.count(name) > 1:
            results.append(R.DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.DUPLICATE_RESOURCE, credential_infos=[],
                error_message=f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}"))
        elif name not in users:
            results.append(R.DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.RESOURCE_NOT_FOUND, credential_infos=[],
                error_message=f"Attempt to describe a user credential that does not exist: {name}"))
        else:
            results.append(R.DescribeUserScramCredentialsResult(
                user=name, error_code=0, error_message="", credential_infos=[
                    R.CredentialInfo(mechanism=scram.MECHANISMS[m].type_code, iterations=i)
                    for m, i in sorted(users[name])]))
    return R(throttle_time_ms=0, error_code=0, error_message="", results=results)
