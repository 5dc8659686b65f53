"""Kafka's ``sasl.jaas.config`` values: one login module, its control flag and its options.

    org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";

Options are ``key=value`` with the value a double-quoted string (backslash escapes the next character) or a
bare word, as Kafka's JaasConfig tokenizer reads them. Errors never quote the text: it holds passwords.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import SecurityConfigError

CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


@dataclass
class JaasEntry:
    login_module: str
    control_flag: str
    options: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # options hold passwords: never show them
        return f"JaasEntry({self.login_module!r}, {self.control_flag!r}, options={sorted(self.options)!r})"


def _tokens(text: str):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "=;":
            yield c
            i += 1
        elif c == '"':
            i += 1
            out = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise SecurityConfigError("sasl.jaas.config: a quoted value is not closed")
            i += 1
            yield ("str", "".join(out))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '=;"':
                i += 1
            yield ("word", text[start:i])


def parse_jaas_config(text: str) -> JaasEntry:
    """The single login module of a ``sasl.jaas.config`` value (Kafka allows exactly one)."""
    toks = list(_tokens(text))
    entries = []
    i = 0
    while i < len(toks):
        if not isinstance(toks[i], tuple) or toks[i][0] != "word":
            raise SecurityConfigError("sasl.jaas.config: expected a login module class name")
        module = toks[i][1]
        if i + 1 >= len(toks) or not isinstance(toks[i + 1], tuple) or toks[i + 1][1] not in CONTROL_FLAGS:
            raise SecurityConfigError(f"sasl.jaas.config: expected a control flag after {module} "
                                      f"({', '.join(CONTROL_FLAGS)})")
        entry = JaasEntry(module, toks[i + 1][1])
        i += 2
        while i < len(toks) and toks[i] != ";":
            if not (isinstance(toks[i], tuple) and toks[i][0] == "word") or i + 2 >= len(toks) \
                    or toks[i + 1] != "=" or not isinstance(toks[i + 2], tuple):
                raise SecurityConfigError(f"sasl.jaas.config: expected key=value options for {module}")
            entry.options[toks[i][1]] = toks[i + 2][1]
            i += 3
        if i >= len(toks):
            raise SecurityConfigError("sasl.jaas.config: the login module must end with ';'")
        i += 1
        entries.append(entry)
    if len(entries) != 1:
        raise SecurityConfigError(f"sasl.jaas.config must contain exactly one login module, found {len(entries)}")
    return entries[0]


def plain_users(entry: JaasEntry) -> dict[str, str]:
    """``user_<name>="<password>"`` options of a PlainLoginModule: the users PLAIN accepts."""
    return {k[len("user_"):]: v for k, v in entry.options.items() if k.startswith("user_") and len(k) > 5}
