"""EndTxn (26): v0-5. Commits or aborts the producer's transaction: markers are written to every partition
in it and its transactional offsets are published or dropped before the answer. A retried EndTxn of a
finished transaction succeeds; the other outcome is INVALID_TXN_STATE. PRODUCER_FENCED, or
INVALID_PRODUCER_EPOCH before v2. v5 is transaction protocol v2 (KIP-890 part 2; Kafka's
TransactionVersion.transactionVersionForEndTxn: a client sends it only while ``transaction.version`` 2 is
finalized): the end bumps the producer epoch, and the answer names the producer id and epoch of the next
transaction (before v5 the current ones, which do not change).
Needs WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..coordinator.service import when_written
from ..coordinator.transaction import TV2
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import end_txn as API

R = API.EndTxnResponse


def handle(ctx, req: API.EndTxnRequest) -> R:
    if not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
        return R(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producer_id=-1,
                 producer_epoch=-1)
    if not ctx.broker.producer_ids.ready(1):  # an exhausted epoch moves to a new producer id: a block first
        return _after_reserve(ctx, req)
    result = ctx.broker.transactions.end_txn(req.transactional_id, req.producer_id, req.producer_epoch,
                                             req.committed, TV2 if ctx.version >= 5 else 0)
    err = result.error_code
    if ctx.version < 2 and err == ErrorCode.PRODUCER_FENCED:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    ctx.broker.changes.notify()
    if err:
        return R(throttle_time_ms=0, error_code=err, producer_id=-1, producer_epoch=-1)
    return when_written(ctx.broker.transactions.written(req.transactional_id), R(
        throttle_time_ms=0, error_code=err, producer_id=result.producer_id, producer_epoch=result.producer_epoch))


async def _after_reserve(ctx, req: API.EndTxnRequest):
    await ctx.broker.producer_ids.reserve(1)
    response = handle(ctx, req)
    return (await response) if not isinstance(response, R) else response
