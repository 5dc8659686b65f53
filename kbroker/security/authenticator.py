"""One connection's authentication, as Kafka's SaslServerAuthenticator runs it; sans-IO.

State rules (everything that moves a connection between states is here):

    HANDSHAKE_OR_VERSIONS --ApiVersions answered--> HANDSHAKE --SaslHandshake--> AUTHENTICATE
    HANDSHAKE_OR_VERSIONS --SaslHandshake--> AUTHENTICATE
    AUTHENTICATE --SaslAuthenticate (or a raw token after SaslHandshake v0) ... complete--> COMPLETE
    COMPLETE --SaslHandshake while the session can be re-authenticated (KIP-368)--> AUTHENTICATE (again)
    anything --failure--> FAILED (the answer, if there is one, is written; then the connection is closed)

Before COMPLETE a SASL listener serves ApiVersions (once, before the handshake) and the SASL exchange only;
any other request closes the connection ("Unexpected Kafka request of type ... during SASL handshake"), as
Kafka does; after SaslHandshake v1, such a request is first answered with its own error response
(ILLEGAL_SASL_STATE), as Kafka's SaslServerAuthenticator does, then the connection closes. SaslHandshake v0 means the tokens that follow are raw size-prefixed frames, not
SaslAuthenticate requests; a failure there just closes. A session has an expiry when
``connections.max.reauth.ms`` is set or the credential expires (an OAUTHBEARER token's ``exp``): the
lifetime is told in SaslAuthenticate v1+ answers, and once it is past, any request but a re-authenticating
SaslHandshake closes the connection. Re-authentication must keep the mechanism and the principal, and may
not start twice within a second (KafkaChannel.MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS).

PLAINTEXT and SSL listeners start COMPLETE: the principal is ``User:ANONYMOUS`` or, with a verified client
certificate, ``User:<its subject>``; there SaslHandshake and SaslAuthenticate answer ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..errors import ErrorCode
from . import SaslFailure, jaas, scram
from .credentials import CredentialStore, PlainUsers
from .sasl import OAuthBearerUnsecuredServer, PlainServer, ScramServerAdapter

log = logging.getLogger("kbroker.security")

ANONYMOUS = "User:ANONYMOUS"
SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 17, 18, 36
MIN_REAUTH_INTERVAL_S = 1.0

HANDSHAKE_OR_VERSIONS, HANDSHAKE, AUTHENTICATE, COMPLETE, FAILED = (
    "HANDSHAKE_OR_VERSIONS", "HANDSHAKE", "AUTHENTICATE", "COMPLETE", "FAILED")


class AuthenticationError(Exception):
    """The connection must be closed now (said in the log, never to the client). ``answered``: as Kafka's
    SaslServerAuthenticator does for a request other than SaslAuthenticate after SaslHandshake v1, the
    request is first answered with its own error response (ILLEGAL_SASL_STATE), then the connection closes."""

    def __init__(self, message: str, answered: bool = False):
        super().__init__(message)
        self.answered = answered


class ListenerAuth:
    """What one SASL listener authenticates with: its mechanisms, its JAAS PLAIN users, the broker's
    credential store, its OAUTHBEARER validator options and ``connections.max.reauth.ms``. Clocks are
    attributes so that tests can move time."""

    def __init__(self, listener, credentials: CredentialStore):
        self.listener = listener
        self.credentials = credentials
        self.mechanisms = listener.sasl_mechanisms()
        self.plain_users = PlainUsers()
        self.oauth_options: dict[str, str] = {}
        self.max_reauth_ms: dict[str, int] = {}
        for mech in self.mechanisms:
            text = listener.mechanism_setting(mech, "sasl.jaas.config")
            entry = jaas.parse_jaas_config(text) if text else None
            if mech == "PLAIN" and entry is not None:
                self.plain_users = PlainUsers(jaas.plain_users(entry))
            if mech == "OAUTHBEARER" and entry is not None:
                self.oauth_options = {k: v for k, v in entry.options.items() if k.startswith("unsecuredValidator")}
            self.max_reauth_ms[mech] = int(listener.mechanism_setting(mech, "connections.max.reauth.ms") or 0)
        self.monotonic: Callable[[], float] = time.monotonic
        self.wall_ms: Callable[[], float] = lambda: time.time() * 1000

    def verify_plain(self, user: str, password: str) -> bool:
        return self.plain_users.verify(user, password) or self.credentials.verify_plain(user, password)

    def new_server(self, mechanism: str):
        if mechanism == "PLAIN":
            return PlainServer(self.verify_plain)
        if mechanism in scram.MECHANISMS:
            return ScramServerAdapter(scram.MECHANISMS[mechanism],
                                      lambda user: self.credentials.scram(mechanism, user))
        if mechanism == "OAUTHBEARER":
            return OAuthBearerUnsecuredServer(self.oauth_options, now_ms=lambda: self.wall_ms())
        raise ValueError(mechanism)


class Session:
    """The authentication state of one connection."""

    def __init__(self, auth: ListenerAuth | None = None, principal: str = ANONYMOUS):
        self.auth = auth
        self.principal = principal
        self.state = HANDSHAKE_OR_VERSIONS if auth is not None else COMPLETE
        self.mechanism: str | None = None
        self.raw_tokens = False  # SaslHandshake v0: tokens arrive as raw frames
        self.failure: str | None = None  # set when the connection must close after the answer is written
        self.expires_at: float | None = None  # monotonic seconds
        self.supports_reauth = False  # the client has used SaslAuthenticate v1+
        self._server = None
        self._reauth_from: tuple[str, str] | None = None  # (mechanism, principal) while re-authenticating
        self._last_reauth_start: float | None = None
        self.client_software: tuple[str, str] | None = None  # ApiVersions v3+'s name and version (KIP-511)

    @property
    def authenticated(self) -> bool:
        return self.state == COMPLETE

    # -- what the server asks before dispatching ---------------------------------------------------

    def admit(self, api_key: int, api_name: str) -> None:
        """Raises AuthenticationError when this request may not be served now (the connection closes)."""
        if self.state == COMPLETE:
            if self.expires_at is not None and api_key != SASL_HANDSHAKE and self.auth.monotonic() > self.expires_at:
                raise AuthenticationError("SASL session expired (connections.max.reauth.ms or credential "
                                          "lifetime) and the client did not re-authenticate")
            return
        if self.state == HANDSHAKE_OR_VERSIONS and api_key in (API_VERSIONS, SASL_HANDSHAKE):
            return
        if self.state == HANDSHAKE and api_key == SASL_HANDSHAKE:
            return
        if self.state == AUTHENTICATE and api_key == SASL_AUTHENTICATE and not self.raw_tokens:
            return
        during = "handshake" if self.state in (HANDSHAKE_OR_VERSIONS, HANDSHAKE) else "authentication"
        if api_key == API_VERSIONS and self.state == HANDSHAKE:
            raise AuthenticationError(f"Unexpected ApiVersions request received during SASL {during}")
        raise AuthenticationError(f"Unexpected Kafka request of type {api_name} during SASL {during}.",
                                  answered=self.state == AUTHENTICATE and not self.raw_tokens)

    def refuse(self, message: str) -> None:
        """Fail the exchange: the answer to the request that broke it is the last (admit's ``answered``)."""
        self._fail(message)

    def api_versions_answered(self, ok: bool) -> None:
        if ok and self.state == HANDSHAKE_OR_VERSIONS:
            self.state = HANDSHAKE

    # -- SaslHandshake ------------------------------------------------------------------------------

    def handshake(self, mechanism: str, version: int) -> tuple[int, list[str]]:
        """(error code, enabled mechanisms) for a SaslHandshake request."""
        if self.auth is None:
            return ErrorCode.ILLEGAL_SASL_STATE, []
        if self.state == COMPLETE:
            if not self._may_reauthenticate():
                return ErrorCode.ILLEGAL_SASL_STATE, []
            self._reauth_from = (self.mechanism, self.principal)
            self._last_reauth_start = self.auth.monotonic()
        mechanisms = list(self.auth.mechanisms)
        if mechanism not in mechanisms:
            self._fail(f"unsupported SASL mechanism {mechanism!r} (enabled: {', '.join(mechanisms)})")
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms
        self.raw_tokens = version == 0
        self.state = AUTHENTICATE
        if self._reauth_from is not None and mechanism != self._reauth_from[0]:
            # Kafka answers the handshake, then fails the exchange (REAUTH_BAD_MECHANISM).
            self._server = None
            self.mechanism = mechanism
            return ErrorCode.NONE, mechanisms
        self.mechanism = mechanism
        self._server = self.auth.new_server(mechanism)
        return ErrorCode.NONE, mechanisms

    def _may_reauthenticate(self) -> bool:
        if self.expires_at is None:  # no session lifetime: re-authentication is off (KafkaChannel)
            return False
        last = self._last_reauth_start
        return last is None or self.auth.monotonic() - last >= MIN_REAUTH_INTERVAL_S

    # -- the tokens ---------------------------------------------------------------------------------

    def authenticate(self, token: bytes, version: int) -> tuple[int, str | None, bytes, int]:
        """(error code, error message, server token, session lifetime ms) for a SaslAuthenticate request."""
        if self.auth is None or self.state != AUTHENTICATE:
            return (ErrorCode.ILLEGAL_SASL_STATE,
                    "SaslAuthenticate request received after successful authentication", b"", 0)
        if version > 0:
            self.supports_reauth = True
        try:
            challenge = self._evaluate(token)
        except SaslFailure as e:
            message = self._failure_message(e)
            self._fail(message)
            return ErrorCode.SASL_AUTHENTICATION_FAILED, message, b"", 0
        return ErrorCode.NONE, None, challenge, self._finish() if self._server.complete else 0

    def raw_token(self, token: bytes) -> bytes:
        """The answer to a raw token (after SaslHandshake v0); AuthenticationError closes the connection."""
        try:
            challenge = self._evaluate(token)
        except SaslFailure as e:
            message = self._failure_message(e)
            self._fail(message)
            raise AuthenticationError(message) from None
        if self._server.complete:
            self._finish()
        return challenge

    def _evaluate(self, token) -> bytes:
        if self._server is None:  # re-authentication asked for another mechanism
            raise SaslFailure(f"SASL mechanism '{self.mechanism}' requested by client is not supported for "
                              f"re-authentication of mechanism '{self._reauth_from[0]}'", public=True)
        challenge = self._server.evaluate(bytes(token))
        if self._server.complete:
            principal = "User:" + self._server.authorization_id
            if self._reauth_from is not None and principal != self._reauth_from[1]:
                raise SaslFailure(f"Cannot change principals during re-authentication from "
                                  f"{self._reauth_from[1]}: {principal}", public=True)
            self.principal = principal
        return challenge

    def _finish(self) -> int:
        """Completes authentication; the session lifetime in ms (0: none), as Kafka computes it."""
        now_ms = self.auth.wall_ms()
        expiry_ms = self._server.credential_expiry_ms
        max_reauth = self.auth.max_reauth_ms.get(self.mechanism, 0)
        lifetime = 0
        self.expires_at = None
        if expiry_ms is not None or max_reauth > 0:
            if expiry_ms is None:
                lifetime = max_reauth
            elif max_reauth <= 0:
                lifetime = max(0, int(expiry_ms - now_ms))
            else:
                lifetime = max(0, min(int(expiry_ms - now_ms), max_reauth))
            self.expires_at = self.auth.monotonic() + lifetime / 1000
        self.state = COMPLETE
        self.raw_tokens = False
        self._server = None
        self._reauth_from = None
        return lifetime

    def _failure_message(self, e: SaslFailure) -> str:
        if e.public:
            return str(e)
        what = "re-authentication" if self._reauth_from is not None else "authentication"
        return f"Authentication failed during {what} due to invalid credentials with SASL mechanism {self.mechanism}"

    def _fail(self, message: str) -> None:
        self.state = FAILED
        self.failure = message
        self._server = None
