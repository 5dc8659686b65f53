"""The SASL mechanisms' server sides, each with one method: ``evaluate(client token) -> server token``.

A server is ``complete`` once the client is authenticated; ``authorization_id`` then names it and
``credential_expiry_ms`` (OAUTHBEARER only) says when its credential stops being valid (KIP-368 sessions end
there). Failures raise :class:`SaslFailure`.

* PLAIN (RFC 4616): ``authzid NUL username NUL password``; an authzid must equal the username.
* SCRAM-SHA-256/512: see scram.py.
* OAUTHBEARER (RFC 7628) with unsecured JWS tokens, checked as Kafka's default
  OAuthBearerUnsecuredValidatorCallbackHandler checks them: header ``alg`` "none", no signature, the
  principal claim (``sub``) present, ``exp`` present and not past, ``iat`` not in the future, ``exp`` after
  ``iat``, and the required scope, if configured, granted. Its JAAS options ``unsecuredValidator*`` are
  honoured. An invalid token is answered, as Kafka does, with an error challenge
  (``{"status":"invalid_token"}``); the client acknowledges it with a single 0x01 and the exchange fails.
  Unsecured tokens prove nothing: anyone may name any principal. Use OAUTHBEARER for tests only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Callable

from . import SaslFailure, scram

_PLAIN_GENERIC = "Authentication failed: Invalid username or password"


class PlainServer:
    mechanism = "PLAIN"

    def __init__(self, verify: Callable[[str, str], bool]):
        self.verify = verify
        self.complete = False
        self.authorization_id: str | None = None
        self.credential_expiry_ms: int | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            parts = bytes(token).decode("utf-8").split("\x00")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SASL/PLAIN response: not UTF-8") from None
        if len(parts) != 3:
            raise SaslFailure(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = parts
        if not username:
            raise SaslFailure("Authentication failed: username not specified")
        if not password:
            raise SaslFailure("Authentication failed: password not specified")
        if not self.verify(username, password):
            raise SaslFailure(_PLAIN_GENERIC, public=True)
        if authzid and authzid != username:
            raise SaslFailure("Authentication failed: Client requested an authorization id that is different "
                              "from username", public=True)
        self.authorization_id = username
        self.complete = True
        return b""


class ScramServerAdapter(scram.ScramServer):
    """ScramServer under the common interface (its errors are already SaslFailure)."""

    @property
    def mechanism(self) -> str:
        return self.mech.name


# RFC 7628 client initial response: gs2-header kvsep *(key "=" value kvsep) kvsep, kvsep = 0x01
_SASLNAME = r"(?:[\x02-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+"  # any ASCII but "," and "=", which are escaped
_OAUTH_INITIAL = re.compile(r"^n,(?:a=(?P<authzid>" + _SASLNAME + r"))?,\x01"
                            r"(?P<kv>(?:[A-Za-z]+=[\x21-\x7E \t\r\n]+\x01)*)\x01$")
_AUTH_VALUE = re.compile(r"^(?P<scheme>\w+) +(?P<token>[-_~+/.a-zA-Z0-9]+=*)$")


def _b64url_json(part: str) -> dict:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("malformed Base64 URL encoded value or JSON") from None
    if not isinstance(value, dict):
        raise ValueError("malformed JSON")
    return value


class OAuthBearerUnsecuredServer:
    mechanism = "OAUTHBEARER"

    def __init__(self, options: dict[str, str] | None = None, now_ms: Callable[[], float] | None = None):
        options = options or {}
        self.principal_claim = (options.get("unsecuredValidatorPrincipalClaimName") or "sub").strip()
        self.scope_claim = (options.get("unsecuredValidatorScopeClaimName") or "scope").strip()
        self.required_scope = (options.get("unsecuredValidatorRequiredScope") or "").split()
        self.clock_skew_ms = int(options.get("unsecuredValidatorAllowableClockSkewMs") or 0)
        self.now_ms = now_ms or (lambda: time.time() * 1000)
        self.complete = False
        self.authorization_id: str | None = None
        self.credential_expiry_ms: int | None = None
        self._error: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        token = bytes(token)
        if token == b"\x01" and self._error is not None:
            raise SaslFailure(self._error, public=True)
        self._error = None
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid OAUTHBEARER client first message") from None
        m = _OAUTH_INITIAL.match(text)
        if m is None:
            raise SaslFailure("Invalid OAUTHBEARER client first message")
        kv = dict(p.split("=", 1) for p in m.group("kv").split("\x01") if p)
        auth = _AUTH_VALUE.match(kv.pop("auth", ""))
        if auth is None or auth.group("scheme").lower() != "bearer":
            raise SaslFailure("Invalid OAUTHBEARER client first message: no Bearer token")
        try:
            principal, expiry_ms = self._validate(auth.group("token"))
        except _InvalidToken as e:
            self._error = json.dumps(e.challenge, separators=(", ", ":"))
            return self._error.encode()
        authzid = scram.decode_saslname(m.group("authzid")) if m.group("authzid") else ""
        if authzid and authzid != principal:
            raise SaslFailure(f"Authentication failed: Client requested an authorization id ({authzid}) that is "
                              f"different from the token's principal name ({principal})", public=True)
        self.authorization_id = principal
        self.credential_expiry_ms = expiry_ms
        self.complete = True
        return b""

    def _validate(self, token: str) -> tuple[str, int]:
        if ".." in token:
            raise _InvalidToken("Malformed compact serialization contains '..'")
        parts = token.split(".")
        if len(parts) != 3:
            raise _InvalidToken("Malformed compact serialization: expected header.claims.signature")
        try:
            header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
        except ValueError as e:
            raise _InvalidToken(str(e)) from None
        if header.get("alg") != "none":
            raise _InvalidToken("Unsecured JWS must have 'none' for an algorithm")
        if parts[2]:
            raise _InvalidToken("Unsecured JWS must not contain a digital signature")
        exp, iat = claims.get("exp"), claims.get("iat")
        for name, value in (("exp", exp), ("iat", iat)):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise _InvalidToken(f"The {name} claim is not a number")
        if exp is None:
            raise _InvalidToken("No expiration time in JWT")
        principal = claims.get(self.principal_claim)
        if not isinstance(principal, str) or not principal.strip():
            raise _InvalidToken(f"No principal name in JWT claim: {self.principal_claim}")
        now = self.now_ms()
        if iat is not None and 1000 * iat > now + self.clock_skew_ms:
            raise _InvalidToken("The Issued At value was after the indicated time plus allowable clock skew")
        if now - self.clock_skew_ms >= 1000 * exp:
            raise _InvalidToken("The indicated time minus allowable clock skew was on or after the Expiration Time")
        if iat is not None and exp <= iat:
            raise _InvalidToken("The Expiration Time time was not after the Issued At time")
        if self.required_scope:
            granted = claims.get(self.scope_claim)
            scope = {granted.strip()} if isinstance(granted, str) and granted.strip() else \
                {s.strip() for s in granted if isinstance(s, str) and s.strip()} if isinstance(granted, list) else set()
            if not set(self.required_scope) <= scope:
                raise _InvalidToken("The provided scope was missing a required scope",
                                    scope="[" + ", ".join(self.required_scope) + "]")
        return principal, int(1000 * exp)


class _InvalidToken(Exception):
    def __init__(self, reason: str, scope: str | None = None):
        super().__init__(reason)
        self.challenge = {"status": "insufficient_scope", "scope": scope} if scope else {"status": "invalid_token"}
