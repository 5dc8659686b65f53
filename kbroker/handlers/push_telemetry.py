"""PushTelemetry (72): v0 (KIP-714). The checks of client_metrics.py (instance id, terminating, push interval,
subscription id, compression type, ``telemetry.max.bytes``), then the OTLP payload is decompressed, decoded and
kept as the client instance's latest push (client_telemetry.py), which the control plane shows; a payload that
does not decode is INVALID_RECORD, one that decompresses beyond ``telemetry.max.bytes`` TELEMETRY_TOO_LARGE.
An empty payload (a terminating client with nothing left to say) is accepted and not kept.
"""

from __future__ import annotations

from ..client_metrics import client_attributes, client_metrics_manager
from ..client_telemetry import decode_metrics, telemetry_store
from ..errors import KafkaError
from ..wire.messages import push_telemetry as API

R = API.PushTelemetryResponse


def handle(ctx, req: API.PushTelemetryRequest) -> R:
    broker = ctx.broker
    max_bytes = broker.config.telemetry_max_bytes
    payload = bytes(req.metrics or b"")
    try:
        inst = client_metrics_manager(broker).check_push(req.client_instance_id, req.subscription_id, req.terminating,
                                                         req.compression_type, len(payload), max_bytes,
                                                         client_attributes(ctx))
        if payload:
            try:
                decoded = decode_metrics(payload, req.compression_type, max_bytes)
            except KafkaError as e:
                inst.last_error = e.code
                raise
            telemetry_store(broker).keep(inst, decoded, req.terminating)
            broker.changes.notify()
    except KafkaError as e:
        return R(error_code=e.code)
    return R(error_code=0)
