"""Fetch (1): v4-18. Topics by name up to v12 and by id from v13 (UNKNOWN_TOPIC_ID for an id we do not know).
v17 and v18 add fields only replicas send (directory id, KIP-853; high watermark, KIP-1166).

Long polling: when less than ``min_bytes`` is available the handler waits, up to ``max_wait_ms``, on the
partitions it was asked about; an append to any of them wakes it at once (no timers that poll).

The wait ends at once, as Kafka's ReplicaManager ends it, when no partition of the request can be read
(unknown topics or ids, partition indexes out of range: nothing to wait for) or when reading one gave an error
(OFFSET_OUT_OF_RANGE, a fenced epoch, its topic deleted during the wait): the answer carries the errors, and
a partition with an error carries -1 for its high watermark, last stable offset and log start offset, as
Kafka's (a client resets from ListOffsets).

Records are served as stored: whole batches, from the batch that contains the fetch offset (the client skips
the records before its offset), at least one whole batch for the first partition with data even when it is
larger than the limits (KIP-74), then within ``partition_max_bytes`` and the answer's limit: the request's
``max_bytes`` capped by the broker's ``fetch.max.bytes`` (KafkaApis: min(request, fetch.max.bytes), and
``min_bytes`` no more than that). An empty partition carries zero-length, non-null records (librdkafka
rejects null).

A partition named more than once is served once, as Kafka keys a request's partitions in a map: in the place
of its first mention, with the fetch position and limit of its last. A client cannot make one answer carry
the same bytes many times over.

Fetch sessions (KIP-227) are refused the way a Kafka broker whose session cache is full refuses them: a
request to open a session (epoch 0) gets session id 0 and every fetch is a full fetch; an incremental fetch
naming a session gets FETCH_SESSION_ID_NOT_FOUND.

read_committed (isolation level 1) reads up to the last stable offset; read_uncommitted up to the high
watermark.

A follower's fetch (``replica_id`` >= 0 before v15, ``ReplicaState.replica_id`` from v15, as Kafka's
ReplicaFetcherThread sends them; replica_fetcher.py) reads up to the log end, not the high watermark. Before
the read the leader records the follower's position (``Partition.update_follower_fetch_state``: its log end
offset, when it last caught up), which may let it into the ISR and move the high watermark. From v12 a
follower sends the epoch of its last batch (``last_fetched_epoch``): when that epoch ends earlier on the
leader (or the leader never had it), the answer carries ``diverging_epoch`` (the leader's epoch and its end
offset) and no records, and the follower truncates (Kafka's validateFetchOffsetAndMaybeGetDivergingEpoch).

Records are read as regions of the segment files (FileRegion) where the store keeps files: the connection
sends them with sendfile on plaintext, or reads them into a buffer it uses again (TLS); server.py.

Fetching from the closest replica (KIP-392; replica_selector.py): a consumer's fetch from v11 on (which carries
its ``rack_id``) may be served by a follower as by the leader, as Kafka's FetchParams.fetchOnlyLeader allows: up
to the follower's high watermark (what the leader last told it; the last stable offset for read_committed), an
offset between that and its log end answered with no records, one past its log end OFFSET_OUT_OF_RANGE (the
consumer goes back to the leader), the current leader epoch checked against the follower's (FENCED_LEADER_EPOCH
/ UNKNOWN_LEADER_EPOCH). ListOffsets stays with the leader. With ``replica.selector.class`` set, the leader
answers a consumer's fetch with no records and ``preferred_read_replica`` when the selector picks another
replica: one in the ISR whose log, as of its last fetch, holds the fetch offset, in the consumer's rack. Such an
answer is sent at once, as Kafka completes a delayed fetch that has a preferred read replica.

Authorisation: READ on each topic, else TOPIC_AUTHORIZATION_FAILED for its partitions (as KafkaApis).
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import ErrorCode
from ..partition import fetch_epoch, get_partition_or_error, now_ms
from ..replica_selector import ReplicaView, preferred_read_replica
from .leader_hints import LeaderHints
from ..records.batch import iter_batches
from ..security import acl
from ..storage.base import StorageError
from ..storage.file_region import FileRegion
from ..wire.messages import fetch as API

log = logging.getLogger("kbroker.fetch")
R = API.FetchResponse
FINAL_EPOCH = -1


def handle(ctx, req: API.FetchRequest):
    if ctx.version >= 7 and req.session_id != 0 and req.session_epoch != 0:
        return R(error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND, session_id=0, responses=[])
    targets = _resolve(ctx, req)
    max_bytes = min(req.max_bytes, ctx.broker.config.fetch_max_bytes)
    replica_id = replica_id_of(ctx.version, req)
    if replica_id < 0 and ctx.broker.client_quotas.enabled:  # a consumer takes at most what its consumer_byte_rate allows in one quota window
        max_bytes = min(max_bytes, ctx.broker.client_quotas.fetch.max_value_in_window(ctx.quota_user,
                                                                                      ctx.client_id or ""))
    min_bytes = min(req.min_bytes, max_bytes)
    if replica_id >= 0:
        _record_follower_positions(ctx, req, targets, replica_id)
    response, size, read_error = _build(ctx, req, targets, max_bytes, replica_id)
    if size >= min_bytes or req.max_wait_ms <= 0 or read_error or not _readable(targets):
        return _within_quota(ctx, replica_id, response, size)
    partitions = list({id(p): p for _, parts in targets for _, p in parts if not isinstance(p, int)}.values())
    return _long_poll(ctx, req, targets, max_bytes, min_bytes, partitions, replica_id,
                      _follower_view(partitions) if replica_id >= 0 else None)


def _within_quota(ctx, replica_id: int, response, size: int):
    """consumer_byte_rate (client_quotas.py), as Kafka's handleFetchRequest: the answer's bytes are recorded;
    over the quota they are taken back and the answer is empty, carrying the throttle time (the consumer fetches
    the same offsets again once it has passed). Followers are not throttled by client quotas; the bytes of
    partitions throttled by the replication quota are recorded against it (Kafka's sizeOfThrottledPartitions)."""
    if replica_id >= 0:
        _record_replication(ctx, response)
        return response
    if not ctx.broker.client_quotas.enabled:
        return response
    fetch_quota = ctx.broker.client_quotas.fetch
    user, client_id = ctx.quota_user, ctx.client_id or ""
    throttle_ms = fetch_quota.record_and_get_throttle_ms(user, client_id, size)
    if throttle_ms <= 0:
        return response
    fetch_quota.unrecord(user, client_id, size)
    ctx.throttle(throttle_ms)
    return R(throttle_time_ms=throttle_ms, error_code=0, session_id=response.session_id, responses=[],
             node_endpoints=response.node_endpoints)


def _record_replication(ctx, response) -> None:
    """The leader's replication quota counts what a follower's answer carries of the partitions it throttles."""
    quota = ctx.broker.replication_quotas.leader
    topics = ctx.broker.topics
    nbytes = 0
    for rt in response.responses:
        topic = None
        for rp in rt.partitions:
            if not rp.records:
                continue
            if topic is None:
                topic = topics.by_id.get(rt.topic_id) if ctx.version >= 13 else topics.get(rt.topic)
                if topic is None:
                    break
            if quota.is_throttled(topic, rp.partition_index):
                nbytes += sum(len(c) for c in rp.records) if isinstance(rp.records, list) else len(rp.records)
    quota.record(nbytes)


def replica_id_of(version: int, req) -> int:
    """The fetching follower's node id; -1 for a consumer."""
    if version >= 15:
        state = req.replica_state
        return state.replica_id if state is not None else -1
    return req.replica_id


def _diverging_epoch(ctx, p, fp):
    """The leader's (epoch, end offset) when the follower's last fetched epoch ends earlier here, else None."""
    if ctx.version < 12 or fp.last_fetched_epoch < 0:
        return None
    epoch, end = p.last_offset_for_leader_epoch(fp.last_fetched_epoch)
    if epoch < fp.last_fetched_epoch or end < fp.fetch_offset:
        return R.EpochEndOffset(epoch=epoch, end_offset=end)
    return None


def _record_follower_positions(ctx, req, targets, replica_id: int) -> None:
    """A follower's fetch tells the leader where each of its logs ends (once per request, not per wake of
    the long poll)."""
    for _ft, parts in targets:
        for fp, p in parts:
            if isinstance(p, int) or not p.is_leader or _gone(ctx, p):
                continue
            if p.check_current_leader_epoch(fetch_epoch(fp.current_leader_epoch)):
                continue
            if p.log_start_offset <= fp.fetch_offset <= p.log_end_offset and _diverging_epoch(ctx, p, fp) is None:
                p.update_follower_fetch_state(replica_id, fp.fetch_offset, fp.log_start_offset)


def _resolve(ctx, req):
    """[(response topic, [(request partition, Partition or error code)])]: each partition once, in the place
    of its first mention with the request entry of its last (Kafka's fetchData map), grouped into topics the
    way Kafka's FetchResponse groups them (consecutive partitions of the same topic)."""
    by_id = ctx.version >= 13
    if len(req.topics) == 1 and len(req.topics[0].partitions) == 1:  # one partition (a follower's usual fetch)
        ft = req.topics[0]
        fp = ft.partitions[0]
        topic, missing = _resolve_topic(ctx, ft, by_id)
        return [(ft, [(fp, missing if topic is None else _partition(ctx, req, topic, fp.partition))])]
    resolved = {}  # topic key -> (topic, error code for its partitions if it has none)
    chosen = {}  # (topic key, partition) -> (request topic, request partition), in first-mention order
    for ft in req.topics:
        key = ft.topic_id if by_id else ft.topic
        if key not in resolved:
            resolved[key] = _resolve_topic(ctx, ft, by_id)
        for fp in ft.partitions:
            chosen[(key, fp.partition)] = (ft, fp)
    out = []
    last_key = object()
    for (key, index), (ft, fp) in chosen.items():
        topic, missing = resolved[key]
        target = missing if topic is None else _partition(ctx, req, topic, index)
        if key != last_key:
            out.append((ft, []))
            last_key = key
        out[-1][1].append((fp, target))
    return out


def _resolve_topic(ctx, ft, by_id: bool):
    """(Topic, error code for its partitions when it is None): unknown, or not readable by the principal."""
    topics = ctx.broker.topics
    topic = topics.by_id.get(ft.topic_id) if by_id else topics.get(ft.topic)
    missing = ErrorCode.UNKNOWN_TOPIC_ID if by_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if (topic is not None or not by_id) and not ctx.authorize(
            acl.READ, acl.TOPIC, topic.name if topic is not None else ft.topic):
        missing, topic = ErrorCode.TOPIC_AUTHORIZATION_FAILED, None
    return topic, missing


def follower_reads(ctx, req, replica_id: int | None = None) -> bool:
    """Whether a follower may serve this fetch: a consumer's from v11 on (KIP-392: Kafka's client metadata)."""
    return ctx.version >= 11 and (replica_id_of(ctx.version, req) if replica_id is None else replica_id) < 0


def _partition(ctx, req, topic, index: int):
    """The partition to read, or the error code: the leader, or for a fetch ``follower_reads`` allows a
    follower too (NOT_LEADER_OR_FOLLOWER where this broker holds no replica)."""
    target = get_partition_or_error(topic, index)
    if target == ErrorCode.NOT_LEADER_OR_FOLLOWER and follower_reads(ctx, req) and topic.partitions[index].is_follower:
        return topic.partitions[index]
    return target


def _preferred_read_replica(ctx, req, p, fetch_offset: int) -> int:
    """The replica the leader ``p`` tells this consumer to read from, -1 for itself (Kafka's
    ReplicaManager.findPreferredReadReplica): the candidates are the followers in the ISR whose log, as of their
    last fetch, holds ``fetch_offset`` and that the consumer's listener reaches."""
    selector = ctx.broker.config.replica_selector_class
    if selector is None or not req.rack_id:
        return -1
    controller = ctx.broker.controller
    t = now_ms()

    def view(node: int, end: int, since_ms: float) -> ReplicaView | None:
        reg = controller.broker(node)
        if ctx.endpoint(node) is None or reg is None:
            return None
        return ReplicaView(node, reg.rack, end, since_ms)

    leader = view(p.node_id, p.log_end_offset, 0) or ReplicaView(p.node_id, None, p.log_end_offset, 0)
    candidates = []
    for node, state in p.followers.items():
        if node in p.isr and state.log_start_offset <= fetch_offset <= state.log_end_offset:
            v = view(node, state.log_end_offset, t - state.last_caught_up_ms)
            if v is not None:
                candidates.append(v)
    return preferred_read_replica(selector, req.rack_id, leader, candidates)


def _readable(targets) -> bool:
    return any(not isinstance(p, int) for _, parts in targets for _, p in parts)


def _gone(ctx, p) -> int:
    """The error for a partition whose topic was deleted since the request was resolved (a long poll
    outlives it), else 0: its log is closed and must not be read."""
    topic = p.topic
    if topic is None or ctx.broker.topics.by_id.get(topic.topic_id) is topic:
        return 0
    return ErrorCode.UNKNOWN_TOPIC_ID if ctx.version >= 13 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _error_data(index: int, error: int, current_leader=None):
    return R.PartitionData(partition_index=index, error_code=error, high_watermark=-1, last_stable_offset=-1,
                           log_start_offset=-1, records=b"", current_leader=current_leader)


def _build(ctx, req, targets, max_bytes: int, replica_id: int):
    """(response, bytes of records in it, whether reading a partition gave an error or a diverging epoch:
    either is answered at once, as Kafka's DelayedFetch completes on them)."""
    follower = replica_id >= 0
    # KIP-73: a follower out of sync, fetching a partition throttled here, gets nothing while this leader's
    # leader.replication.throttled.rate is exceeded (Kafka's ReplicaManager.shouldLeaderThrottle).
    leader_quota = ctx.broker.replication_quotas.leader if follower else None
    read_committed = req.isolation_level == 1 and not follower
    from_follower = follower_reads(ctx, req, replica_id)  # KIP-392: this broker may serve it as a follower
    remaining = max_bytes if max_bytes > 0 else 0
    total = 0
    read_error = False
    first_with_data = True
    responses = []
    hints = LeaderHints(ctx, R)
    topics = ctx.broker.topics
    for ft, parts in targets:
        rparts = []
        responses.append(R.FetchableTopicResponse(topic=ft.topic, topic_id=ft.topic_id, partitions=rparts))
        topic = topics.by_id.get(ft.topic_id) if ctx.version >= 13 else topics.get(ft.topic)  # for leader hints
        for fp, p in parts:
            if isinstance(p, int):
                rparts.append(_error_data(fp.partition, p, hints.current_leader(topic, fp.partition, p)))
                continue
            err = _gone(ctx, p)
            if err:
                read_error = True
                rparts.append(_error_data(fp.partition, err))
                continue
            if not (p.is_leader or (from_follower and p.is_follower)):  # moved while the fetch waited: answer now
                err = ErrorCode.NOT_LEADER_OR_FOLLOWER
                read_error = True
                rparts.append(_error_data(fp.partition, err, hints.current_leader(topic, fp.partition, err)))
                continue
            err = p.check_current_leader_epoch(fetch_epoch(fp.current_leader_epoch))
            hw = p.high_watermark
            lso = p.last_stable_offset
            start = p.log_start_offset
            records = b""
            aborted = None
            diverging = None
            if err == 0 and from_follower and p.is_leader:
                preferred = _preferred_read_replica(ctx, req, p, fp.fetch_offset)
                if preferred >= 0:  # no records: the consumer goes to that replica; answered at once
                    read_error = True
                    rparts.append(R.PartitionData(
                        partition_index=fp.partition, error_code=0, high_watermark=hw, last_stable_offset=lso,
                        log_start_offset=start, aborted_transactions=[] if read_committed else None,
                        preferred_read_replica=preferred, records=b""))
                    continue
            if err == 0:
                offset = fp.fetch_offset
                if follower:
                    limit = max_offset = p.log_end_offset
                    diverging = _diverging_epoch(ctx, p, fp)
                else:
                    limit = max_offset = lso if read_committed else hw
                if diverging is not None:
                    read_error = True  # no records, answered at once: the follower truncates first
                elif follower and replica_id not in p.isr and start <= offset < limit and \
                        leader_quota.is_throttled(p.topic, p.index) and leader_quota.is_quota_exceeded():
                    pass  # throttled: no records this time
                elif offset < start or offset > p.log_end_offset:
                    err = ErrorCode.OFFSET_OUT_OF_RANGE
                elif offset < limit:
                    part_max = min(fp.partition_max_bytes, remaining)
                    if part_max > 0 or first_with_data:
                        # KIP-74: the first partition with data returns at least one whole batch.
                        try:
                            chunks = p.read(offset, part_max, min_one_batch=first_with_data,
                                            max_offset=max_offset, regions=True)
                        except (StorageError, OSError) as e:
                            # Its files could not be read: an error for this partition, as Kafka's
                            # KAFKA_STORAGE_ERROR, never the connection.
                            log.error("fetch from %s-%d at %d: %s", p.topic.name if p.topic else "?",
                                      p.index, offset, e)
                            chunks = []
                            err = ErrorCode.KAFKA_STORAGE_ERROR
                        size = sum(len(c) for c in chunks)
                        if size:
                            records = chunks
                            first_with_data = False
                            remaining = max(0, remaining - size)
                            total += size
                            if read_committed:
                                aborted = [R.AbortedTransaction(producer_id=pid, first_offset=first)
                                           for pid, first in p.aborted_transactions(offset, _end_offset(chunks))]
                if read_committed and aborted is None:
                    aborted = []
            if err:  # Kafka's LogReadResult for an error: no watermarks (UnifiedLog.UNKNOWN_OFFSET)
                read_error = True
                hw = lso = start = -1
            rparts.append(R.PartitionData(
                partition_index=fp.partition, error_code=err, high_watermark=hw, last_stable_offset=lso,
                log_start_offset=start, aborted_transactions=aborted, preferred_read_replica=-1, records=records,
                current_leader=hints.current_leader(topic, fp.partition, err), diverging_epoch=diverging,
            ))
    return R(throttle_time_ms=0, error_code=0, session_id=0, responses=responses,
             node_endpoints=hints.node_endpoints()), total, read_error


def _end_offset(chunks) -> int:
    """The offset after the last batch returned."""
    tail = chunks[-1]
    if type(tail) is FileRegion:
        return tail.last_offset + 1
    last = -1
    for pos, h in iter_batches(tail):
        last = h.last_offset
    return last + 1


def _follower_view(partitions) -> list:
    """What a follower's fetch answer depends on besides the high watermark, per partition: leadership and
    epoch, the log's start and end (data, out of range, diverging epochs), deletion. A follower's long poll is
    answered when data arrives, not when the high watermark moves (as Kafka's DelayedFetch for a follower), so
    a wake that changes none of these (another follower's fetch moved the high watermark) needs no new read."""
    return [(p.is_leader, p.leader_epoch, p.deleted, p.log_start_offset, p.log_end_offset) if p.log is not None
            else None for p in partitions]


async def _long_poll(ctx, req, targets, max_bytes: int, min_bytes: int, partitions: list, replica_id: int,
                     seen: list | None):
    """Wait for appends until ``min_bytes`` are there, a partition reads with an error (its topic deleted,
    say) or ``max_wait_ms`` has passed.

    The waiters are registered before the partitions are looked at again: an append that lands between
    ``handle`` returning and this coroutine starting is then seen, not slept through. ``seen``: for a
    follower's fetch, ``_follower_view`` as of the read in ``handle`` (None for a consumer's: every wake reads).

    One future waits on all the partitions (``Partition.add_waiter``) and this coroutine awaits it itself,
    with a timer for ``max_wait_ms``: the append that sets it schedules the coroutine's next step, so the
    answer is built and written on the loop's next turn after the append. (``asyncio.wait`` over a future per
    partition takes a turn more, for its own callback on the future that is set, and a callback per partition.)
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.max_wait_ms / 1000.0
    while True:
        woken = loop.create_future()
        for p in partitions:
            p.add_waiter(woken)
        try:
            if seen is not None and deadline > loop.time() and not ctx.broker.stopping:
                view = _follower_view(partitions)
                if view == seen:  # woken by what does not change this answer (the high watermark moved)
                    await _woken_or_expired(loop, woken, deadline)
                    continue
                seen = view
            response, size, read_error = _build(ctx, req, targets, max_bytes, replica_id)
            if size >= min_bytes or read_error or deadline <= loop.time() or ctx.broker.stopping or not partitions:
                return _within_quota(ctx, replica_id, response, size)
            await _woken_or_expired(loop, woken, deadline)
        finally:
            if not woken.done():
                woken.cancel()
            for p in partitions:
                p.discard_waiter(woken)


async def _woken_or_expired(loop, woken: asyncio.Future, deadline: float) -> None:
    timer = loop.call_at(deadline, _expire, woken)
    try:
        await woken
    finally:
        timer.cancel()


def _expire(woken: asyncio.Future) -> None:
    if not woken.done():
        woken.set_result(None)
