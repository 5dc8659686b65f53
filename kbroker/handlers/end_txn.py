"""EndTxn (26): v0-4. Commits or aborts the producer's transaction: markers are written to every partition
in it and its transactional offsets are published or dropped before the answer. A retried EndTxn of a
finished transaction succeeds; the other outcome is INVALID_TXN_STATE. PRODUCER_FENCED, or
INVALID_PRODUCER_EPOCH before v2. v5 (KIP-890, transaction protocol v2) is not served.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.messages import end_txn as API

VERSIONS = (0, 4)
R = API.EndTxnResponse


def handle(ctx, req: API.EndTxnRequest) -> R:
    err = ctx.broker.transactions.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.committed)
    if ctx.version < 2 and err == ErrorCode.PRODUCER_FENCED:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    ctx.broker.changes.notify()
    return R(throttle_time_ms=0, error_code=err)
