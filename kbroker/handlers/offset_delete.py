"""OffsetDelete (47): v0 (KIP-496). Deletes a group's committed offsets for partitions of topics the group
is not consuming (GROUP_SUBSCRIBED_TO_TOPIC otherwise); GROUP_ID_NOT_FOUND for an unknown group.
"""

from __future__ import annotations

from ..wire.messages import offset_delete as API

VERSIONS = (0, 0)
R = API.OffsetDeleteResponse


def handle(ctx, req: API.OffsetDeleteRequest) -> R:
    wanted = [(t.name, p.partition_index) for t in req.topics for p in t.partitions]
    res = ctx.broker.groups.delete_offsets(req.group_id, wanted)
    errors = res.partition_errors or {}
    return R(error_code=res.error_code, throttle_time_ms=0, topics=[
        R.OffsetDeleteResponseTopic(name=t.name, partitions=[
            R.OffsetDeleteResponsePartition(partition_index=p.partition_index,
                                            error_code=errors.get((t.name, p.partition_index), 0))
            for p in t.partitions]) for t in req.topics])
