"""DescribeClientQuotas (48): v0-1 (v1 is flexible). The quota entities a filter selects (client_quotas.describe:
components matching a type exactly, its default or any name; ``strict`` leaves out entities with other types)
with their values, from the controller's quotas. A bad filter is answered with its error code and message and no
entries (Kafka: INVALID_REQUEST, UNSUPPORTED_VERSION for an unknown entity type). Needs DESCRIBE_CONFIGS on the
cluster (CLUSTER_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from .. import client_quotas
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import describe_client_quotas as API

R = API.DescribeClientQuotasResponse


def handle(ctx, req: API.DescribeClientQuotasRequest) -> R:
    if not ctx.authorize_cluster(acl.DESCRIBE_CONFIGS):
        return R(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                 error_message="Cluster authorization failed.", entries=None)
    try:
        found = client_quotas.describe(ctx.broker.controller.client_quotas(), req.components, req.strict)
    except KafkaError as e:
        return R(throttle_time_ms=0, error_code=e.code, error_message=e.message, entries=None)
    return R(throttle_time_ms=0, error_code=0, error_message=None, entries=[
        R.EntryData(entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                    values=[R.ValueData(key=k, value=v) for k, v in sorted(values.items())])
        for entity, values in found])
