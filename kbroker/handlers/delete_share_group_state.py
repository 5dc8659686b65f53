"""DeleteShareGroupState (86): v0 (KIP-932), broker to share coordinator: a share-partition's state is deleted
(a tombstone, answered once replicated), when its group or its offsets are deleted. See share_state_requests.py
for routing and authorisation.
"""

from __future__ import annotations

from ..wire.messages import delete_share_group_state as API
from .share_state_requests import answer

R = API.DeleteShareGroupStateResponse


def handle(ctx, req: API.DeleteShareGroupStateRequest):
    async def delete(shard, key, p):
        offset = shard.delete([key])
        if offset is not None:
            await shard.log.wait_replicated(offset)
        return {}
    return answer(ctx, req, R, "DeleteStateResult", delete)
