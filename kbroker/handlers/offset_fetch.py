"""OffsetFetch (9): v1-9. A group's committed offsets for the partitions asked for, or all of them (a null
topic list, v2+); v7 adds require_stable (UNSTABLE_OFFSET_COMMIT while a transaction may still change an
offset, KIP-447); v8 asks for several groups at once. Unknown partitions answer offset -1.
"""

from __future__ import annotations

from ..wire.messages import offset_fetch as API

VERSIONS = (1, 9)
R = API.OffsetFetchResponse


def _fetch(groups, group_id, topics, require_stable):
    wanted = None if topics is None else [(t.name, i) for t in topics for i in t.partition_indexes]
    res = groups.fetch_offsets(group_id, wanted, require_stable=require_stable)
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
    return res.error_code, by_topic


def handle(ctx, req: API.OffsetFetchRequest) -> R:
    groups = ctx.broker.groups
    if ctx.version < 8:
        topics = req.topics if (req.topics is not None or ctx.version < 2) else None
        if ctx.version < 2 and not topics:
            topics = []
        err, by_topic = _fetch(groups, req.group_id, topics, req.require_stable)
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
    for g in req.groups:
        err, by_topic = _fetch(groups, g.group_id, g.topics, req.require_stable)
        results.append(R.OffsetFetchResponseGroup(group_id=g.group_id, error_code=err, topics=[
            R.OffsetFetchResponseTopics(name=name, partitions=[
                R.OffsetFetchResponsePartitions(partition_index=i, committed_offset=o, committed_leader_epoch=e,
                                                metadata=m, error_code=pe) for i, o, e, m, pe in parts])
            for name, parts in by_topic.items()]))
    return R(throttle_time_ms=0, groups=results)
