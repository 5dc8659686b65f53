"""AddOffsetsToTxn (25): v0-4. A producer adds a consumer group to its transaction before committing
offsets for it with TxnOffsetCommit (KIP-98). PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH before v2.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.messages import add_offsets_to_txn as API

VERSIONS = (0, 4)
R = API.AddOffsetsToTxnResponse


def handle(ctx, req: API.AddOffsetsToTxnRequest) -> R:
    err = ctx.broker.transactions.add_offsets(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id)
    if ctx.version < 2 and err == ErrorCode.PRODUCER_FENCED:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    return R(throttle_time_ms=0, error_code=err)
