"""OffsetFetch (9): v1-9. A group's committed offsets for the partitions asked for, or all of them (a null
topic list, v2+); v7 adds require_stable (UNSTABLE_OFFSET_COMMIT while a transaction may still change an
offset, KIP-447); v8 asks for several groups at once; v9 names the member of a consumer-protocol group
(KIP-848), which must be at its member epoch (STALE_MEMBER_EPOCH); v10 names topics by id (an unknown id
answers UNKNOWN_TOPIC_ID; "all topics" leaves out topics that no longer exist). Unknown partitions answer offset -1.
Authorisation, as KafkaApis: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each topic: named
topics without it answer TOPIC_AUTHORIZATION_FAILED, and "all topics" leaves them out.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import offset_fetch as API

R = API.OffsetFetchResponse


def _fetch(ctx, group_id, topics, require_stable, member_id=None, member_epoch=-1):
    if not ctx.authorize(acl.DESCRIBE, acl.GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, {}
    denied = []
    if topics is not None:
        allowed = ctx.authorized(acl.DESCRIBE, acl.TOPIC, [t.name for t in topics])
        denied = [t for t in topics if t.name not in allowed]
        topics = [t for t in topics if t.name in allowed]
    wanted = None if topics is None else [(t.name, i) for t in topics for i in t.partition_indexes]
    res = ctx.broker.groups.fetch_offsets(group_id, wanted, require_stable=require_stable, member_id=member_id,
                                          member_epoch=member_epoch)
    if wanted is None and ctx.broker.authorizer is not None:
        names = ctx.authorized(acl.DESCRIBE, acl.TOPIC, {tp[0] for tp in res.offsets}, log_denied=False)
        res.offsets = {tp: om for tp, om in res.offsets.items() if tp[0] in names}
    by_topic: dict[str, list] = {}
    order = wanted if wanted is not None else sorted(res.offsets)
    for tp in order:
        om = res.offsets.get(tp)
        err = res.partition_errors.get(tp, 0) if res.partition_errors else 0
        if om is None:
            om_offset, om_epoch, om_meta = -1, -1, ""
        else:
            om_offset, om_epoch, om_meta = om.offset, om.leader_epoch, om.metadata
        by_topic.setdefault(tp[0], []).append((tp[1], om_offset, om_epoch, om_meta, err))
    if not res.error_code:
        for t in denied:
            by_topic.setdefault(t.name, []).extend(
                (i, -1, -1, "", ErrorCode.TOPIC_AUTHORIZATION_FAILED) for i in t.partition_indexes)
    return res.error_code, by_topic


def handle(ctx, req: API.OffsetFetchRequest) -> R:
    if ctx.version < 8:
        topics = req.topics if (req.topics is not None or ctx.version < 2) else None
        if ctx.version < 2 and not topics:
            topics = []
        err, by_topic = _fetch(ctx, req.group_id, topics, req.require_stable)
        if err == ErrorCode.GROUP_AUTHORIZATION_FAILED and ctx.version < 2:  # every partition asked carries it
            by_topic = {t.name: [(i, -1, -1, "", 0) for i in t.partition_indexes] for t in topics or []}
        out = [R.OffsetFetchResponseTopic(name=name, partitions=[
            R.OffsetFetchResponsePartition(partition_index=i, committed_offset=o, committed_leader_epoch=e,
                                           metadata=m, error_code=pe) for i, o, e, m, pe in parts])
            for name, parts in by_topic.items()]
        if ctx.version < 2 and err:
            for t in out:
                for p in t.partitions:
                    p.error_code = p.error_code or err
        return R(throttle_time_ms=0, topics=out, error_code=err)
    results = []
    by_id = ctx.version >= 10
    for g in req.groups:
        topics, unknown_ids = g.topics, []
        if by_id and topics is not None:
            topics, unknown_ids = [], [t for t in g.topics if t.topic_id not in ctx.broker.topics.by_id]
            for t in g.topics:
                if t.topic_id in ctx.broker.topics.by_id:
                    t.name = ctx.broker.topics.by_id[t.topic_id].name
                    topics.append(t)
        err, by_topic = _fetch(ctx, g.group_id, topics, req.require_stable, g.member_id, g.member_epoch)
        out = []
        for name, parts in by_topic.items():
            topic = ctx.broker.topics.get(name)
            if by_id and topic is None:
                continue  # a deleted topic's offsets: no id to name it by
            ids = {"topic_id": topic.topic_id} if by_id else {}
            out.append(R.OffsetFetchResponseTopics(
                name=name, **ids, partitions=[
                    R.OffsetFetchResponsePartitions(partition_index=i, committed_offset=o, committed_leader_epoch=e,
                                                    metadata=m, error_code=pe) for i, o, e, m, pe in parts]))
        if not err:
            out += [R.OffsetFetchResponseTopics(topic_id=t.topic_id, partitions=[
                R.OffsetFetchResponsePartitions(partition_index=i, committed_offset=-1, metadata="",
                                                error_code=ErrorCode.UNKNOWN_TOPIC_ID) for i in t.partition_indexes])
                for t in unknown_ids]
        results.append(R.OffsetFetchResponseGroup(group_id=g.group_id, error_code=err, topics=out))
    return R(throttle_time_ms=0, groups=results)
