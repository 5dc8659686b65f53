"""InitProducerId (22): v0-5. Without a transactional id: a new producer id at epoch 0 for an idempotent
producer (KIP-98); a producer that sends its current id and epoch (v3+, KIP-360) also gets a fresh id, as
Kafka's broker gives one. With a transactional id: the transaction coordinator's id and a bumped epoch,
which fences the previous producer (see coordinator/transaction.py). PRODUCER_FENCED is answered as
INVALID_PRODUCER_EPOCH before v4; a timeout above ``transaction.max.timeout.ms`` is INVALID_TRANSACTION_TIMEOUT.
Authorisation, as KafkaApis: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without
one, IDEMPOTENT_WRITE on the cluster or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..coordinator.service import when_written
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import init_producer_id as API

R = API.InitProducerIdResponse


def handle(ctx, req: API.InitProducerIdRequest) -> R:
    broker = ctx.broker
    if req.transactional_id is not None and not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
        return R(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1)
    if req.transactional_id is None and not ctx.authorize_cluster(acl.IDEMPOTENT_WRITE, log_denied=False) \
            and not ctx.authorize_by_resource_type(acl.WRITE, acl.TOPIC):
        return R(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1)
    if not broker.producer_ids.ready(2):  # a new producer id may be needed: a block from the controller first
        return _after_reserve(ctx, req)
    if req.transactional_id is None:
        return R(error_code=0, producer_id=broker.producer_ids.next_id(), producer_epoch=0)
    res = broker.transactions.init_producer_id(req.transactional_id, req.transaction_timeout_ms,
                                               req.producer_id, req.producer_epoch)
    err = res.error_code
    if err == ErrorCode.PRODUCER_FENCED and ctx.version < 4:
        err = ErrorCode.INVALID_PRODUCER_EPOCH
    ctx.broker.changes.notify()
    return when_written(broker.transactions.written(req.transactional_id),
                        R(error_code=err, producer_id=res.producer_id, producer_epoch=res.producer_epoch))


async def _after_reserve(ctx, req: API.InitProducerIdRequest):
    await ctx.broker.producer_ids.reserve(2)
    response = handle(ctx, req)
    return (await response) if not isinstance(response, R) else response
