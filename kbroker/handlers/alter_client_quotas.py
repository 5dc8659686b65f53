"""AlterClientQuotas (49): v0-1 (v1 is flexible). Sets or removes quota values of user / client-id / ip entities
(a null name is the default), each entry checked as Kafka 4.4's ClientQuotaControlManager checks it (entity types
and their combination, empty names, the keys an entity may set, values above 0, whole numbers for the byte and
connection rates: INVALID_REQUEST with Kafka's messages). The valid entries are applied together, in one change of
the controller, unless ``validate_only``. Needs ALTER_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED for
every entry), as KafkaApis.

As Kafka's, the answer has one entry per distinct entity: an entity named a second time is answered "Ignoring
duplicate entity" (its first change stands), and so is an entry naming one key twice (Kafka's duplicate-key
message is overwritten by that one; nothing of the entry is applied).
"""

from __future__ import annotations

from .. import client_quotas
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import alter_client_quotas as API

R = API.AlterClientQuotasResponse


async def handle(ctx, req: API.AlterClientQuotasRequest) -> R:
    allowed = ctx.authorize_cluster(acl.ALTER_CONFIGS)
    controller = ctx.broker.controller
    current = controller.client_quotas()
    changes: dict = {}
    results: dict = {}  # entity -> (pairs, error code, message), in the order entities are first named
    for entry in req.entries:
        pairs = [(e.entity_type, e.entity_name) for e in entry.entity]
        entity = client_quotas.entity_of(pairs)
        keys = [op.key for op in entry.ops]
        if allowed and (entity in results or len(set(keys)) != len(keys)):
            results[entity] = (results[entity][0] if entity in results else pairs, ErrorCode.INVALID_REQUEST,
                               f"Ignoring duplicate entity {client_quotas.entity_text(pairs)}")
            continue
        err, msg = 0, None
        try:
            if not allowed:
                raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
            values = client_quotas.altered_values(client_quotas.check_entity(pairs), current.get(entity, {}),
                                                  entry.ops)
            if values != current.get(entity, {}):
                changes[entity] = values
        except KafkaError as e:
            err, msg = e.code, e.message
        results[entity] = (pairs, err, msg)
    if changes and not req.validate_only:
        with controller.batch():
            await controller.alter_client_quotas(changes)
    return R(throttle_time_ms=0, entries=[
        R.EntryData(error_code=err, error_message=msg, entity=[
            R.EntityData(entity_type=t, entity_name=n) for t, n in client_quotas.java_order(pairs)])
        for pairs, err, msg in results.values()])
