"""FindCoordinator (10): v0-6. One broker of the cluster hosts every group's and transactional id's
coordinator (``Controller.coordinator_id``: the first broker that registered; placing them by partitions of
the internal topics comes with replication); COORDINATOR_NOT_AVAILABLE while it is down. v4+ batches keys. Key type 0 is a group, 1 a transactional id; share groups
(key type 2, KIP-932) are not served (INVALID_REQUEST, as a Kafka broker without a share coordinator).
Authorisation, as KafkaApis: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED). The coordinator is named by its listener of the client's listener name.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import find_coordinator as API

R = API.FindCoordinatorResponse
GROUP, TRANSACTION = 0, 1


def _coordinator(ctx) -> tuple[int, str | None, int, str, int]:
    """(error, message, node, host, port) of the broker hosting the coordinators, by the client's listener."""
    node = ctx.broker.controller.coordinator_id()
    endpoint = ctx.endpoint(node) if node >= 0 else None
    if endpoint is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.", -1, "", -1
    return 0, None, node, endpoint[0], endpoint[1]


def _locate(ctx, key_type: int, key: str) -> tuple[int, str | None]:
    broker = ctx.broker
    if key_type == GROUP and not ctx.authorize(acl.DESCRIBE, acl.GROUP, key):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, None
    if key_type == TRANSACTION and not ctx.authorize(acl.DESCRIBE, acl.TRANSACTIONAL_ID, key):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None
    if key_type == GROUP:
        return 0, None
    if key_type == TRANSACTION:
        if broker.transactions_enabled:
            return 0, None
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "Transactions are not served by this broker yet"
    return ErrorCode.INVALID_REQUEST, f"Unsupported key type {key_type}"


def handle(ctx, req: API.FindCoordinatorRequest) -> R:
    where = _coordinator(ctx)
    node, host, port = where[2:]
    if ctx.version < 4:
        err, msg = _locate(ctx, req.key_type, req.key)
        if not err:
            err, msg = where[:2]
        if err:
            return R(error_code=err, error_message=msg, node_id=-1, host="", port=-1)
        return R(error_code=0, error_message=None, node_id=node, host=host, port=port)
    coordinators = []
    for key in req.coordinator_keys:
        err, msg = _locate(ctx, req.key_type, key)
        if not err:
            err, msg = where[:2]
        if err:
            coordinators.append(R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=err, error_message=msg))
        else:
            coordinators.append(R.Coordinator(key=key, node_id=node, host=host, port=port, error_code=0,
                                              error_message=None))
    return R(coordinators=coordinators)
