"""ShareAcknowledge (79): v1-2, a share group member's acknowledgements outside a fetch (KIP-932). v0 was Kafka
4.0's early access and is not served. v2 adds IsRenewAck and the RENEW type (KIP-1222) and answers
AcquisitionLockTimeoutMs.

The request runs in the member's share session without changing its partitions: epoch 0 is
INVALID_SHARE_SESSION_EPOCH (a ShareAcknowledge cannot open a session), a missing session
SHARE_SESSION_NOT_FOUND, another epoch than the expected one INVALID_SHARE_SESSION_EPOCH; -1 closes the session
after the acknowledgements, releasing what the member still holds. Each partition's acknowledgements are
checked and applied as a ShareFetch's (share_acks.py) and answered once written.
Authorisation, as KafkaApis: READ on the group (GROUP_AUTHORIZATION_FAILED) and READ on each topic.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..share.manager import FINAL_EPOCH
from ..wire.messages import share_acknowledge as API
from .leader_hints import LeaderHints
from .share_acks import acknowledge_and_persist

R = API.ShareAcknowledgeResponse


def handle(ctx, req: API.ShareAcknowledgeRequest):
    lock_ms = ctx.broker.share_settings(req.group_id or "").record_lock_duration_ms
    if not ctx.authorize(acl.READ, acl.GROUP, req.group_id or ""):
        return R(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, acquisition_lock_timeout_ms=lock_ms)
    if not req.group_id or not req.member_id:
        return R(error_code=ErrorCode.INVALID_REQUEST, acquisition_lock_timeout_ms=lock_ms,
                 error_message="a share acknowledgement needs a group id and member id")
    try:
        session = ctx.broker.share.acknowledge_session(req.group_id, req.member_id, req.share_session_epoch)
    except KafkaError as e:
        return R(error_code=e.code, error_message=e.message, acquisition_lock_timeout_ms=lock_ms)
    return _acknowledge(ctx, req, session, lock_ms)


async def _acknowledge(ctx, req, session, lock_ms: int) -> R:
    results = await acknowledge_and_persist(ctx, req.group_id, req.member_id, req.topics)
    if req.share_session_epoch == FINAL_EPOCH:
        ctx.broker.share.close_session(session)
    hints = LeaderHints(ctx, R)
    topics = []
    for t in req.topics:
        topic = ctx.broker.topics.by_id.get(t.topic_id)
        parts = []
        for p in t.partitions:
            code, message = results.get((t.topic_id, p.partition_index), (0, None))
            leader = hints.current_leader(topic, p.partition_index, code) or R.LeaderIdAndEpoch()
            parts.append(R.PartitionData(partition_index=p.partition_index, error_code=code, error_message=message,
                                         current_leader=leader))
        topics.append(R.ShareAcknowledgeTopicResponse(topic_id=t.topic_id, partitions=parts))
    return R(throttle_time_ms=0, error_code=0, acquisition_lock_timeout_ms=lock_ms, responses=topics,
             node_endpoints=hints.node_endpoints())
