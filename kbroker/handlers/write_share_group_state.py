"""WriteShareGroupState (85): v0-1 (KIP-932; v1 adds DeliveryCompleteCount, KIP-1226, which kbroker derives from
the batches), broker to share coordinator: a share-partition's state, written as a ShareSnapshot and answered
once replicated. kbroker's share-partition leaders send their whole in-flight window each time, so the write
replaces the state (Kafka's coordinator merges a partial write into it: the same result for a whole window).
See share_state_requests.py for routing and authorisation.
"""

from __future__ import annotations

from ..share.state_records import ShareState
from ..wire.messages import write_share_group_state as API
from .share_state_requests import answer

R = API.WriteShareGroupStateResponse


def handle(ctx, req: API.WriteShareGroupStateRequest):
    async def write(shard, key, p):
        batches = [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in p.state_batches]
        await shard.write_and_wait(key, ShareState(p.start_offset, p.state_epoch, p.leader_epoch,
                                                   state_batches=batches))
        return {}
    return answer(ctx, req, R, "WriteStateResult", write)
