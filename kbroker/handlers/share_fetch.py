"""ShareFetch (78): v1-2, a share group member's fetch (KIP-932). v0 was Kafka 4.0's early access, removed in
4.1, and is not served. v2 adds ShareAcquireMode (KIP-1206: 0 batch_optimized, 1 record_limit) and IsRenewAck
(a request that only renews locks, KIP-1222: nothing new is acquired, RENEW acknowledgements allowed).

The request runs in the member's share session (share/manager.py: epoch 0 opens it, -1 closes it,
SHARE_SESSION_NOT_FOUND / INVALID_SHARE_SESSION_EPOCH as top-level errors). Its acknowledgements are applied
and written first (share_acks.py: AcknowledgeErrorCode per partition); then every partition of the session
acquires records for the member, at most MaxRecords in all, at most MaxBytes of batches; the answer carries
the stored batches holding the acquired records and the acquired ranges (first, last, delivery count), split
into runs of at most BatchSize records. With too little acquired (fewer than MinBytes of batches, or nothing)
the fetch waits up to MaxWaitMs for appends and for records made available again (expired locks, releases).
AcquisitionLockTimeoutMs is the group's record lock duration. Partitions of an incremental request are
answered when they have records, an error or an acknowledgement result; the first request answers them all.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED, top level) and READ on each topic
(TOPIC_AUTHORIZATION_FAILED). Not served: the share session limit (group.share.max.share.sessions), closing a
member's sessions when its connection closes.
"""

from __future__ import annotations

import asyncio

from ..errors import ErrorCode, KafkaError
from ..partition import get_partition_or_error
from ..security import acl
from ..share.manager import FINAL_EPOCH, INITIAL_EPOCH
from ..share.share_partition import BATCH_OPTIMIZED, RECORD_LIMIT
from ..wire.messages import share_fetch as API
from .leader_hints import LeaderHints
from .share_acks import acknowledge_and_persist

R = API.ShareFetchResponse
DEFAULT_MAX_RECORDS = 500  # a request with no positive MaxRecords: the Java client's max.poll.records default


def handle(ctx, req: API.ShareFetchRequest):
    lock_ms = ctx.broker.share_settings(req.group_id or "").record_lock_duration_ms
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id or ""):
        return R(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, acquisition_lock_timeout_ms=lock_ms)
    if not req.group_id or not req.member_id:
        return R(error_code=ErrorCode.INVALID_REQUEST, error_message="a share fetch needs a group id and member id",
                 acquisition_lock_timeout_ms=lock_ms)
    mode = req.share_acquire_mode if ctx.version >= 2 else BATCH_OPTIMIZED
    if mode not in (BATCH_OPTIMIZED, RECORD_LIMIT):
        return R(error_code=ErrorCode.INVALID_REQUEST, error_message=f"unknown share acquire mode {mode}",
                 acquisition_lock_timeout_ms=lock_ms)
    return _share_fetch(ctx, req, mode, lock_ms)


async def _share_fetch(ctx, req, mode: int, lock_ms: int) -> R:
    manager = ctx.broker.share
    wanted = [(t.topic_id, p.partition_index) for t in req.topics for p in t.partitions]
    forgotten = [(f.topic_id, i) for f in req.forgotten_topics_data for i in f.partitions]
    has_acks = any(p.acknowledgement_batches for t in req.topics for p in t.partitions)
    try:
        session = manager.fetch_session(req.group_id, req.member_id, req.share_session_epoch, wanted, forgotten,
                                        has_acks)
    except KafkaError as e:
        return R(error_code=e.code, error_message=e.message, acquisition_lock_timeout_ms=lock_ms)
    acks = await acknowledge_and_persist(ctx, req.group_id, req.member_id, req.topics) if has_acks else {}
    fetch = Fetched()
    if req.share_session_epoch == FINAL_EPOCH:
        manager.close_session(session)
    elif not (ctx.version >= 2 and req.is_renew_ack):
        await _acquire_until_enough(ctx, req, session, mode, fetch)
    return _response(ctx, req, session, acks, fetch, lock_ms)


class Fetched:
    """What one request acquired so far, per partition: the batches, the runs and errors."""

    def __init__(self) -> None:
        self.records: dict = {}  # (topic id, partition) -> bytearray
        self.runs: dict = {}  # (topic id, partition) -> [(first, last, delivery count)]
        self.errors: dict = {}  # (topic id, partition) -> error code
        self.count = 0
        self.size = 0


def _resolve(ctx, topic_id, index: int):
    """The Partition this broker leads, or the error code for it."""
    topic = ctx.broker.topics.by_id.get(topic_id)
    if topic is None:
        return ErrorCode.UNKNOWN_TOPIC_ID
    if not ctx.authorize(acl.READ, acl.TOPIC, topic.name):
        return ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return get_partition_or_error(topic, index)


def _acquire_once(ctx, req, session, mode: int, fetch: Fetched) -> list:
    """One pass over the session's partitions; returns the Partitions read (to wait on)."""
    manager = ctx.broker.share
    settings = ctx.broker.share_settings(req.group_id)
    read_committed = settings.isolation_level == "read_committed"
    max_records = req.max_records if req.max_records > 0 else DEFAULT_MAX_RECORDS
    max_bytes = req.max_bytes if req.max_bytes > 0 else 2**31 - 1
    watched = []
    for tp in list(session.partitions):
        p = _resolve(ctx, *tp)
        if isinstance(p, int):
            fetch.errors[tp] = p
            continue
        fetch.errors.pop(tp, None)
        watched.append(p)
        if fetch.count >= max_records or fetch.size >= max_bytes:
            continue
        sp = manager.share_partition(req.group_id, p)
        if sp is None:
            continue
        try:
            data, runs = manager.acquire(sp, p, req.member_id, max_records - fetch.count, mode, req.batch_size,
                                         max_bytes - fetch.size, read_committed)
        except OSError:
            fetch.errors[tp] = ErrorCode.KAFKA_STORAGE_ERROR
            continue
        if runs:
            fetch.records.setdefault(tp, bytearray()).extend(data)
            fetch.runs.setdefault(tp, []).extend(runs)
            fetch.count += sum(last - first + 1 for first, last, _ in runs)
            fetch.size += len(data)
    return watched


async def _acquire_until_enough(ctx, req, session, mode: int, fetch: Fetched) -> None:
    """Acquires until MinBytes of batches hold acquired records (at least one record), an error is found, or
    MaxWaitMs has passed (Kafka's DelayedShareFetch)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000.0
    manager = ctx.broker.share
    while True:
        partitions = [p for p in _partitions_of(ctx, session)]
        futures = [(p, p.wait_for_append()) for p in partitions]
        available = manager.wait_available()
        try:
            _acquire_once(ctx, req, session, mode, fetch)
            remaining = deadline - loop.time()
            enough = fetch.count > 0 and fetch.size >= req.min_bytes
            if enough or fetch.errors or remaining <= 0 or ctx.broker.stopping or not session.partitions:
                return
            await asyncio.wait([f for _p, f in futures] + [available], timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p, f in futures:
                if not f.done():
                    f.cancel()
                    p.discard_waiter(f)
            if not available.done():
                available.cancel()
                manager.discard_waiter(available)


def _partitions_of(ctx, session):
    for tp in session.partitions:
        p = _resolve(ctx, *tp)
        if not isinstance(p, int):
            yield p


def _response(ctx, req, session, acks: dict, fetch: Fetched, lock_ms: int) -> R:
    hints = LeaderHints(ctx, R)
    listed = list(session.partitions) if req.share_session_epoch == INITIAL_EPOCH else []
    for tp in list(acks) + list(fetch.errors) + list(fetch.runs):
        if tp not in listed:
            listed.append(tp)
    by_topic: dict = {}
    for topic_id, index in listed:
        tp = (topic_id, index)
        error = fetch.errors.get(tp, 0)
        ack_error, ack_message = acks.get(tp, (0, None))
        topic = ctx.broker.topics.by_id.get(topic_id)
        leader = hints.current_leader(topic, index, error) or R.LeaderIdAndEpoch()
        by_topic.setdefault(topic_id, []).append(R.PartitionData(
            partition_index=index, error_code=error, error_message=None, acknowledge_error_code=ack_error,
            acknowledge_error_message=ack_message, current_leader=leader,
            records=bytes(fetch.records.get(tp, b"")),
            acquired_records=[R.AcquiredRecords(first_offset=f, last_offset=l, delivery_count=d)
                              for f, l, d in fetch.runs.get(tp, [])]))
    return R(throttle_time_ms=0, error_code=0, acquisition_lock_timeout_ms=lock_ms,
             responses=[R.ShareFetchableTopicResponse(topic_id=t, partitions=parts) for t, parts in by_topic.items()],
             node_endpoints=hints.node_endpoints())
