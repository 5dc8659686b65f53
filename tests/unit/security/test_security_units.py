"""The security core without sockets: JAAS values, SCRAM against kafka-python's client, PLAIN, OAUTHBEARER
tokens as Kafka's unsecured validator judges them, the authorizer's rules, filters, certificate subjects,
listener settings, and one connection's authentication state machine on a clock the test moves."""

from __future__ import annotations

import base64
import json

import pytest
from kafka.net.sasl.scram import ScramClient

from kbroker.config import BrokerConfig, apply_settings
from kbroker.errors import ErrorCode
from kbroker.state_log import KeyedState, keyed_state
from kbroker.security import SaslFailure, SecurityConfigError, acl, jaas, scram
from kbroker.security.authenticator import AuthenticationError, ListenerAuth, Session
from kbroker.security.credentials import CredentialStore
from kbroker.security.listeners import resolve_listeners
from kbroker.security.sasl import OAuthBearerUnsecuredServer, PlainServer
from kbroker.security.tls import rfc2253

NOW_MS = 1_800_000_000_000


def memory_store() -> CredentialStore:
    return CredentialStore(keyed_state(None, CredentialStore.MAGIC))


# -- JAAS ------------------------------------------------------------------------------------------------

def test_jaas_plain_login_module_gives_its_users():
    entry = jaas.parse_jaas_config(
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice \\"quoted\\" secret";')
    assert entry.login_module == jaas.PLAIN_LOGIN_MODULE and entry.control_flag == "required"
    assert jaas.plain_users(entry) == {"admin": "admin-secret", "alice": 'alice "quoted" secret'}
    assert "secret" not in repr(entry)


@pytest.mark.parametrize("text", [
    'org.example.Module required user_a="x"',  # no ';'
    'org.example.Module sometimes;',  # not a control flag
    'A required; B required;',  # two modules
    'org.example.Module required user_a="never closed;',
])
def test_jaas_errors_never_quote_the_value(text):
    with pytest.raises(SecurityConfigError) as e:
        jaas.parse_jaas_config(text)
    assert "never closed" not in str(e.value) and 'user_a="x"' not in str(e.value)


# -- SCRAM -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_with_kafka_pythons_client(mechanism):
    store = memory_store()
    store.ensure_user("alice", "alice-secret")
    server = scram.ScramServer(scram.MECHANISMS[mechanism], lambda u: store.scram(mechanism, u))
    client = ScramClient("alice", "alice-secret", mechanism)
    client.process_server_first_message(server.evaluate(client.first_message()))
    client.process_server_final_message(server.evaluate(client.final_message()))  # checks the server signature
    assert server.complete and server.authorization_id == "alice"


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "alice-secret")])
def test_scram_wrong_password_or_unknown_user_fail_alike(user, password):
    store = memory_store()
    store.ensure_user("alice", "alice-secret")
    server = scram.ScramServer(scram.MECHANISMS["SCRAM-SHA-256"], lambda u: store.scram("SCRAM-SHA-256", u))
    client = ScramClient(user, password, "SCRAM-SHA-256")
    with pytest.raises(SaslFailure) as e:
        client.process_server_first_message(server.evaluate(client.first_message()))
        server.evaluate(client.final_message())
    assert not e.value.public  # replaced by the generic message: which users exist is not told
    assert not server.complete


def test_scram_refuses_a_changed_nonce_channel_binding_and_delegation_tokens():
    store = memory_store()
    store.ensure_user("alice", "pw")
    lookup = lambda u: store.scram("SCRAM-SHA-256", u)  # noqa: E731
    mech = scram.MECHANISMS["SCRAM-SHA-256"]
    server = scram.ScramServer(mech, lookup)
    client = ScramClient("alice", "pw", "SCRAM-SHA-256")
    client.process_server_first_message(server.evaluate(client.first_message()))
    final = client.final_message().replace(b"c=biws", b"c=" + base64.b64encode(b"y,,"))
    with pytest.raises(SaslFailure):
        server.evaluate(final)
    with pytest.raises(SaslFailure, match="delegation"):
        scram.ScramServer(mech, lookup).evaluate(b"n,,n=alice,r=abc,tokenauth=true")
    with pytest.raises(SaslFailure, match="authorization id"):
        scram.ScramServer(mech, lookup).evaluate(b"n,a=bob,n=alice,r=abc")


def test_scram_credential_from_what_admin_clients_send_matches_the_password():
    mech = scram.MECHANISMS["SCRAM-SHA-512"]
    salt = b"0123456789abcdef"
    salted = scram.salted_password(mech, "pw", salt, 8192)
    cred = scram.credential_from_salted_password(mech, salt, salted, 8192)
    assert scram.password_matches(mech, cred, "pw") and not scram.password_matches(mech, cred, "pw2")
    assert "salt" not in repr(cred)


def test_credentials_are_stored_salted_never_as_passwords(tmp_path):
    path = tmp_path / "credentials.journal"
    store = CredentialStore(keyed_state(path, CredentialStore.MAGIC))
    store.ensure_user("alice", "very-secret-password")
    size = path.stat().st_size
    store.ensure_user("alice", "very-secret-password")  # unchanged: nothing rewritten
    assert path.stat().st_size == size
    store.close()
    assert b"very-secret-password" not in path.read_bytes()
    again = CredentialStore(keyed_state(path, CredentialStore.MAGIC))
    assert again.verify_plain("alice", "very-secret-password") and not again.verify_plain("alice", "nope")
    assert sorted(again.scram_users()["alice"]) == [("SCRAM-SHA-256", 4096), ("SCRAM-SHA-512", 4096)]


# -- PLAIN -----------------------------------------------------------------------------------------------

def test_plain():
    server = PlainServer(lambda u, p: (u, p) == ("alice", "pw"))
    assert server.evaluate(b"\x00alice\x00pw") == b"" and server.authorization_id == "alice"
    for token, public in ((b"\x00alice\x00bad", True), (b"bob\x00alice\x00pw", True), (b"alice\x00pw", False),
                          (b"\x00\x00pw", False)):
        with pytest.raises(SaslFailure) as e:
            PlainServer(lambda u, p: (u, p) == ("alice", "pw")).evaluate(token)
        assert e.value.public is public


# -- OAUTHBEARER -----------------------------------------------------------------------------------------

def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


def _bearer(header: dict, claims: dict, signature: str = "", authzid: str = "") -> bytes:
    token = f"{_b64(header)}.{_b64(claims)}.{signature}"
    return f"n,{'a=' + authzid if authzid else ''},\x01auth=Bearer {token}\x01\x01".encode()


def test_oauthbearer_accepts_an_unsecured_token_and_reports_its_expiry():
    s = OAuthBearerUnsecuredServer(now_ms=lambda: NOW_MS)
    exp = NOW_MS / 1000 + 60
    assert s.evaluate(_bearer({"alg": "none"}, {"sub": "bob", "iat": NOW_MS / 1000, "exp": exp})) == b""
    assert s.complete and s.authorization_id == "bob" and s.credential_expiry_ms == int(exp * 1000)


@pytest.mark.parametrize("header,claims,signature", [
    ({"alg": "HS256"}, {"sub": "bob", "exp": 1_900_000_000}, ""),  # not alg none
    ({"alg": "none"}, {"sub": "bob", "exp": 1_900_000_000}, "c2ln"),  # a signature
    ({"alg": "none"}, {"sub": "bob"}, ""),  # no exp
    ({"alg": "none"}, {"exp": 1_900_000_000}, ""),  # no sub
    ({"alg": "none"}, {"sub": "bob", "exp": NOW_MS / 1000 - 1}, ""),  # expired
    ({"alg": "none"}, {"sub": "bob", "exp": 1_900_000_000, "iat": NOW_MS / 1000 + 600}, ""),  # issued in the future
    ({"alg": "none"}, {"sub": "bob", "exp": NOW_MS / 1000 + 5, "iat": NOW_MS / 1000 + 5}, ""),  # exp not after iat
])
def test_oauthbearer_invalid_tokens_get_kafkas_error_challenge_then_fail(header, claims, signature):
    s = OAuthBearerUnsecuredServer(now_ms=lambda: NOW_MS)
    assert json.loads(s.evaluate(_bearer(header, claims, signature))) == {"status": "invalid_token"}
    assert not s.complete
    with pytest.raises(SaslFailure) as e:
        s.evaluate(b"\x01")
    assert e.value.public and "invalid_token" in str(e.value)


def test_oauthbearer_jaas_options_required_scope_and_principal_claim():
    opts = {"unsecuredValidatorRequiredScope": "write", "unsecuredValidatorPrincipalClaimName": "user"}
    s = OAuthBearerUnsecuredServer(opts, now_ms=lambda: NOW_MS)
    reply = json.loads(s.evaluate(_bearer({"alg": "none"}, {"user": "bob", "exp": 1.9e9, "scope": "read"})))
    assert reply["status"] == "insufficient_scope"
    s = OAuthBearerUnsecuredServer(opts, now_ms=lambda: NOW_MS)
    assert s.evaluate(_bearer({"alg": "none"}, {"user": "bob", "exp": 1.9e9, "scope": ["read", "write"]})) == b""
    with pytest.raises(SaslFailure, match="authorization id"):
        OAuthBearerUnsecuredServer(now_ms=lambda: NOW_MS).evaluate(
            _bearer({"alg": "none"}, {"sub": "bob", "exp": 1.9e9}, authzid="alice"))


# -- ACLs ------------------------------------------------------------------------------------------------

def authorizer(*bindings, super_users=(), allow_everyone=False) -> acl.Authorizer:
    a = acl.Authorizer(keyed_state(None, b"KBACLS\x00\x00"), super_users, allow_everyone)
    for b in bindings:
        a.create(b)
    return a


def allow(principal, op, rtype, name, pattern=acl.PatternType.LITERAL, host="*", permission=acl.PermissionType.ALLOW):
    return acl.AclBinding(rtype, name, pattern, principal, host, op, permission)


def deny(principal, op, rtype, name, pattern=acl.PatternType.LITERAL, host="*"):
    return allow(principal, op, rtype, name, pattern, host, acl.PermissionType.DENY)


def test_authorizer_rules():
    a = authorizer(
        allow("User:alice", acl.WRITE, acl.TOPIC, "orders"),
        allow("User:alice", acl.READ, acl.TOPIC, "logs-", acl.PatternType.PREFIXED),
        deny("User:alice", acl.READ, acl.TOPIC, "logs-secret"),
        allow("User:*", acl.AclOperation.ALL, acl.TOPIC, "public"),
        allow("User:bob", acl.READ, acl.TOPIC, "*"),
        allow("User:carol", acl.WRITE, acl.TOPIC, "orders", host="10.0.0.1"),
        super_users=["User:admin"])
    ok = lambda p, op, name, host="127.0.0.1": a.authorize(p, host, op, acl.TOPIC, name, log_denied=False)  # noqa
    assert ok("User:alice", acl.WRITE, "orders") and not ok("User:alice", acl.READ, "orders")
    assert ok("User:alice", acl.DESCRIBE, "orders")  # WRITE implies DESCRIBE
    assert ok("User:alice", acl.READ, "logs-app") and not ok("User:alice", acl.READ, "logs-secret")  # DENY wins
    assert ok("User:alice", acl.DESCRIBE, "logs-secret")  # a DENY for READ does not deny DESCRIBE
    assert ok("User:zed", acl.DELETE, "public") and ok("User:bob", acl.READ, "anything")
    assert not ok("User:carol", acl.WRITE, "orders") and ok("User:carol", acl.WRITE, "orders", "10.0.0.1")
    assert ok("User:admin", acl.DELETE, "orders")  # super user
    assert not ok("User:zed", acl.READ, "no-acls-here")  # allow.everyone.if.no.acl.found is false
    assert a.authorized_operations("User:alice", "127.0.0.1", acl.TOPIC, "orders") == acl.bit_set([acl.WRITE, acl.DESCRIBE])


def test_allow_everyone_if_no_acl_found_only_where_a_resource_has_no_acls():
    a = authorizer(allow("User:alice", acl.READ, acl.TOPIC, "guarded"), allow_everyone=True)
    assert a.authorize("User:zed", "h", acl.WRITE, acl.TOPIC, "open", log_denied=False)
    assert not a.authorize("User:zed", "h", acl.READ, acl.TOPIC, "guarded", log_denied=False)


def test_authorize_by_resource_type_as_kafka():
    a = authorizer(allow("User:alice", acl.WRITE, acl.TOPIC, "a-", acl.PatternType.PREFIXED),
                   deny("User:alice", acl.WRITE, acl.TOPIC, "a", acl.PatternType.PREFIXED),
                   allow("User:bob", acl.WRITE, acl.TOPIC, "x"))
    assert not a.authorize_by_resource_type("User:alice", "h", acl.WRITE, acl.TOPIC)  # the deny dominates
    assert a.authorize_by_resource_type("User:bob", "h", acl.WRITE, acl.TOPIC)
    assert not a.authorize_by_resource_type("User:carol", "h", acl.WRITE, acl.TOPIC)


def test_acl_filters_and_validation():
    lit, pre = allow("User:a", acl.READ, acl.TOPIC, "foo"), allow("User:a", acl.READ, acl.TOPIC, "fo", acl.PatternType.PREFIXED)
    star = allow("User:a", acl.READ, acl.TOPIC, "*")
    match = acl.AclFilter(acl.TOPIC, "foo", acl.PatternType.MATCH)
    assert all(match.matches(b) for b in (lit, pre, star))
    assert acl.AclFilter(acl.TOPIC, "foo", acl.PatternType.LITERAL).matches(lit)
    assert not acl.AclFilter(acl.TOPIC, "foo", acl.PatternType.LITERAL).matches(pre)
    assert acl.AclFilter().matches(star) and not acl.AclFilter(acl.GROUP).matches(star)
    assert acl.AclFilter(acl.TOPIC, operation=acl.AclOperation.UNKNOWN).validate()
    assert allow("User:a", acl.READ, acl.CLUSTER, "other").validate().startswith("The only valid name")
    assert allow("alice", acl.READ, acl.TOPIC, "t").validate().startswith("Could not parse principal")
    assert allow("User:a", acl.AclOperation.ANY, acl.TOPIC, "t").validate() == "Invalid operation ANY"
    assert allow("User:a", acl.READ, acl.TOPIC, "t", acl.PatternType.MATCH).validate() == "Invalid patternType MATCH"


def test_acls_persist(tmp_path):
    j = keyed_state(tmp_path / "acls.journal", b"KBACLS\x00\x00")
    a = acl.Authorizer(j)
    a.create(allow("User:alice", acl.WRITE, acl.TOPIC, "t"))
    a.create(allow("User:bob", acl.WRITE, acl.TOPIC, "t"))
    assert a.delete(acl.AclFilter(principal="User:bob")) == [allow("User:bob", acl.WRITE, acl.TOPIC, "t")]
    a.close()
    b = acl.Authorizer(keyed_state(tmp_path / "acls.journal", b"KBACLS\x00\x00"))
    assert b.bindings == {allow("User:alice", acl.WRITE, acl.TOPIC, "t")}


# -- certificates and listeners --------------------------------------------------------------------------

def test_rfc2253_subject_as_javas_x500principal():
    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc."),),
               (("organizationalUnitName", "eng"), ("commonName", "alice")), (("emailAddress", "a@x.io"),))
    assert rfc2253(subject) == "1.2.840.113549.1.9.1=#16066140782e696f,OU=eng+CN=alice,O=Acme\\, Inc.,C=US"


def test_listeners_protocol_map_prefixes_and_controller_listeners():
    c = BrokerConfig()
    apply_settings(c, {
        "listeners": "CONTROLLER://:9093,CLIENT://127.0.0.1:0,SECURE://127.0.0.1:0",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,CLIENT:PLAINTEXT,SECURE:SASL_SSL",
        "advertised.listeners": "CLIENT://localhost:0,SECURE://kafka.example:19093",
        "listener.name.secure.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.secure.ssl.client.auth": "required",
        "ssl.client.auth": "requested",
    })
    client, secure = resolve_listeners(c)
    assert (client.name, client.security_protocol, client.advertised_host) == ("CLIENT", "PLAINTEXT", "localhost")
    assert (secure.name, secure.security_protocol) == ("SECURE", "SASL_SSL")
    assert secure.advertised() == ("kafka.example", 19093)
    assert secure.sasl_mechanisms() == ["SCRAM-SHA-512"] and client.sasl_mechanisms() == ["PLAIN", "SCRAM-SHA-256",
                                                                                          "SCRAM-SHA-512"]
    assert secure.ssl_client_auth == "required"


@pytest.mark.parametrize("settings,fragment", [
    ({"listeners": "WEIRD://127.0.0.1:0"}, "no security protocol"),
    ({"listeners": "SASL_SSL://127.0.0.1:0", "sasl.enabled.mechanisms": "GSSAPI"}, "not supported"),
    ({"listener.name.x.oauthbearer.sasl.server.callback.handler.class": "com.example.Validator"}, "not supported"),
    ({"ssl.keystore.type": "JKS"}, "PEM"),
])
def test_settings_that_cannot_work_are_refused(settings, fragment):
    c = BrokerConfig()
    with pytest.raises(ValueError, match=fragment):
        apply_settings(c, settings)
        resolve_listeners(c)


def test_a_bad_secret_is_never_echoed_in_the_error():
    with pytest.raises(ValueError) as e:
        apply_settings(BrokerConfig(), {"listener.name.sasl_plaintext.plain.sasl.jaas.config":
                                        'org.x.PlainLoginModule required user_alice="hunter2'})
    assert "hunter2" not in str(e.value)


# -- one connection's state machine ------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 1000.0

    def monotonic(self):
        return self.t

    def wall_ms(self):
        return NOW_MS + self.t * 1000


def sasl_session(settings: dict | None = None):
    c = BrokerConfig()
    apply_settings(c, {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", **(settings or {})})
    store = memory_store()
    store.ensure_user("alice", "pw")
    auth = ListenerAuth(resolve_listeners(c)[0], store)
    clock = Clock()
    auth.monotonic, auth.wall_ms = clock.monotonic, clock.wall_ms
    return Session(auth), clock


def test_only_api_versions_and_the_sasl_exchange_before_authentication():
    s, _ = sasl_session()
    s.admit(18, "ApiVersions")
    s.api_versions_answered(True)
    with pytest.raises(AuthenticationError, match="Unexpected ApiVersions"):
        s.admit(18, "ApiVersions")
    with pytest.raises(AuthenticationError, match="Unexpected Kafka request of type Metadata during SASL handshake"):
        s.admit(3, "Metadata")
    s.admit(17, "SaslHandshake")
    assert s.handshake("PLAIN", 1) == (ErrorCode.NONE, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    with pytest.raises(AuthenticationError, match="during SASL authentication"):
        s.admit(0, "Produce")
    assert s.authenticate(b"\x00alice\x00pw", 1) == (ErrorCode.NONE, None, b"", 0)
    assert s.authenticated and s.principal == "User:alice"
    s.admit(0, "Produce")
    assert s.handshake("PLAIN", 1)[0] == ErrorCode.ILLEGAL_SASL_STATE  # no session lifetime: no re-auth
    assert s.authenticate(b"x", 1)[0] == ErrorCode.ILLEGAL_SASL_STATE


def test_unsupported_mechanism_and_failed_authentication_close_after_the_answer():
    s, _ = sasl_session()
    assert s.handshake("GSSAPI", 1)[0] == ErrorCode.UNSUPPORTED_SASL_MECHANISM and s.failure
    s, _ = sasl_session()
    s.handshake("PLAIN", 1)
    err, message, _, _ = s.authenticate(b"\x00alice\x00nope", 1)
    assert err == ErrorCode.SASL_AUTHENTICATION_FAILED and message == s.failure
    assert message == "Authentication failed: Invalid username or password"


def test_session_lifetime_expiry_and_reauthentication():
    s, clock = sasl_session({"connections.max.reauth.ms": "60000"})
    s.handshake("PLAIN", 1)
    assert s.authenticate(b"\x00alice\x00pw", 1)[3] == 60000
    clock.t += 59
    s.admit(0, "Produce")
    clock.t += 2
    with pytest.raises(AuthenticationError, match="expired"):
        s.admit(0, "Produce")
    s.admit(17, "SaslHandshake")  # re-authentication is still allowed
    assert s.handshake("PLAIN", 1)[0] == ErrorCode.NONE
    assert s.authenticate(b"\x00alice\x00pw", 2)[3] == 60000
    s.admit(0, "Produce")
    assert s.handshake("PLAIN", 1)[0] == ErrorCode.ILLEGAL_SASL_STATE  # at most one re-authentication a second


def test_reauthentication_must_keep_mechanism_and_principal():
    s, clock = sasl_session({"connections.max.reauth.ms": "60000"})
    s.auth.credentials.ensure_user("bob", "pw")
    s.handshake("PLAIN", 1)
    s.authenticate(b"\x00alice\x00pw", 1)
    clock.t += 2
    s.handshake("PLAIN", 1)
    err, message, _, _ = s.authenticate(b"\x00bob\x00pw", 1)
    assert err == ErrorCode.SASL_AUTHENTICATION_FAILED and "Cannot change principals" in message
    s, clock = sasl_session({"connections.max.reauth.ms": "60000"})
    s.handshake("PLAIN", 1)
    s.authenticate(b"\x00alice\x00pw", 1)
    clock.t += 2
    assert s.handshake("SCRAM-SHA-256", 1)[0] == ErrorCode.NONE
    assert "not supported for re-authentication" in s.authenticate(b"n,,n=alice,r=x", 1)[1]


def test_oauthbearer_session_ends_with_the_token():
    s, clock = sasl_session({"sasl.enabled.mechanisms": "OAUTHBEARER"})
    s.handshake("OAUTHBEARER", 1)
    exp = (NOW_MS + clock.t * 1000) / 1000 + 30
    assert s.authenticate(_bearer({"alg": "none"}, {"sub": "bob", "exp": exp}), 1)[3] == 30000
    assert s.principal == "User:bob"


def test_raw_tokens_after_handshake_v0():
    s, _ = sasl_session()
    s.handshake("PLAIN", 0)
    assert s.raw_tokens
    assert s.raw_token(b"\x00alice\x00pw") == b"" and s.authenticated and not s.raw_tokens
    s, _ = sasl_session()
    s.handshake("PLAIN", 0)
    with pytest.raises(AuthenticationError):
        s.raw_token(b"\x00alice\x00bad")
