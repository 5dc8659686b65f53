"""AlterUserScramCredentials (51): v0 (KIP-554). Upserts and deletes users' SCRAM credentials, per user as
Kafka's ScramControlManager does: a user named twice is DUPLICATE_RESOURCE; an empty name or an iteration
count outside 4096-16384 UNACCEPTABLE_CREDENTIAL; an unknown mechanism UNSUPPORTED_SASL_MECHANISM; deleting
a credential that does not exist RESOURCE_NOT_FOUND. The client sends the salt and the salted password; the
broker keeps StoredKey and ServerKey (security/scram.py), durably. Needs ALTER on the cluster
(CLUSTER_AUTHORIZATION_FAILED). Connections already authenticated are not affected.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl, scram
from ..wire.messages import alter_user_scram_credentials as API

R = API.AlterUserScramCredentialsResponse


def _check(name: str, mechanism: int) -> tuple[int, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in scram.BY_TYPE:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


def handle(ctx, req: API.AlterUserScramCredentialsRequest) -> R:
    order = list(dict.fromkeys([d.name for d in req.deletions] + [u.name for u in req.upsertions]))
    if not ctx.authorize_cluster(acl.ALTER):
        return R(throttle_time_ms=0, results=[R.AlterUserScramCredentialsResult(
            user=u, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message="Cluster authorization failed.")
            for u in order])
    store = ctx.broker.credentials
    errors: dict[str, tuple[int, str]] = {}
    deletions, upsertions = {}, {}
    duplicate = (ErrorCode.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
    for d in req.deletions:
        if d.name in errors:
            continue
        if deletions.pop(d.name, None) is not None:
            errors[d.name] = duplicate
            continue
        problem = _check(d.name, d.mechanism)
        if problem is None and store.scram(scram.BY_TYPE[d.mechanism].name, d.name) is None:
            problem = (ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist")
        if problem:
            errors[d.name] = problem
        else:
            deletions[d.name] = d
    for u in req.upsertions:
        if u.name in errors:
            continue
        if deletions.pop(u.name, None) is not None or upsertions.pop(u.name, None) is not None:
            errors[u.name] = duplicate
            continue
        problem = _check(u.name, u.mechanism)
        if problem is None and u.iterations < scram.MIN_ITERATIONS:
            problem = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
        elif problem is None and u.iterations > scram.MAX_ITERATIONS:
            problem = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
        if problem:
            errors[u.name] = problem
        else:
            upsertions[u.name] = u
    for name, d in deletions.items():
        store.delete_scram(scram.BY_TYPE[d.mechanism].name, name)
    for name, u in upsertions.items():
        mech = scram.BY_TYPE[u.mechanism]
        store.set_scram(mech.name, name, scram.credential_from_salted_password(
            mech, bytes(u.salt), bytes(u.salted_password), u.iterations))
    results = []
    for name in order:
        code, message = errors.get(name, (0, None))
        results.append(R.AlterUserScramCredentialsResult(user=name, error_code=code, error_message=message))
    return R(throttle_time_ms=0, results=results)
