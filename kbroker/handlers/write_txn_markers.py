"""WriteTxnMarkers (27): v1 (flexible; v0 is gone from Kafka 4, KIP-896; v2 is not served). Sent by a
transaction coordinator to each partition's leader: a COMMIT or ABORT control batch for the producer in every
partition named, written as the leader (``BrokerState.apply_txn_marker``; on a partition of
``__consumer_offsets`` the group coordinator then publishes or
drops the producer's pending offsets). Per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER when this
broker does not lead it (the coordinator finds the new leader and sends again), KAFKA_STORAGE_ERROR, or the
log's error (INVALID_PRODUCER_EPOCH for a marker older than the producer's epoch;
TRANSACTION_COORDINATOR_FENCED for a marker whose coordinator epoch is older than the last one written for
the producer: it comes from a coordinator that has since lost its __transaction_state partition).
Authorisation, as KafkaApis: CLUSTER_ACTION on the cluster (CLUSTER_AUTHORIZATION_FAILED), which brokers have.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import write_txn_markers as API

R = API.WriteTxnMarkersResponse
log = logging.getLogger("kbroker.handlers.write_txn_markers")


def _write(broker, topic: str, index: int, marker) -> int:
    t = broker.topics.get(topic)
    if t is None or not 0 <= index < len(t.partitions):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    try:
        written = broker.apply_txn_marker(topic, index, marker.producer_id, marker.producer_epoch,
                                          marker.transaction_result, marker.coordinator_epoch)
    except KafkaError as e:
        return e.code
    except OSError as e:
        log.error("storage error writing a transaction marker to %s-%d: %s", topic, index, e)
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.NONE if written else ErrorCode.NOT_LEADER_OR_FOLLOWER


def handle(ctx, req: API.WriteTxnMarkersRequest) -> R:
    allowed = ctx.authorize_cluster(acl.CLUSTER_ACTION)
    markers = []
    for m in req.markers:
        topics = []
        for t in m.topics:
            topics.append(R.WritableTxnMarkerTopicResult(name=t.name, partitions=[
                R.WritableTxnMarkerPartitionResult(
                    partition_index=i,
                    error_code=_write(ctx.broker, t.name, i, m) if allowed else ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                for i in t.partition_indexes]))
        markers.append(R.WritableTxnMarkerResult(producer_id=m.producer_id, topics=topics))
    ctx.broker.changes.notify()
    return R(markers=markers)
