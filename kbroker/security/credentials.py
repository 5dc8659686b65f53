"""Who may log in: salted SCRAM credentials and PLAIN password hashes, never a password.

Users come from three places:

* SCRAM credentials created with AlterUserScramCredentials (what admin clients send: the client salts and
  hashes, the broker keeps StoredKey and ServerKey), kept in a state log in the data directory
  (``.kbroker/credentials.journal``; in memory for ``--storage memory``), so they survive a restart;
* ``--sasl-user NAME:PASSWORD``: a PLAIN hash and SCRAM-SHA-256/512 credentials, in the same state log
  (rewritten only when the password changed);
* a PlainLoginModule's ``user_<name>="<password>"`` options in a listener's JAAS setting: PLAIN users of that
  listener only, as in Kafka; hashed when the broker starts and held in memory, since the configuration
  that names them is read again at every start.

PLAIN hashes are PBKDF2-HMAC-SHA256 with a random salt; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from ..state_log import KeyedState
from . import scram

PLAIN_ITERATIONS = 4096
_PLAIN = "PLAIN"


def hash_password(password: str, iterations: int = PLAIN_ITERATIONS) -> dict:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return {"algorithm": "pbkdf2-sha256", "iterations": iterations,
            "salt": base64.b64encode(salt).decode(), "hash": base64.b64encode(digest).decode()}


def password_matches(record: dict, password: str) -> bool:
    if record.get("algorithm") != "pbkdf2-sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(record["salt"]),
                                 int(record["iterations"]))
    return hmac.compare_digest(digest, base64.b64decode(record["hash"]))


class PlainUsers:
    """PLAIN users of one listener's JAAS setting, hashed in memory."""

    def __init__(self, users: dict[str, str] | None = None):
        self._hashes = {name: hash_password(pw) for name, pw in (users or {}).items()}

    def __contains__(self, name: str) -> bool:
        return name in self._hashes

    def verify(self, name: str, password: str) -> bool:
        record = self._hashes.get(name)
        return record is not None and password_matches(record, password)


class CredentialStore:
    """The broker-wide users, in a KeyedState: key ``<mechanism>/<user>``."""

    MAGIC = b"KBCREDS\x00"

    def __init__(self, journal: KeyedState):
        self.journal = journal

    def close(self) -> None:
        self.journal.close()

    # -- SCRAM -----------------------------------------------------------------

    def scram(self, mechanism: str, user: str) -> scram.ScramCredential | None:
        d = self.journal.state.get(f"{mechanism}/{user}")
        return None if d is None else scram.ScramCredential.from_json(d)

    def set_scram(self, mechanism: str, user: str, credential: scram.ScramCredential) -> None:
        self.journal.put(f"{mechanism}/{user}", credential.to_json())

    def delete_scram(self, mechanism: str, user: str) -> bool:
        key = f"{mechanism}/{user}"
        if key not in self.journal.state:
            return False
        self.journal.put(key, None)
        return True

    def scram_users(self) -> dict[str, list[tuple[str, int]]]:
        """user -> [(mechanism, iterations)] for every user with a SCRAM credential."""
        out: dict[str, list[tuple[str, int]]] = {}
        for key, value in self.journal.state.items():
            mech, _, user = key.partition("/")
            if mech in scram.MECHANISMS:
                out.setdefault(user, []).append((mech, int(value["iterations"])))
        return out

    # -- PLAIN -----------------------------------------------------------------

    def verify_plain(self, user: str, password: str) -> bool:
        record = self.journal.state.get(f"{_PLAIN}/{user}")
        return record is not None and password_matches(record, password)

    # -- --sasl-user -----------------------------------------------------------

    def ensure_user(self, user: str, password: str) -> None:
        """PLAIN and SCRAM-SHA-256/512 credentials for ``user``; left alone where they already match."""
        if not self.verify_plain(user, password):
            self.journal.put(f"{_PLAIN}/{user}", hash_password(password))
        for name, mech in scram.MECHANISMS.items():
            cred = self.scram(name, user)
            if cred is None or not scram.password_matches(mech, cred, password):
                self.set_scram(name, user, scram.new_credential(mech, password))
