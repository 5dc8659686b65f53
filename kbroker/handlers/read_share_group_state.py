"""ReadShareGroupState (84): v0 (KIP-932), broker to share coordinator: a share-partition's state (state epoch,
start offset, state batches) when its leader starts it; a key never written answers start offset -1 and state
epoch 0 (Kafka's uninitialised state). See share_state_requests.py for routing and authorisation.
"""

from __future__ import annotations

from ..wire.messages import read_share_group_state as API
from .share_state_requests import answer

R = API.ReadShareGroupStateResponse


def handle(ctx, req: API.ReadShareGroupStateRequest):
    def read(shard, key, p):
        state = shard.read(key)
        if state is None:
            return {"state_epoch": 0, "start_offset": -1, "state_batches": []}
        return {"state_epoch": state.state_epoch, "start_offset": state.start_offset, "state_batches": [
            R.StateBatch(first_offset=f, last_offset=l, delivery_state=s, delivery_count=c)
            for f, l, s, c in state.state_batches]}
    return answer(ctx, req, R, "ReadStateResult", read)
