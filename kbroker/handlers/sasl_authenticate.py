"""SaslAuthenticate (36): v0-2 (KIP-152; v1 adds session_lifetime_ms, KIP-368; v2 is flexible). Carries
the SASL tokens after a SaslHandshake v1. A failure is answered SASL_AUTHENTICATION_FAILED with Kafka's
message and the connection is then closed. Once authenticated, the answer is ILLEGAL_SASL_STATE ("SaslAuthenticate
request received after successful authentication"), as Kafka's KafkaApis gives. The state machine is
security/authenticator.py.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.messages import sasl_authenticate as API

R = API.SaslAuthenticateResponse


def handle(ctx, req: API.SaslAuthenticateRequest) -> R:
    if ctx.session is None:
        return R(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                 error_message="SaslAuthenticate request received after successful authentication",
                 auth_bytes=b"", session_lifetime_ms=0)
    err, message, token, lifetime_ms = ctx.session.authenticate(bytes(req.auth_bytes), ctx.version)
    # Kafka's answer to a successful step carries an empty message, not null.
    return R(error_code=err, error_message=message if err else "", auth_bytes=token, session_lifetime_ms=lifetime_ms)
