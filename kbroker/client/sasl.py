"""The client side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 4616, RFC 5802, RFC 7677), sans-IO: each
mechanism takes the server's challenge and returns the next token, and checks the server's last word (SCRAM's
server signature proves the server knew the credential too). aio.Connection.authenticate carries the tokens in
SaslHandshake v1 and SaslAuthenticate, as Kafka's SaslClientAuthenticator does.

Passwords are never put in a message or a repr.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass, field

from ..security.scram import MECHANISMS as SCRAM_MECHANISMS
from ..security.scram import salted_password

CLIENT_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)


class SaslClientError(Exception):
    """The server's answer does not fit the exchange (a SCRAM server that does not prove itself)."""


@dataclass(frozen=True)
class SaslCredentials:
    """A client's SASL login: mechanism, user name and password."""
    mechanism: str
    username: str
    password: str = field(repr=False)

    def __post_init__(self):
        if self.mechanism not in CLIENT_MECHANISMS:
            raise ValueError(f"SASL mechanism {self.mechanism} is not supported by kbroker's client "
                             f"({', '.join(CLIENT_MECHANISMS)})")


class PlainClient:
    """RFC 4616: one token, ``authzid NUL authcid NUL password`` (the authzid empty, as Kafka's client sends)."""

    def __init__(self, username: str, password: str):
        self._token = b"\x00" + username.encode() + b"\x00" + password.encode()
        self.complete = False

    def first(self) -> bytes:
        return self._token

    def evaluate(self, challenge: bytes) -> bytes | None:
        self.complete = True
        return None


def _saslname(name: str) -> str:
    """RFC 5802's escaping of a user name: ``=`` as ``=3D``, ``,`` as ``=2C``."""
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """RFC 5802: client-first, then client-final with the proof, then the server's signature checked."""

    def __init__(self, mechanism: str, username: str, password: str, nonce: str | None = None):
        self.mech = SCRAM_MECHANISMS[mechanism]
        self._password = password
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={_saslname(username)},r={self._nonce}"
        self._server_signature: bytes | None = None
        self.complete = False

    def first(self) -> bytes:
        return ("n,," + self._first_bare).encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        if self._server_signature is None:
            return self._client_final(challenge.decode())
        attrs = dict(a.split("=", 1) for a in challenge.decode().split(",") if "=" in a)
        if "e" in attrs:
            raise SaslClientError(f"SCRAM failed on the server: {attrs['e']}")
        if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), self._server_signature):
            raise SaslClientError("the server's SCRAM signature is wrong: it does not know the credential")
        self.complete = True
        return None

    def _client_final(self, server_first: str) -> bytes:
        attrs = dict(a.split("=", 1) for a in server_first.split(",") if "=" in a)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce) or salt is None or iterations is None:
            raise SaslClientError("the server's first SCRAM message is malformed or does not extend our nonce")
        mech = self.mech
        salted = salted_password(mech, self._password, base64.b64decode(salt), int(iterations))
        client_key = mech.hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={nonce}"  # biws: base64 of the gs2 header "n,,"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = mech.hmac(mech.hash(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = mech.hmac(mech.hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def mechanism_client(credentials: SaslCredentials):
    if credentials.mechanism == "PLAIN":
        return PlainClient(credentials.username, credentials.password)
    return ScramClient(credentials.mechanism, credentials.username, credentials.password)
