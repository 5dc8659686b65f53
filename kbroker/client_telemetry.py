"""What clients push with PushTelemetry (KIP-714), decoded and kept: the latest push per client instance, for
the control plane (GET /telemetry, ``Broker.control.telemetry()``). Kafka hands pushes to a
ClientTelemetryReceiver plugin (a metrics reporter); kbroker is its own receiver.

A push is OTLP ``MetricsData`` (opentelemetry-proto's generated classes decode it), compressed with the
codec the client names (records/compression.py). Each metric becomes ``{"name", "type", "unit",
"description", "points": [{"attributes", "value" (a number; for a histogram {"count", "sum"}), "time_ms"}]}``
and the resource's attributes are kept beside them, with what the broker knows of the client (its client
id, software name and version, address, the subscriptions it matched).
"""

from __future__ import annotations

import time
import uuid

from .errors import ErrorCode, KafkaError
from .records.compression import decompress


def _any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def _attributes(kvs) -> dict:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _number(p):
    return p.as_double if p.WhichOneof("value") == "as_double" else p.as_int


def _points(metric) -> tuple[str, list[dict]]:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind) if kind else None
    out = []
    for p in (data.data_points if data is not None else ()):
        if kind in ("gauge", "sum"):
            value = _number(p)
        else:  # histogram, exponential_histogram, summary
            value = {"count": p.count, "sum": p.sum}
        out.append({"attributes": _attributes(p.attributes), "value": value,
                    "time_ms": p.time_unix_nano // 1_000_000})
    return kind or "none", out


def decode_metrics(payload: bytes, compression: int, max_bytes: int) -> dict:
    """The pushed MetricsData as plain data; KafkaError TELEMETRY_TOO_LARGE when it decompresses to more than
    ``max_bytes``, INVALID_RECORD when it is not OTLP."""
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    try:
        raw = decompress(compression, payload)
    except Exception as e:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"telemetry does not decompress: {e}") from None
    if len(raw) > max_bytes:
        raise KafkaError(ErrorCode.TELEMETRY_TOO_LARGE,
                         f"Decompressed telemetry of {len(raw)} bytes is larger than the maximum allowed size "
                         f"[{max_bytes}]")
    data = metrics_pb2.MetricsData()
    try:
        data.ParseFromString(raw)
    except Exception as e:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"telemetry is not OTLP MetricsData: {e}") from None
    resource: dict = {}
    metrics = []
    for rm in data.resource_metrics:
        resource.update(_attributes(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind, points = _points(m)
                metrics.append({"name": m.name, "type": kind, "unit": m.unit, "description": m.description,
                                "points": points})
    return {"resource": resource, "metrics": metrics}


MAX_KEPT = 1000  # client instances whose latest push is kept; the longest silent goes first


class TelemetryStore:
    """The latest push of each client instance this broker received (of the MAX_KEPT most recent)."""

    def __init__(self):
        self.latest: dict[uuid.UUID, dict] = {}

    def keep(self, instance, decoded: dict, terminating: bool) -> None:
        a = instance.attributes
        self.latest.pop(instance.instance_id, None)  # the dict keeps the latest last
        if len(self.latest) >= MAX_KEPT:
            del self.latest[next(iter(self.latest))]
        self.latest[instance.instance_id] = {
            "client_instance_id": str(instance.instance_id), "client_id": a.get("client_id"),
            "client_software_name": a.get("client_software_name"),
            "client_software_version": a.get("client_software_version"),
            "client_source_address": a.get("client_source_address"),
            "subscription_id": instance.subscription_id, "subscriptions": list(instance.subscriptions),
            "push_interval_ms": instance.push_interval_ms, "terminating": terminating,
            "received_ms": int(time.time() * 1000), **decoded}

    def pushes(self) -> list[dict]:
        return list(self.latest.values())


def telemetry_store(broker) -> TelemetryStore:
    """The broker's TelemetryStore, made on first use."""
    found = getattr(broker, "client_telemetry", None)
    if found is None:
        found = broker.client_telemetry = TelemetryStore()
    return found
