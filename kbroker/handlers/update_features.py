"""UpdateFeatures (57): v0-2 (KIP-584; v1 adds ValidateOnly and the upgrade type, v2 leaves out the per-feature
results). Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED). Each named feature is checked as
Kafka's FeatureControlManager checks it (features.check_update: the levels this broker supports, no downgrade
without a downgrade type, no upgrade with one); the first refusal answers the whole request with
INVALID_UPDATE_VERSION and its message (after "The update failed for all features since the following feature
had an error: ", as Kafka 4.4 words it) and changes nothing. A feature named twice takes its last entry, as
Kafka's QuorumController reads the request into a map. Otherwise the controller finalizes the new levels for
the cluster, durably, and raises the features epoch ApiVersions reports; ValidateOnly checks and changes
nothing. v0's AllowDowngrade means a safe downgrade. Success lists every feature with NONE (message "NONE", as
Kafka's ApiError.NONE) up to v1.
"""

from __future__ import annotations

from .. import features
from ..controller import eager, settled
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..wire.messages import update_features as API

R = API.UpdateFeaturesResponse
FAILED_FOR_ALL = "The update failed for all features since the following feature had an error: "


def handle(ctx, req: API.UpdateFeaturesRequest) -> R:
    if not ctx.authorize_cluster(acl.ALTER):
        return R(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, results=[])
    updates = {u.feature: u for u in req.feature_updates}
    controller = ctx.broker.controller
    supported = features.supported_features(ctx.broker.api_versions)
    levels, _epoch = controller.feature_levels()
    finalized = features.finalized_features(supported, levels)
    changes = {}
    try:
        for u in updates.values():
            upgrade_type = u.upgrade_type if ctx.version >= 1 else (
                features.SAFE_DOWNGRADE if u.allow_downgrade else features.UPGRADE)
            features.check_update(controller.controller_id, supported, finalized, u.feature, u.max_version_level,
                                  upgrade_type)
            changes[u.feature] = u.max_version_level
    except KafkaError as e:
        return R(error_code=e.code, results=[],
                 error_message=FAILED_FOR_ALL + e.message)
    response = R(error_code=0, error_message=None,
                 results=[R.UpdatableFeatureResult(feature=n, error_code=0, error_message="NONE") for n in updates])
    if changes and not req.validate_only:
        change = eager(controller.set_feature_levels(changes))
        if not change.done():  # a database's: answered once it is written
            return settled([change], response)
        change.result()
    return response
