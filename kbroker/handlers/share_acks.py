"""Acknowledgements as ShareFetch (78) and ShareAcknowledge (79) carry them, checked and applied the same way
for both (Kafka's KafkaApis.validateAcknowledgementBatches and SharePartitionManager.acknowledge).

A partition's batches are INVALID_REQUEST when one has its first offset after its last, when they are not in
ascending order without overlap, when a batch has no types or neither one type nor one per offset, or when a
type is unknown (0 gap, 1 accept, 2 release, 3 reject; version 2 adds 4 renew, KIP-1222). Then the
partition's own errors (UNKNOWN_TOPIC_ID, TOPIC_AUTHORIZATION_FAILED, NOT_LEADER_OR_FOLLOWER), then the
share-partition's (INVALID_RECORD_STATE; also for RENEW when the group's share.renew.acknowledge.enable is false,
as Kafka's SharePartition). A partition's acknowledgements are applied whole or not at all, once written to
the share coordinator (staged until then; a failed write rolls them back and is the partition's error).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..partition import get_partition_or_error
from ..security import acl
from ..share.manager import acknowledgement_error
from ..share.share_partition import ACK_REJECT, ACK_RENEW


def _invalid(batches, version: int) -> str | None:
    """Why the batches are INVALID_REQUEST, None when they are not."""
    top = ACK_RENEW if version >= 2 else ACK_REJECT
    previous_last = None
    for b in batches:
        if b.first_offset > b.last_offset:
            return f"first offset {b.first_offset} after last offset {b.last_offset}"
        if previous_last is not None and b.first_offset <= previous_last:
            return "acknowledgement batches overlap or are out of order"
        previous_last = b.last_offset
        n = b.last_offset - b.first_offset + 1
        if not b.acknowledge_types or len(b.acknowledge_types) not in (1, n):
            return f"{len(b.acknowledge_types)} acknowledge types for {n} offsets"
        if any(t < 0 or t > top for t in b.acknowledge_types):
            return "unknown acknowledge type"
    return None


def acknowledge(ctx, group_id: str, member_id: str, topics) -> tuple[dict, list]:
    """Stages every partition's acknowledgements of the request (topics with ``topic_id`` and partitions
    with ``partition_index`` and ``acknowledgement_batches``). Returns ({(topic id, partition): (error code,
    message)}, {(topic id, partition): the staged Transition})."""
    broker = ctx.broker
    results: dict = {}
    staged: dict = {}
    renew_enabled = broker.share_settings(group_id).renew_acknowledge_enable
    for t in topics:
        topic = broker.topics.by_id.get(t.topic_id)
        for p in t.partitions:
            batches = p.acknowledgement_batches
            if not batches:
                continue
            tp = (t.topic_id, p.partition_index)
            why = _invalid(batches, ctx.version)
            if why is not None:
                results[tp] = (ErrorCode.INVALID_REQUEST, None)  # Kafka says no more than the code
                continue
            if topic is None:
                results[tp] = (ErrorCode.UNKNOWN_TOPIC_ID, None)
                continue
            if not ctx.authorize(acl.READ, acl.TOPIC, topic.name):
                results[tp] = (ErrorCode.TOPIC_AUTHORIZATION_FAILED, None)
                continue
            partition = get_partition_or_error(topic, p.partition_index)
            if isinstance(partition, int):
                results[tp] = (partition, None)
                continue
            if not renew_enabled and any(ACK_RENEW in b.acknowledge_types for b in batches):
                results[tp] = (ErrorCode.INVALID_RECORD_STATE, "Renewing acquisition locks is not enabled for the group.")
                continue
            sp = broker.share.share_partition(group_id, partition)
            if sp is None:
                results[tp] = (ErrorCode.INVALID_RECORD_STATE, "the share-partition is initialising")
                continue
            code, message, transition = broker.share.stage_acknowledgements(
                sp, member_id, [(b.first_offset, b.last_offset, list(b.acknowledge_types)) for b in batches])
            results[tp] = (code, message)
            if transition is not None:
                staged[tp] = transition
    return results, staged


async def acknowledge_and_persist(ctx, group_id: str, member_id: str, topics) -> dict:
    """``acknowledge``, then the share-partitions written; an acknowledgement is applied once its write
    succeeded, and a failed write is the partition's error (Kafka's mapping of the persister's error)."""
    results, staged = acknowledge(ctx, group_id, member_id, topics)
    if staged:
        await ctx.broker.share.persist([(group_id, topic_id, index) for topic_id, index in staged])
        for tp, transition in staged.items():
            code = await transition.written
            if code:
                results[tp] = (acknowledgement_error(code), "the share state could not be written")
    return results


def refused(response_class, code: int):
    """A ShareFetch or ShareAcknowledge refused whole: Kafka answers the code alone, no message and no lock
    timeout."""
    return response_class(error_code=code, acquisition_lock_timeout_ms=0)
