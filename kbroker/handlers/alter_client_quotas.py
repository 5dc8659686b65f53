"""AlterClientQuotas (49): v0-1 (v1 is flexible). Sets or removes quota values of user / client-id / ip entities
(a null name is the default), each entry checked as Kafka's ClientQuotaControlManager checks it (entity types and
their combination, empty names, duplicate entities and keys, the keys an entity may set, whole numbers for the
byte and connection rates: INVALID_REQUEST with Kafka's messages). The valid entries are applied together, in one
change of the controller, unless ``validate_only``. Needs ALTER_CONFIGS on the cluster
(CLUSTER_AUTHORIZATION_FAILED for every entry), as KafkaApis.
"""

from __future__ import annotations

from .. import client_quotas
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import alter_client_quotas as API

R = API.AlterClientQuotasResponse


def handle(ctx, req: API.AlterClientQuotasRequest) -> R:
    allowed = ctx.authorize_cluster(acl.ALTER_CONFIGS)
    controller = ctx.broker.controller
    current = controller.client_quotas()
    changes: dict = {}
    results = []
    seen = set()
    for entry in req.entries:
        pairs = [(e.entity_type, e.entity_name) for e in entry.entity]
        entity = client_quotas.entity_of(pairs)
        err, msg = 0, None
        try:
            if not allowed:
                raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
            keys = [op.key for op in entry.ops]
            duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
            if duplicate is not None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Duplicate quota key {duplicate} not updating quota "
                                                            f"for this entity {client_quotas.entity_text(entity)}")
            if entity in seen:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Ignoring duplicate entity {client_quotas.entity_text(entity)}")
            allowed_keys = client_quotas.check_entity(pairs)
            values = client_quotas.altered_values(allowed_keys, changes.get(entity, current.get(entity, {})),
                                                  entry.ops)
            if values != current.get(entity, {}):
                changes[entity] = values
        except KafkaError as e:
            err, msg = e.code, e.message
            changes.pop(entity, None)
        seen.add(entity)
        results.append(R.EntryData(error_code=err, error_message=msg, entity=[
            R.EntityData(entity_type=t, entity_name=n) for t, n in pairs]))
    if changes and not req.validate_only:
        with controller.batch():
            controller.alter_client_quotas(changes)
    return R(throttle_time_ms=0, entries=results)
