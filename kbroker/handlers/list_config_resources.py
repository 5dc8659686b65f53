"""ListConfigResources (74): v0-1. v0 (which Kafka 3.7 named ListClientMetricsResources, KIP-714) lists the
client metrics subscriptions. v1 (KIP-1142) takes resource types and lists, as a real Kafka 4.4.0 answers:
topics (2), the live brokers by node id (4, and again as broker loggers, 8), client metrics subscriptions
(16) and groups with dynamic configs (32: none, kbroker keeps no group configs); no types means all of
these, another type is UNSUPPORTED_VERSION with nothing listed. Needs DESCRIBE_CONFIGS on the cluster (else
CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..security import acl
from ..wire.messages import list_config_resources as API

R = API.ListConfigResourcesResponse
TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
SUPPORTED = (TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP)


def handle(ctx, req: API.ListConfigResourcesRequest) -> R:
    if not ctx.authorize_cluster(acl.DESCRIBE_CONFIGS):
        return R(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, config_resources=[])
    types = [CLIENT_METRICS] if ctx.version == 0 else list(req.resource_types) or list(SUPPORTED)
    if any(t not in SUPPORTED for t in types):
        return R(error_code=ErrorCode.UNSUPPORTED_VERSION, config_resources=[])
    broker = ctx.broker
    out = []
    for t in dict.fromkeys(types):
        if t == TOPIC:
            names = list(broker.topics.by_name)
        elif t in (BROKER, BROKER_LOGGER):
            names = [str(n) for n in broker.controller.live_broker_ids()]
        elif t == CLIENT_METRICS:
            names = sorted(broker.controller.client_metrics_subscriptions())
        else:
            names = []
        out.extend(R.ConfigResource(resource_name=n, resource_type=t) for n in names)
    return R(error_code=0, config_resources=out)
