"""ApiVersions (18): v0-5. v3 adds the client's software name and version (KIP-511), checked against
Kafka's pattern (INVALID_REQUEST otherwise, with no API ranges, as Kafka answers). v5 (KIP-1242) adds the
cluster id and node id the client means to reach: both or neither (else INVALID_REQUEST), and given, they
must be this broker's (else REBOOTSTRAP_REQUIRED: the address led elsewhere); these errors list no APIs and
leave the connection open, as Kafka 4.4 answers. A request above v5 is answered by the server with
UNSUPPORTED_VERSION and a v0 body (see server.py). The answer is built from the handler table.

Features (v3+, KIP-584): the supported and finalized feature levels and their epoch (features.py says which
and why); ``transaction.version`` stays below 2, so clients use the classic transaction protocol. Before v4,
supported features whose lowest level is 0 are left out (KAFKA-17011).
"""

from __future__ import annotations

import re

from .. import features
from ..errors import ErrorCode
from ..wire.messages import api_versions as API

_SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


def _api_keys(broker):
    return [API.ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
            for k, (lo, hi) in sorted(broker.api_versions.items())]


def handle(ctx, req: API.ApiVersionsRequest) -> API.ApiVersionsResponse:
    if ctx.version >= 3 and not (_SOFTWARE.match(req.client_software_name or "")
                                 and _SOFTWARE.match(req.client_software_version or "")):
        # As Kafka's (ApiVersionsRequest.getErrorResponse): the error alone, no API ranges.
        return API.ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST, api_keys=[], finalized_features_epoch=-1)
    if ctx.version >= 5 and (req.cluster_id is None) != (req.node_id == -1):
        return API.ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST, api_keys=[])
    if ctx.version >= 5 and req.cluster_id is not None and (req.cluster_id != ctx.broker.cluster_id
                                                            or req.node_id != ctx.broker.node_id):
        return API.ApiVersionsResponse(error_code=ErrorCode.REBOOTSTRAP_REQUIRED, api_keys=[])
    if ctx.version >= 3 and ctx.session is not None:  # what client metrics subscriptions match on (KIP-714)
        ctx.session.client_software = (req.client_software_name, req.client_software_version)
    resp = API.ApiVersionsResponse(error_code=0, api_keys=_api_keys(ctx.broker), finalized_features_epoch=-1)
    if ctx.version >= 3:
        supported = features.supported_features(ctx.broker.api_versions)
        levels, epoch = ctx.broker.controller.feature_levels()
        resp.supported_features = [
            API.ApiVersionsResponse.SupportedFeatureKey(name=name, min_version=lo, max_version=hi)
            for name, (lo, hi) in sorted(supported.items()) if lo > 0 or ctx.version >= 4]
        resp.finalized_features = [
            API.ApiVersionsResponse.FinalizedFeatureKey(name=name, max_version_level=level, min_version_level=level)
            for name, level in sorted(features.finalized_features(supported, levels).items())]
        resp.finalized_features_epoch = epoch
    return resp


def unsupported_version_response(broker) -> API.ApiVersionsResponse:
    """The v0 body for an ApiVersions request newer than we speak: our ApiVersions range only (KIP-511)."""
    lo, hi = broker.api_versions[API.API_KEY]
    return API.ApiVersionsResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[API.ApiVersionsResponse.ApiVersion(api_key=API.API_KEY, min_version=lo, max_version=hi)],
    )
