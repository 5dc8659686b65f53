"""DescribeLogDirs (35): v1-5 (v5: IsCordoned, KIP-1066; always false: kbroker cordons no log directory).
One log directory (the data directory's absolute path, or "memory" for memory storage; ``log_dir``) with
the size of every partition asked for (a null topic list: all of them). Offset lag is 0: nothing is being
moved between directories. Needs DESCRIBE on the cluster: otherwise no directories and, from v3,
CLUSTER_AUTHORIZATION_FAILED (as KafkaApis).
"""

from __future__ import annotations

import os
import shutil

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_log_dirs as API

R = API.DescribeLogDirsResponse


def log_dir(broker) -> str:
    """The broker's one log directory as Kafka names one: an absolute path; "memory" without one."""
    return os.path.abspath(broker.config.data_dir) if broker.config.data_dir else "memory"


def handle(ctx, req: API.DescribeLogDirsRequest) -> R:
    broker = ctx.broker
    if not ctx.authorize_cluster(acl.DESCRIBE):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[])
    wanted = None if req.topics is None else {t.topic: set(t.partitions) for t in req.topics}
    topics = []
    for topic in broker.topics.by_name.values():
        if wanted is not None and topic.name not in wanted:
            continue
        parts = [R.DescribeLogDirsPartition(partition_index=p.index, partition_size=p.size_bytes(),
                                            offset_lag=0, is_future_key=False)
                 for p in topic.partitions
                 if p.log is not None and (wanted is None or p.index in wanted[topic.name])]
        topics.append(R.DescribeLogDirsTopic(name=topic.name, partitions=parts))
    total = usable = -1
    if broker.config.data_dir:
        usage = shutil.disk_usage(broker.config.data_dir)
        total, usable = usage.total, usage.free
    return R(throttle_time_ms=0, error_code=0, results=[
        R.DescribeLogDirsResult(error_code=0, log_dir=log_dir(broker), topics=topics, total_bytes=total,
                                usable_bytes=usable)])
