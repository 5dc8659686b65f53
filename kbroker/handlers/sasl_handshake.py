"""SaslHandshake (17): v0-1. The client names its mechanism; the answer lists the listener's enabled ones.
v0: the SASL tokens that follow are raw size-prefixed frames (Kafka still serves v0 clients); v1: they travel
in SaslAuthenticate requests. An unsupported mechanism is answered UNSUPPORTED_SASL_MECHANISM and the
connection closed. On a connection that is not SASL, or already authenticated without a session lifetime,
the answer is ILLEGAL_SASL_STATE, as Kafka's KafkaApis gives; with a lifetime it starts re-authentication
(KIP-368). The state machine is security/authenticator.py.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.messages import sasl_handshake as API

R = API.SaslHandshakeResponse


def handle(ctx, req: API.SaslHandshakeRequest) -> R:
    if ctx.session is None:
        return R(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    err, mechanisms = ctx.session.handshake(req.mechanism, ctx.version)
    return R(error_code=err, mechanisms=mechanisms)
