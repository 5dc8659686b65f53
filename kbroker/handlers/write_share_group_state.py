"""WriteShareGroupState (85): v0-1 (KIP-932; v1 adds DeliveryCompleteCount, KIP-1226, which kbroker derives from
the batches), broker to share coordinator: a share-partition's state, written as a ShareUpdate of what changed
or a ShareSnapshot (share_coordinator.py, as Kafka's ShareCoordinatorShard) and answered once replicated. kbroker's share-partition leaders send their whole in-flight window each time, so the write
replaces the state (Kafka's coordinator merges a partial write into it: the same result for a whole window).
A write older than the state it would replace is fenced, as Kafka's ShareCoordinatorShard checks: a leader
epoch below the written one FENCED_LEADER_EPOCH (a former leader of the share-partition), then a state epoch
below the written one FENCED_STATE_EPOCH (the state was initialised again meanwhile, e.g. by an alter of the
group's offsets). See share_state_requests.py for routing and authorisation.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..share.state_records import ShareState
from ..wire.messages import write_share_group_state as API
from .share_state_requests import answer

R = API.WriteShareGroupStateResponse


def handle(ctx, req: API.WriteShareGroupStateRequest):
    async def write(shard, key, p):
        written = shard.read(key)
        if written is not None and written.leader_epoch > p.leader_epoch:
            raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH,
                             f"leader epoch {p.leader_epoch} is older than the written {written.leader_epoch}")
        if written is not None and written.state_epoch > p.state_epoch:
            raise KafkaError(ErrorCode.FENCED_STATE_EPOCH,
                             f"state epoch {p.state_epoch} is older than the written {written.state_epoch}")
        batches = [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in p.state_batches]
        await shard.write_and_wait(key, ShareState(p.start_offset, p.state_epoch, p.leader_epoch,
                                                   state_batches=batches))
        return {}
    return answer(ctx, req, R, "WriteStateResult", write)
