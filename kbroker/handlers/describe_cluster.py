"""DescribeCluster (60): v0-2 (v2: IncludeFencedBrokers, KIP-1073: a registered broker that is stopped or dead,
Kafka's fenced broker, is listed too, with IsFenced). Every live broker of the cluster; the controller id is the controller's (controller.py). v1's endpoint type 1 (brokers) is
the only one served; 2 (controllers) gets MISMATCHED_ENDPOINT_TYPE, any other UNSUPPORTED_ENDPOINT_TYPE, in
an answer that says the broker's own type and no cluster id, as a Kafka broker's.
Brokers are described by their listener of the client's listener name. The cluster's authorised operations are
filled when asked for (0 without DESCRIBE on the cluster), as Kafka's AuthHelper does.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import describe_cluster as API

R = API.DescribeClusterResponse


def handle(ctx, req: API.DescribeClusterRequest) -> R:
    broker = ctx.broker
    if req.endpoint_type == 2:
        return R(error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE, endpoint_type=1, cluster_id="",
                 error_message="The request was sent to an endpoint of type BROKER, but we wanted an endpoint of "
                               "type CONTROLLER")
    if req.endpoint_type != 1:
        return R(error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE, endpoint_type=1, cluster_id="",
                 error_message=f"Unsupported endpoint type {req.endpoint_type}")
    ops = -2147483648  # not requested
    if req.include_cluster_authorized_operations:
        ops = ctx.authorized_operations(acl.CLUSTER, acl.CLUSTER_NAME) if ctx.authorize_cluster(acl.DESCRIBE) else 0
    return R(
        cluster_authorized_operations=ops,
        error_code=0,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=broker.controller.controller_id,
        brokers=[R.DescribeClusterBroker(broker_id=n, host=host, port=port, rack=rack, is_fenced=fenced)
                 for n, host, port, rack, fenced in ctx.registered_brokers() if req.include_fenced_brokers or not fenced],
    )
