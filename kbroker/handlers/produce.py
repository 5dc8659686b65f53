"""Produce (0): v3-13 served; v0-2 advertised (librdkafka <= 2.11.0 turns compression off unless the range
starts at 0, KAFKA-18659) and answered UNSUPPORTED_VERSION per partition, as Kafka 4 does (KIP-896).

Each partition's records are validated and appended as the producer sent them (see log/unified_log.py). acks=0
gets no response at all; acks=1 is answered once the leader's write is done. acks=-1 (all) is refused
NOT_ENOUGH_REPLICAS before the append while the ISR is smaller than ``min.insync.replicas``; after the append
it is answered once the high watermark passes the batch (Kafka's DelayedProduce: every ISR member has it),
NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below ``min.insync.replicas`` meanwhile,
NOT_LEADER_OR_FOLLOWER if leadership moved, REQUEST_TIMED_OUT after the request's ``timeout_ms``. When the
leader is the whole ISR (one broker) the high watermark is already past the batch and the answer is
immediate, with no waiting machinery. The wait is returned as ``AwaitingReplication``: the records are
written, so the connection may handle the client's next Produce meanwhile (server.py). A topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION, whatever its
name and whatever ``auto.create.topics.enable`` says: as in Kafka (KafkaApis.handleProduceRequest), only
Metadata auto-creates, and a client asks Metadata before it produces. v12 is transaction protocol v2
(KIP-890 part 2): a transactional batch to a partition that is not in the producer's transaction yet has
this broker add it through the transaction coordinator before the append (coordinator/txn_partitions.py;
Kafka's ``addPartition`` operation), and the coordinator's refusal is the partition's error (retriable ones
as NOT_ENOUGH_REPLICAS, as Kafka); v11 and below append as sent. v13 names topics by id (KIP-516): an
unknown id is UNKNOWN_TOPIC_ID, and ids are never auto-created.

A batch refused for some of its records (keyless records on a compacted topic) names each of them in
``record_errors`` (v8+, KIP-467: the record's index in its batch and why) with Kafka's summary as the
partition's ``error_message`` and the partition's log start offset, as Kafka's RecordValidationException
answer; errors about the batch as a whole (MESSAGE_TOO_LARGE, CORRUPT_MESSAGE, a producer's sequence or
epoch) name no record and, as Kafka's (hasCustomErrorMessage false), carry no error_message.

Authorisation, as KafkaApis: transactional batches need WRITE on the transactional id (else every partition
is TRANSACTIONAL_ID_AUTHORIZATION_FAILED); each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED), checked before
whether it exists.
The internal topics (``__consumer_offsets``, ``__transaction_state``) take no producer's records:
INVALID_TOPIC_EXCEPTION, unless the client id is Kafka's admin tools' ``__admin_client``, as Kafka.
A batch to ``_schemas`` whose first record carries ``kbroker.expected.offset`` is appended only if the log ends
there (INVALID_RECORD otherwise): the Schema Registries' compare-and-set (schema_registry/conditional.py).
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import ErrorCode, KafkaError, LogAppendError, RecordValidationError
from ..partition import get_partition_or_error
from .leader_hints import LeaderHints
from .context import AwaitingReplication
from ..coordinator.txn_partitions import produce_error
from ..records.batch import ATTRIBUTES_OFFSET, TRANSACTIONAL_MASK, read_header
from ..schema_registry.conditional import SCHEMAS_TOPIC, check_expected_offset
from ..schema_registry.wire_format import validate_batches
from ..security import acl
from ..wire.messages import produce as API

R = API.ProduceResponse
log = logging.getLogger("kbroker.produce")


# Errors Kafka finds before the log is asked (ProduceRequest.validateRecords) or that it answers with
# LogAppendInfo.UNKNOWN_LOG_APPEND_INFO: log_start_offset -1. Any other append error (a producer's sequence
# or epoch, a transaction's state) carries the partition's log start offset.
REQUEST_ERRORS = frozenset({ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.CORRUPT_MESSAGE,
                            ErrorCode.INVALID_RECORD, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                            ErrorCode.KAFKA_STORAGE_ERROR})
# Kafka lets only its own admin tools append to internal topics (AdminUtils.ADMIN_CLIENT_ID).
ADMIN_CLIENT_ID = "__admin_client"


def _partition_error(index: int, code: int, message: str | None = None) -> R.PartitionProduceResponse:
    return R.PartitionProduceResponse(index=index, error_code=code, base_offset=-1, log_append_time_ms=-1,
                                      log_start_offset=-1, error_message=message)


def _has_transactional_records(req) -> bool:
    """RequestUtils.hasTransactionalRecords: the first batch of any partition is transactional."""
    return any(_is_transactional(pd.records) for td in req.topic_data for pd in td.partition_data)


def _is_transactional(records) -> bool:
    return records is not None and len(records) > ATTRIBUTES_OFFSET + 1 and bool(
        records[ATTRIBUTES_OFFSET + 1] & TRANSACTIONAL_MASK)


def _partitions_to_add(ctx, req) -> tuple[list[tuple[str, int]], int, int]:
    """Transaction v2: the partitions of this broker whose transactional batch opens the producer's
    transaction there (none of its batches at that epoch is written yet), with the producer id and epoch."""
    broker = ctx.broker
    out, pid, epoch = [], -1, -1
    for td in req.topic_data:
        topic = broker.topics.by_id.get(td.topic_id) if ctx.version >= 13 else broker.topics.get(td.name)
        if topic is None or topic.is_internal or not ctx.authorize(acl.WRITE, acl.TOPIC, topic.name):
            continue  # answered with their own error below
        for pd in td.partition_data:
            if not _is_transactional(pd.records):
                continue
            partition = get_partition_or_error(topic, pd.index)
            if isinstance(partition, int):
                continue
            header = read_header(pd.records)
            pid, epoch = header.producer_id, header.producer_epoch
            if not partition.log.producer_state.in_transaction(pid, epoch):
                out.append((topic.name, pd.index))
    return out, pid, epoch


def handle(ctx, req: API.ProduceRequest) -> R | None:
    if ctx.version >= 12 and req.transactional_id is not None and _has_transactional_records(req):
        if ctx.broker.authorizer is None or ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id):
            partitions, pid, epoch = _partitions_to_add(ctx, req)
            if partitions:
                added = ctx.broker.txn_partitions.add(req.transactional_id, pid, epoch, partitions)
                if isinstance(added, dict):
                    return _append(ctx, req, added)
                return _append_when_added(ctx, req, added)
    return _append(ctx, req, {})


async def _append_when_added(ctx, req, added):
    response = _append(ctx, req, await added)
    return (await response) if isinstance(response, AwaitingReplication) else response


def _append(ctx, req: API.ProduceRequest, added: dict[tuple[str, int], int]) -> R | None:
    """The request's appends; ``added``: the coordinator's answer for the partitions transaction v2 added
    (an error there is the partition's answer)."""
    broker = ctx.broker
    # producer_byte_rate (client_quotas.py): the request's bytes are recorded whatever its outcome, as Kafka's
    # handleProduceRequest records request.sizeInBytes; the throttle time goes into the answer (server.py).
    if broker.client_quotas.enabled:
        ctx.throttle(broker.client_quotas.produce.record_and_get_throttle_ms(ctx.quota_user, ctx.client_id or "",
                                                                             ctx.request_bytes))
    responses = []
    waiting = []  # acks=-1: (partition response, partition, offset the high watermark must reach)
    hints = LeaderHints(ctx, R)
    by_id = ctx.version >= 13
    if broker.authorizer is not None and _has_transactional_records(req) and (
            req.transactional_id is None or not ctx.authorize(acl.WRITE, acl.TRANSACTIONAL_ID, req.transactional_id)):
        if req.acks == 0:
            return None
        return R(throttle_time_ms=0, responses=[R.TopicProduceResponse(
            name=td.name, topic_id=td.topic_id, partition_responses=[
                _partition_error(p.index, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for p in td.partition_data])
            for td in req.topic_data])
    for td in req.topic_data:
        parts = []
        responses.append(R.TopicProduceResponse(name=td.name, topic_id=td.topic_id, partition_responses=parts))
        if ctx.version < 3:
            parts.extend(_partition_error(p.index, ErrorCode.UNSUPPORTED_VERSION) for p in td.partition_data)
            continue
        if by_id:
            topic = broker.topics.by_id.get(td.topic_id)
            if topic is None:
                parts.extend(_partition_error(p.index, ErrorCode.UNKNOWN_TOPIC_ID) for p in td.partition_data)
                continue
        else:
            topic = broker.topics.get(td.name)
        if not ctx.authorize(acl.WRITE, acl.TOPIC, topic.name if topic is not None else td.name):
            parts.extend(_partition_error(p.index, ErrorCode.TOPIC_AUTHORIZATION_FAILED) for p in td.partition_data)
            continue
        if topic is None:  # Kafka 4 creates topics only from Metadata (a client asks it first)
            parts.extend(_partition_error(p.index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) for p in td.partition_data)
            continue
        if topic.is_internal and ctx.client_id != ADMIN_CLIENT_ID:
            # The coordinators own their topics' records (Kafka's ReplicaManager.appendToLocalLog).
            parts.extend(_partition_error(p.index, ErrorCode.INVALID_TOPIC_EXCEPTION,
                                          f"Cannot append to internal topic {topic.name}") for p in td.partition_data)
            continue
        for pd in td.partition_data:
            partition = get_partition_or_error(topic, pd.index)
            if isinstance(partition, int):
                part = _partition_error(pd.index, partition)
                part.current_leader = hints.current_leader(topic, pd.index, partition)
                parts.append(part)
                continue
            if added.get((topic.name, pd.index)):
                parts.append(_partition_error(pd.index, *produce_error(added[(topic.name, pd.index)])))
                continue
            try:
                settings = topic.produce_settings()
                if settings.schema_validation:
                    validate_batches(broker.schema_registry, topic, pd.records)  # no registered id: INVALID_RECORD
                if topic.name == SCHEMAS_TOPIC:  # a registry's write on condition of the log end (conditional.py)
                    check_expected_offset(partition, pd.records)
                base_offset, append_time = partition.append(pd.records, settings.max_message_bytes,
                                                            settings.log_append_time, produce_version=ctx.version,
                                                            required_acks=req.acks)
            except RecordValidationError as e:
                parts.append(R.PartitionProduceResponse(
                    index=pd.index, error_code=e.code, base_offset=-1, log_append_time_ms=-1,
                    log_start_offset=partition.log_start_offset, error_message=e.message,
                    record_errors=[R.BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=m)
                                   for i, m in e.record_errors]))
                continue
            except KafkaError as e:
                part = _partition_error(pd.index, e.code)
                if e.code not in REQUEST_ERRORS or type(e) is LogAppendError:
                    part.log_start_offset = partition.log_start_offset
                parts.append(part)
                continue
            except OSError as e:
                log.error("storage error appending to %s-%d: %s", topic.name, pd.index, e)
                parts.append(_partition_error(pd.index, ErrorCode.KAFKA_STORAGE_ERROR))
                continue
            part = R.PartitionProduceResponse(
                index=pd.index, error_code=0, base_offset=base_offset, log_append_time_ms=append_time,
                log_start_offset=partition.log_start_offset,
            )
            parts.append(part)
            if req.acks == -1:
                required = partition.log_end_offset
                error = partition.check_enough_replicas(required)
                if error is None:
                    waiting.append((part, partition, required))
                elif error:
                    _fail(part, error)
    if req.acks == 0:
        return None
    response = R(responses=responses, throttle_time_ms=0, node_endpoints=hints.node_endpoints())
    if waiting:
        return AwaitingReplication(_delayed(response, waiting, req.timeout_ms / 1000.0))
    return response


def _fail(part, error: int) -> None:
    part.error_code, part.base_offset, part.log_append_time_ms = error, -1, -1


async def _delayed(response, waiting, timeout_s: float):
    """acks=all: answer once every waiting partition's high watermark passed its batch, or the time is up."""
    if len(waiting) == 1:  # the common case (one partition a request), without gather's task per partition
        results = [await waiting[0][1].wait_for_high_watermark(waiting[0][2], timeout_s)]
    else:
        results = await asyncio.gather(*(p.wait_for_high_watermark(offset, timeout_s) for _part, p, offset in waiting))
    for (part, p, offset), error in zip(waiting, results):
        if error == 0:
            error = p.check_enough_replicas(offset) or 0
        if error:
            _fail(part, error)
    return response
