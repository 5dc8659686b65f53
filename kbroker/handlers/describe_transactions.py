"""DescribeTransactions (65): v0 (KIP-664). State, timeout, start time, producer id and epoch and the
partitions of each transactional id; TRANSACTIONAL_ID_NOT_FOUND for an unknown one (its other fields at
their schema defaults, 0, as Kafka's).
Needs DESCRIBE on each transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); only topics the principal
may DESCRIBE are listed, as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_transactions as API

R = API.DescribeTransactionsResponse


def handle(ctx, req: API.DescribeTransactionsRequest) -> R:
    out = []
    for tid in req.transactional_ids:
        if not ctx.authorize(acl.DESCRIBE, acl.TRANSACTIONAL_ID, tid):
            out.append(R.TransactionState(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                          transactional_id=tid, transaction_state="", producer_id=0,
                                          producer_epoch=0))
            continue
        txn = ctx.broker.transactions.describe(tid)
        if txn is None:
            out.append(R.TransactionState(error_code=ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, transactional_id=tid,
                                          transaction_state="", producer_id=0, producer_epoch=0))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(txn.partitions):
            if not ctx.authorize(acl.DESCRIBE, acl.TOPIC, topic, log_denied=False):
                continue
            by_topic.setdefault(topic, []).append(partition)
        out.append(R.TransactionState(
            error_code=0, transactional_id=tid, transaction_state=txn.state, transaction_timeout_ms=txn.timeout_ms,
            transaction_start_time_ms=txn.start_ms, producer_id=txn.producer_id, producer_epoch=txn.producer_epoch,
            topics=[R.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()]))
    return R(throttle_time_ms=0, transaction_states=out)
