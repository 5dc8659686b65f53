"""ApiVersions (18): v0-4. v3 adds the client's software name and version (KIP-511), checked against
Kafka's pattern (INVALID_REQUEST otherwise, with no API ranges, as Kafka answers). A request above v4 is
answered by the server with
UNSUPPORTED_VERSION and a v0 body (see server.py). The answer is built from the handler table.

Features: kbroker finalizes no feature levels, so clients see no ``transaction.version`` >= 2 and use the
classic transaction protocol (KIP-890 v2 is not implemented).
"""

from __future__ import annotations

import re

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
    return API.ApiVersionsResponse(error_code=0, api_keys=_api_keys(ctx.broker), finalized_features_epoch=-1)


def unsupported_version_response(broker) -> API.ApiVersionsResponse:
    """The v0 body for an ApiVersions request newer than we speak: our ApiVersions range only (KIP-511)."""
    lo, hi = broker.api_versions[API.API_KEY]
    return API.ApiVersionsResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[API.ApiVersionsResponse.ApiVersion(api_key=API.API_KEY, min_version=lo, max_version=hi)],
    )
