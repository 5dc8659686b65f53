"""FindCoordinator (10): v0-6. kbroker is every group's coordinator, and every transactional id's once
transactions are served; v4+ batches keys. Key type 0 is a group, 1 a transactional id; share groups
(key type 2, KIP-932) are not served (INVALID_REQUEST, as a Kafka broker without a share coordinator).
Authorisation, as KafkaApis: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED). The coordinator is named by the address of the client's listener.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import find_coordinator as API

R = API.FindCoordinatorResponse
GROUP, TRANSACTION = 0, 1


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
    broker = ctx.broker
    node, (host, port) = broker.config.node_id, ctx.advertised  # the client's listener
    if ctx.version < 4:
        err, msg = _locate(ctx, req.key_type, req.key)
        if err:
            return R(error_code=err, error_message=msg, node_id=-1, host="", port=-1)
        return R(error_code=0, error_message=None, node_id=node, host=host, port=port)
    coordinators = []
    for key in req.coordinator_keys:
        err, msg = _locate(ctx, req.key_type, key)
        if err:
            coordinators.append(R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=err, error_message=msg))
        else:
            coordinators.append(R.Coordinator(key=key, node_id=node, host=host, port=port, error_code=0,
                                              error_message=None))
    return R(coordinators=coordinators)
