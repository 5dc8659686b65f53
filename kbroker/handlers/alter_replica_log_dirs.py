"""AlterReplicaLogDirs (34): v1-2 (v0 is gone from Kafka 4). Moves a replica to another of the broker's log
directories (kafka-reassign-partitions --reassignment-json-file with "log_dirs"). kbroker has one log directory
per broker (describe_log_dirs.log_dir), so a replica can only be asked to stay where it is; each partition's
answer is Kafka's ReplicaManager.alterReplicaLogDirs's:

- a path that is not the broker's log directory: LOG_DIR_NOT_FOUND (checked first, as Kafka's
  ``isLogDirOnline``);
- a topic or partition the cluster does not have: UNKNOWN_TOPIC_OR_PARTITION;
- a partition with no replica on this broker: REPLICA_NOT_AVAILABLE (Kafka keeps that code here for what is
  NOT_LEADER_OR_FOLLOWER elsewhere);
- a replica already in the directory: no error, nothing moves (no future replica: DescribeLogDirs shows no
  ``is_future_key`` log).

Needs ALTER on the cluster, else every partition is CLUSTER_AUTHORIZATION_FAILED (KafkaApis). A partition
named under two paths is answered once, for its last path, as Kafka keys the request by partition.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import alter_replica_log_dirs as API
from .describe_log_dirs import log_dir

R = API.AlterReplicaLogDirsResponse


def _error(ctx, path: str, topic_name: str, index: int) -> int:
    if path != log_dir(ctx.broker):
        return ErrorCode.LOG_DIR_NOT_FOUND
    topic = ctx.broker.topics.get(topic_name)
    if topic is None or not 0 <= index < len(topic.partitions):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if topic.partitions[index].log is None:
        return ErrorCode.REPLICA_NOT_AVAILABLE
    return 0


def handle(ctx, req: API.AlterReplicaLogDirsRequest) -> R:
    allowed = ctx.authorize_cluster(acl.ALTER)
    wanted: dict[tuple[str, int], str] = {}  # (topic, partition) -> path, in the order first named
    for d in req.dirs:
        for t in d.topics:
            for p in t.partitions:
                wanted[(t.name, p)] = d.path
    by_topic: dict[str, list] = {}
    for (name, index), path in wanted.items():
        code = _error(ctx, path, name, index) if allowed else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        by_topic.setdefault(name, []).append(R.AlterReplicaLogDirPartitionResult(partition_index=index,
                                                                                  error_code=code))
    return R(throttle_time_ms=0, results=[R.AlterReplicaLogDirTopicResult(topic_name=name, partitions=parts)
                                          for name, parts in by_topic.items()])
