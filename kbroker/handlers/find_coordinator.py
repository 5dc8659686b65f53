"""FindCoordinator (10): v0-6. A group id's coordinator is the leader of its partition of ``__consumer_offsets``,
a transactional id's the leader of its partition of ``__transaction_state`` (``abs(hashCode) % partitions``,
coordinator/runtime.py). The first request that needs the topic starts its creation and is answered
COORDINATOR_NOT_AVAILABLE, as Kafka answers it; so is a key whose partition has no live leader. The
coordinator that is still loading its partition answers the next request COORDINATOR_LOAD_IN_PROGRESS; a
broker that is not the coordinator answers NOT_COORDINATOR. v4+ batches keys, each placed on its own. Key type
0 is a group (a share consumer finds its share group's coordinator so, as Kafka's does), 1 a transactional id,
2 (v6+, KIP-932) the share coordinator of a share-partition's state, keyed "groupId:topicId:partition" and
placed on ``__share_group_state`` (share/share_coordinator.py); a malformed share key is INVALID_REQUEST.
Authorisation, as KafkaApis: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED); CLUSTER_ACTION for a share key (CLUSTER_AUTHORIZATION_FAILED). The coordinator is named by its listener of the client's listener name.
"""

from __future__ import annotations

from ..coordinator.runtime import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from ..errors import ErrorCode
from ..security import acl
from ..share.share_coordinator import SHARE_STATE_TOPIC, parse_share_state_key
from ..wire.messages import find_coordinator as API

R = API.FindCoordinatorResponse
GROUP, TRANSACTION, SHARE = 0, 1, 2
_NOT_AVAILABLE = (ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.", -1, "", -1)


def _check(ctx, key_type: int, key: str) -> tuple[int, str | None]:
    if key_type == SHARE and ctx.version >= 6:
        if not ctx.authorize_cluster(acl.CLUSTER_ACTION):
            return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None
        if parse_share_state_key(key) is None:
            return ErrorCode.INVALID_REQUEST, f"Invalid coordinator key {key} for key type {key_type}"
        return 0, None
    if key_type == GROUP and not ctx.authorize(acl.DESCRIBE, acl.GROUP, key):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, None
    if key_type == TRANSACTION and not ctx.authorize(acl.DESCRIBE, acl.TRANSACTIONAL_ID, key):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None
    if key_type == GROUP:
        return 0, None
    if key_type == TRANSACTION:
        if ctx.broker.transactions_enabled:
            return 0, None
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "Transactions are not served by this broker yet"
    return ErrorCode.INVALID_REQUEST, f"Unsupported key type {key_type}"


def _locate(ctx, key_type: int, key: str) -> tuple[int, str | None, int, str, int]:
    """(error, message, node, host, port) of the key's coordinator, by the client's listener."""
    err, msg = _check(ctx, key_type, key)
    if err:
        return err, msg, -1, "", -1
    broker = ctx.broker
    if key_type == GROUP:
        topic, index = broker.coordinator_topic_or_create(OFFSETS_TOPIC), broker.groups.partition_for(key)
    elif key_type == SHARE:
        topic = broker.coordinator_topic_or_create(SHARE_STATE_TOPIC)
        index = broker.share_coordinator.partition_for(parse_share_state_key(key))
    else:
        topic = broker.coordinator_topic_or_create(TRANSACTION_STATE_TOPIC)
        index = broker.transactions.partition_for(key)
    if topic is None or index >= len(topic.partitions):
        return _NOT_AVAILABLE
    node = topic.partitions[index].leader_id
    endpoint = ctx.endpoint(node) if node >= 0 else None
    if endpoint is None:
        return _NOT_AVAILABLE
    return 0, None, node, endpoint[0], endpoint[1]


def handle(ctx, req: API.FindCoordinatorRequest) -> R:
    if ctx.version < 4:
        err, msg, node, host, port = _locate(ctx, req.key_type, req.key)
        return R(error_code=err, error_message=msg, node_id=node, host=host, port=port)
    coordinators = []
    for key in req.coordinator_keys:
        err, msg, node, host, port = _locate(ctx, req.key_type, key)
        coordinators.append(R.Coordinator(key=key, node_id=node, host=host, port=port, error_code=err,
                                          error_message=msg))
    return R(coordinators=coordinators)
