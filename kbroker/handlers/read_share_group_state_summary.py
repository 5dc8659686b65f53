"""ReadShareGroupStateSummary (87): v0-1 (KIP-932; v1 adds DeliveryCompleteCount, KIP-1226), broker to share
coordinator: a share-partition's start offset and epochs (and the in-flight records already acknowledged or
archived), for DescribeShareGroupOffsets; a key never written answers start offset -1. See
share_state_requests.py for routing and authorisation.
"""

from __future__ import annotations

from ..share.state_records import delivery_complete_count
from ..wire.messages import read_share_group_state_summary as API
from .share_state_requests import answer

R = API.ReadShareGroupStateSummaryResponse


def handle(ctx, req: API.ReadShareGroupStateSummaryRequest):
    def summary(shard, key, p):
        state = shard.read(key)
        if state is None:
            return {"state_epoch": 0, "leader_epoch": -1, "start_offset": -1, "delivery_complete_count": -1}
        return {"state_epoch": state.state_epoch, "leader_epoch": state.leader_epoch,
                "start_offset": state.start_offset, "delivery_complete_count": delivery_complete_count(state)}
    return answer(ctx, req, R, "ReadStateSummaryResult", summary)
