"""GetTelemetrySubscriptions (71): v0 (KIP-714). A client instance id for a client asking with the zero id, the
subscription id, the metric name prefixes and push interval of the subscriptions that match the client, the
compression types a push may use (zstd, lz4, gzip, snappy), ``telemetry.max.bytes`` and delta temporality;
THROTTLING_QUOTA_EXCEEDED for a client asking again before its push interval (client_metrics.py).
"""

from __future__ import annotations

from ..client_metrics import ACCEPTED_COMPRESSION_TYPES, client_attributes, client_metrics_manager
from ..errors import KafkaError
from ..wire.messages import get_telemetry_subscriptions as API

R = API.GetTelemetrySubscriptionsResponse


def handle(ctx, req: API.GetTelemetrySubscriptionsRequest) -> R:
    try:
        inst = client_metrics_manager(ctx.broker).get_subscriptions(req.client_instance_id, client_attributes(ctx))
    except KafkaError as e:
        return R(error_code=e.code, accepted_compression_types=[], requested_metrics=[])
    return R(error_code=0, client_instance_id=inst.instance_id, subscription_id=inst.subscription_id,
             accepted_compression_types=list(ACCEPTED_COMPRESSION_TYPES), push_interval_ms=inst.push_interval_ms,
             telemetry_max_bytes=ctx.broker.config.telemetry_max_bytes, delta_temporality=True,
             requested_metrics=list(inst.metrics))
