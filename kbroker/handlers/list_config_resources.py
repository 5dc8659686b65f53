"""ListConfigResources (74): v0-1 (KIP-1142; v0 was ListClientMetricsResources, KIP-714). The config
resources a client may describe: v0 the client-metrics subscriptions only; v1 those of the types asked for,
every type kbroker has configs for when none is asked: topics (every topic, as Kafka lists them), brokers
(every live broker by node id), client-metrics subscriptions (KIP-714, client_metrics.py; what
``kafka-client-metrics.sh --list`` shows) and the groups that have group configs (IncrementalAlterConfigs on
GROUP resources, as Kafka's configurations image holds them). kbroker keeps no broker loggers, so that type
lists nothing. A type that has no configs at all is refused with UNSUPPORTED_VERSION,
as Kafka does. Needs DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED).
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
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, config_resources=[])
    types = set(req.resource_types) if ctx.version >= 1 and req.resource_types else \
        ({CLIENT_METRICS} if ctx.version == 0 else set(SUPPORTED))
    if types - set(SUPPORTED):
        return R(throttle_time_ms=0, error_code=ErrorCode.UNSUPPORTED_VERSION, config_resources=[])
    out = []
    if BROKER in types:
        out.extend(R.ConfigResource(resource_name=str(node), resource_type=BROKER)
                   for node, _host, _port, _rack in ctx.live_brokers())
    if TOPIC in types:
        out.extend(R.ConfigResource(resource_name=name, resource_type=TOPIC) for name in ctx.broker.topics.by_name)
    if CLIENT_METRICS in types:
        out.extend(R.ConfigResource(resource_name=name, resource_type=CLIENT_METRICS)
                   for name in sorted(ctx.broker.controller.client_metrics_subscriptions()))
    if GROUP in types:
        out.extend(R.ConfigResource(resource_name=name, resource_type=GROUP)
                   for name in sorted(ctx.broker.controller.group_configs()))
    return R(throttle_time_ms=0, error_code=0, config_resources=out)
