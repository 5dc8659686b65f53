"""ListTransactions (66): v0-2 (KIP-664; v1 adds the duration filter, KIP-994; v2 a regular expression
on transactional ids, KIP-1152: INVALID_REGULAR_EXPRESSION when it does not compile). Filters by state and
producer id; state names we do not know are echoed in ``unknown_state_filters``.
Lists only the transactional ids the principal may DESCRIBE, as KafkaApis.
"""

from __future__ import annotations

import re

from ..coordinator.transaction import STATES
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import list_transactions as API

R = API.ListTransactionsResponse


def handle(ctx, req: API.ListTransactionsRequest) -> R:
    unknown = [s for s in req.state_filters if s not in STATES]
    txns = ctx.broker.transactions.list(req.state_filters or None, req.producer_id_filters or None,
                                        req.duration_filter if ctx.version >= 1 else -1)
    if ctx.version >= 2 and req.transactional_id_pattern is not None:
        try:
            pattern = re.compile(req.transactional_id_pattern)
        except re.error:
            return R(throttle_time_ms=0, error_code=ErrorCode.INVALID_REGULAR_EXPRESSION)
        txns = [t for t in txns if pattern.fullmatch(t.transactional_id)]
    txns = [t for t in txns if ctx.authorize(acl.DESCRIBE, acl.TRANSACTIONAL_ID, t.transactional_id,
                                             log_denied=False)]
    return R(throttle_time_ms=0, error_code=0, unknown_state_filters=unknown, transaction_states=[
        R.TransactionState(transactional_id=t.transactional_id, producer_id=t.producer_id,
                           transaction_state=t.state) for t in txns])
