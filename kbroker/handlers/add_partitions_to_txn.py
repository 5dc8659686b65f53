"""AddPartitionsToTxn (24): v0-5. A producer adds partitions to its transaction before writing to them.
v0-3 carry one transaction (the clients' form); v4+ batch several (KIP-890's broker-to-broker form), where
``verify_only`` asks whether the partitions are already in the transaction (INVALID_TXN_STATE if not), and
without it the partitions are added for a transaction protocol v2 producer (coordinator/txn_partitions.py).
Fenced producers get PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH before v2.
Authorisation, as KafkaApis: v0-3 need WRITE on the transactional id (else every partition is
TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and WRITE on each topic (TOPIC_AUTHORIZATION_FAILED, the others
OPERATION_NOT_ATTEMPTED); v4+ come from brokers and need CLUSTER_ACTION (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..coordinator.transaction import TV2
from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import add_partitions_to_txn as API

R = API.AddPartitionsToTxnResponse


def _topic_results(errors: dict, version: int) -> list:
    by_topic: dict[str, list] = {}
    for (topic, partition), err in errors.items():
        if version < 2 and err == ErrorCode.PRODUCER_FENCED:
            err = ErrorCode.INVALID_PRODUCER_EPOCH
        by_topic.setdefault(topic, []).append(R.AddPartitionsToTxnPartitionResult(partition_index=partition,
                                                                                  partition_error_code=err))
    return [R.AddPartitionsToTxnTopicResult(name=t, results_by_partition=parts) for t, parts in by_topic.items()]


def handle(ctx, req: API.AddPartitionsToTxnRequest) -> R:
    txns = ctx.broker.transactions
    if ctx.version < 4:
        partitions = [(t.name, p) for t in req.v3_and_below_topics for p in t.partitions]
        denied = {t.name for t in req.v3_and_below_topics if not ctx.authorize(acl.WRITE, acl.TOPIC, t.name)}
        if not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.v3_and_below_transactional_id):
            errors = {tp: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED for tp in partitions}
        elif denied:
            errors = {tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp[0] in denied else ErrorCode.OPERATION_NOT_ATTEMPTED
                      for tp in partitions}
        else:
            errors = txns.add_partitions(req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
                                         req.v3_and_below_producer_epoch, partitions)
        return R(throttle_time_ms=0, results_by_topic_v3_and_below=_topic_results(errors, ctx.version))
    if not ctx.authorize_cluster(acl.CLUSTER_ACTION):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results_by_transaction=[])
    results = []
    for t in req.transactions:
        partitions = [(topic.name, p) for topic in t.topics for p in topic.partitions]
        if t.verify_only:
            txn = txns.describe(t.transactional_id)
            ok = (txn is not None and txn.producer_id == t.producer_id and txn.producer_epoch == t.producer_epoch
                  and txn.state == "Ongoing")
            errors = {tp: 0 if ok and tp in txn.partitions else ErrorCode.INVALID_TXN_STATE for tp in partitions}
        else:
            # From a partition leader for a v2 producer (Kafka's transactionVersionForAddPartitionsToTxn).
            errors = txns.add_partitions(t.transactional_id, t.producer_id, t.producer_epoch, partitions, TV2)
        results.append(R.AddPartitionsToTxnResult(transactional_id=t.transactional_id,
                                                  topic_results=_topic_results(errors, ctx.version)))
    return R(throttle_time_ms=0, error_code=0, results_by_transaction=results)
