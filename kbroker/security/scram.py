"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka runs them.

Stored per user and mechanism: salt, iterations, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
ServerKey = HMAC(SaltedPassword, "Server Key") -- never the password nor the salted password. The exchange:

    client-first   n,[a=authzid],n=<saslname>,r=<client nonce>[,extensions]
    server-first   r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
    client-final   c=<base64 gs2 header>,r=<nonce>[,extensions],p=<base64 ClientProof>
    server-final   v=<base64 ServerSignature>

The server checks H(ClientProof XOR HMAC(StoredKey, AuthMessage)) == StoredKey. Unknown users and bad proofs
fail with one message, so a client cannot tell which users exist (Kafka does the same). Kafka's
``tokenauth`` extension (delegation tokens) is refused: kbroker issues none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Callable

from . import SaslFailure

MIN_ITERATIONS = 4096  # Kafka's ScramMechanism minimum for both mechanisms
MAX_ITERATIONS = 16384  # Kafka's controller refuses more (ScramControlManager.MAX_ITERATIONS)
DEFAULT_ITERATIONS = 4096


@dataclass(frozen=True)
class ScramMechanism:
    name: str
    hash_name: str
    type_code: int  # AlterUserScramCredentials / DescribeUserScramCredentials mechanism id

    def hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()


MECHANISMS = {
    "SCRAM-SHA-256": ScramMechanism("SCRAM-SHA-256", "sha256", 1),
    "SCRAM-SHA-512": ScramMechanism("SCRAM-SHA-512", "sha512", 2),
}
BY_TYPE = {m.type_code: m for m in MECHANISMS.values()}


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def __repr__(self) -> str:
        return f"ScramCredential(iterations={self.iterations})"

    def to_json(self) -> dict:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return {"salt": b64(self.salt), "stored_key": b64(self.stored_key), "server_key": b64(self.server_key),
                "iterations": self.iterations}

    @classmethod
    def from_json(cls, d: dict) -> "ScramCredential":
        return cls(base64.b64decode(d["salt"]), base64.b64decode(d["stored_key"]),
                   base64.b64decode(d["server_key"]), int(d["iterations"]))


def salted_password(mech: ScramMechanism, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(mech.hash_name, password.encode(), salt, iterations)


def credential_from_salted_password(mech: ScramMechanism, salt: bytes, salted: bytes,
                                    iterations: int) -> ScramCredential:
    """What AlterUserScramCredentials carries (the client salts and hashes) -> what is stored."""
    client_key = mech.hmac(salted, b"Client Key")
    return ScramCredential(bytes(salt), mech.hash(client_key), mech.hmac(salted, b"Server Key"), iterations)


def new_credential(mech: ScramMechanism, password: str, iterations: int = DEFAULT_ITERATIONS) -> ScramCredential:
    salt = os.urandom(32)
    return credential_from_salted_password(mech, salt, salted_password(mech, password, salt, iterations), iterations)


def password_matches(mech: ScramMechanism, cred: ScramCredential, password: str) -> bool:
    salted = salted_password(mech, password, cred.salt, cred.iterations)
    return hmac.compare_digest(mech.hash(mech.hmac(salted, b"Client Key")), cred.stored_key)


ScramError = SaslFailure


def _attributes(message: str) -> list[tuple[str, str]]:
    """``k=v,k=v`` -> [(k, v)]; keys are letters (one in RFC 5802, words for Kafka's extensions)."""
    out = []
    for part in message.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.isalpha() or not key.isascii():
            raise ScramError("Invalid SCRAM message attribute")
        out.append((key, value))
    return out


def decode_saslname(name: str) -> str:
    out, i = [], 0
    while i < len(name):
        if name[i] == "=":
            esc = name[i:i + 3]
            if esc == "=2C":
                out.append(",")
            elif esc == "=3D":
                out.append("=")
            else:
                raise ScramError("Invalid username encoding")
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ScramError("Invalid base64 in SCRAM message") from None


class ScramServer:
    """One SCRAM exchange, server side; ``lookup(username)`` gives the stored credential or None."""

    def __init__(self, mech: ScramMechanism, lookup: Callable[[str], ScramCredential | None],
                 nonce: Callable[[], str] | None = None):
        self.mech = mech
        self.lookup = lookup
        self.nonce = nonce or (lambda: secrets.token_urlsafe(24))
        self.complete = False
        self.authorization_id: str | None = None
        self.credential_expiry_ms: int | None = None
        self._state = "first"
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            text = bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("Invalid SCRAM message: not UTF-8") from None
        if self._state == "first":
            return self._client_first(text)
        if self._state == "final":
            return self._client_final(text)
        raise ScramError("Unexpected SCRAM message after the exchange ended")

    def _client_first(self, text: str) -> bytes:
        # gs2-header: "n," (no channel binding; "y" and "p=" are refused as Kafka does) [a=authzid] ","
        if not text.startswith("n,"):
            raise ScramError("Invalid SCRAM client first message: channel binding is not supported")
        second = text.find(",", 2)
        if second < 0:
            raise ScramError("Invalid SCRAM client first message")
        authzid_part = text[2:second]
        if authzid_part and not authzid_part.startswith("a="):
            raise ScramError("Invalid SCRAM client first message")
        authzid = decode_saslname(authzid_part[2:]) if authzid_part else ""
        self._gs2_header = text[:second + 1]
        bare = text[second + 1:]
        attrs = _attributes(bare)
        if attrs and attrs[0][0] == "m":
            raise ScramError("Invalid SCRAM client first message: mandatory extensions are not supported")
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise ScramError("Invalid SCRAM client first message")
        username = decode_saslname(attrs[0][1])
        extensions = dict(attrs[2:])
        if extensions.get("tokenauth", "").lower() == "true":
            raise ScramError("Token Authentication failed: delegation tokens are not supported")
        credential = self.lookup(username)
        if credential is None:
            raise ScramError("Authentication failed: Invalid user credentials")
        if authzid and authzid != username:
            raise ScramError("Authentication failed: Client requested an authorization id that is different "
                             "from username", public=True)
        if credential.iterations < MIN_ITERATIONS:
            raise ScramError(f"Iterations {credential.iterations} is less than the minimum {MIN_ITERATIONS} "
                             f"for {self.mech.name}")
        self._credential = credential
        self.authorization_id = username
        self._client_first_bare = bare
        self._nonce = attrs[1][1] + self.nonce()
        self._server_first = (f"r={self._nonce},s={base64.b64encode(credential.salt).decode()},"
                              f"i={credential.iterations}")
        self._state = "final"
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        self._state = "failed"
        proof_at = text.rfind(",p=")
        if proof_at < 0:
            raise ScramError("Invalid SCRAM client final message")
        without_proof = text[:proof_at]
        attrs = _attributes(without_proof)
        if len(attrs) < 2 or attrs[0][0] != "c" or attrs[1][0] != "r":
            raise ScramError("Invalid SCRAM client final message")
        if _b64(attrs[0][1]) != self._gs2_header.encode():
            raise ScramError("Invalid channel binding in the final client message")
        if attrs[1][1] != self._nonce:
            raise ScramError("Invalid client nonce in the final client message.")
        proof = _b64(text[proof_at + 3:])
        cred = self._credential
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = self.mech.hmac(cred.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("Invalid client proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(self.mech.hash(client_key), cred.stored_key):
            raise ScramError("Invalid client credentials")
        server_signature = self.mech.hmac(cred.server_key, auth_message)
        self._credential = None
        self.complete = True
        self._state = "done"
        return b"v=" + base64.b64encode(server_signature)
