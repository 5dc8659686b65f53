"""InitProducerId (22): v0-5. Without a transactional id: a new producer id at epoch 0 for an idempotent
producer (KIP-98); a producer that sends its current id and epoch (v3+, KIP-360) also gets a fresh id, as
Kafka's broker gives one. Transaction timeouts above ``transaction.max.timeout.ms`` get
INVALID_TRANSACTION_TIMEOUT.

Transactional ids are not served yet: such a request gets INVALID_REQUEST with a message saying so, and the
transaction APIs are not advertised.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.messages import init_producer_id as API

VERSIONS = (0, 5)
R = API.InitProducerIdResponse


def handle(ctx, req: API.InitProducerIdRequest) -> R:
    broker = ctx.broker
    if req.transactional_id is not None:
        if not 0 < req.transaction_timeout_ms <= broker.config.transaction_max_timeout_ms:
            return R(error_code=ErrorCode.INVALID_TRANSACTION_TIMEOUT, producer_id=-1, producer_epoch=-1)
        return R(error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
    return R(error_code=0, producer_id=broker.producer_ids.next_id(), producer_epoch=0)
