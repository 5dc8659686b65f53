"""What the five share coordinator APIs (83-87) have in common: brokers send them to the leader of the key's
``__share_group_state`` partition (share/persister.py); each partition of the request is answered by the shard
of its key here, NOT_COORDINATOR when another broker leads that partition, COORDINATOR_LOAD_IN_PROGRESS while it
loads, as Kafka's ShareCoordinatorService answers.
Authorisation, as KafkaApis: CLUSTER_ACTION on the cluster (CLUSTER_AUTHORIZATION_FAILED for every partition),
which brokers have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import ErrorCode, KafkaError
from ..security import acl


async def answer(ctx, req, R, result_type: str, apply: Callable[..., Awaitable[dict] | dict]):
    """The response ``R`` with one result per requested partition. ``apply(shard, key, partition)`` does the
    work for one partition and returns its result fields (awaitable or not); a KafkaError is its error."""
    allowed = ctx.authorize_cluster(acl.CLUSTER_ACTION)
    service = ctx.broker.share_coordinator
    Result = getattr(R, result_type)
    results = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            key = (req.group_id, t.topic_id, p.partition)
            fields = {}
            try:
                if not allowed:
                    raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                fields = apply(service.route(key), key, p)
                if isinstance(fields, Awaitable):
                    fields = await fields
                fields = {"error_code": 0, **fields}
            except KafkaError as e:
                fields = {"error_code": e.code, "error_message": e.message}
            except OSError as e:
                fields = {"error_code": ErrorCode.KAFKA_STORAGE_ERROR, "error_message": str(e)}
            parts.append(R.PartitionResult(partition=p.partition, **fields))
        results.append(Result(topic_id=t.topic_id, partitions=parts))
    return R(results=results)
