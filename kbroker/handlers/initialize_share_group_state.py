"""InitializeShareGroupState (83): v0 (KIP-932), broker to share coordinator: a share-partition's state starts
at StartOffset with StateEpoch and nothing in flight (what AlterShareGroupOffsets and a share-partition's first
start write). See share_state_requests.py for routing and authorisation.
"""

from __future__ import annotations

from ..share.state_records import ShareState
from ..wire.messages import initialize_share_group_state as API
from .share_state_requests import answer

R = API.InitializeShareGroupStateResponse


def handle(ctx, req: API.InitializeShareGroupStateRequest):
    async def initialize(shard, key, p):
        await shard.write_and_wait(key, ShareState(p.start_offset, p.state_epoch))
        return {}
    return answer(ctx, req, R, "InitializeStateResult", initialize)
