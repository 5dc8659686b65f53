"""AddOffsetsToTxn (25): v0-4. A producer adds a consumer group to its transaction before committing
offsets for it with TxnOffsetCommit (KIP-98). PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH before v2.
Authorisation, as KafkaApis: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then
READ on the group (GROUP_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import add_offsets_to_txn as API

R = API.AddOffsetsToTxnResponse


def handle(ctx, req: API.AddOffsetsToTxnRequest) -> R:
    if not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    err = ctx.broker.transactions.add_offsets(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id)
    if ctx.version < 2 and err == ErrorCode.PRODUCER_FENCED:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    return R(throttle_time_ms=0, error_code=err)
