"""kbroker as a process, configured the way Kafka is: the ready lines (the plain one first, then one per
listener), users and ACLs that survive a restart, secrets that never reach the log, the warning for a
listener open to the network without authentication, and ``kbroker certs``."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from support.securityhelpers import (LISTENERS, SecureBrokerProcess, TIMEOUT_S, confluent_conf, confluent_consume,
                             confluent_produce, make_certs)

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="jaas-admin-secret" user_admin="jaas-admin-secret" user_carol="carol-jaas-secret";')


def test_kbroker_certs_writes_a_ca_a_server_and_a_client(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kbroker", "certs", str(tmp_path / "c")], capture_output=True,
                         text=True, check=True).stdout.split()
    assert [p.rsplit("/", 1)[1] for p in out] == ["ca.pem", "server.pem", "client.pem"]
    assert (tmp_path / "c" / "server.pem").stat().st_mode & 0o077 == 0  # a private key inside


def test_ready_lines_restart_and_secrets(tmp_path):
    certs = make_certs(tmp_path / "certs")
    args = ["--log-level", "DEBUG", "--acl", "--sasl-user", "admin:admin-secret",
            "--set", f"listeners={LISTENERS}", "--set", "super.users=User:admin;User:carol",
            "--set", f"ssl.keystore.location={certs['server.pem']}",
            "--set", f"ssl.truststore.location={certs['ca.pem']}",
            "--set", "listener.name.ssl.ssl.client.auth=required",
            "--set", f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"]
    b = SecureBrokerProcess(tmp_path / "data", *args, listener_count=4)
    b.start()
    try:
        assert b.first_line == f"kbroker listening on 127.0.0.1:{b.port}"
        assert list(b.listeners) == ["PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT"]
        assert b.listeners["PLAINTEXT"] == f"127.0.0.1:{b.port}"

        from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, \
            UserScramCredentialUpsertion

        admin_conf = confluent_conf(b.listeners, certs, "SASL_SSL", "SCRAM-SHA-256", "admin", "admin-secret")
        admin = AdminClient(admin_conf)
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"dave-secret")])["dave"].result(TIMEOUT_S)
        from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, \
            ResourceType

        t = f"persist-{uuid.uuid4().hex[:8]}"
        for f in admin.create_acls([AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, "User:dave", "*",
                                               op, AclPermissionType.ALLOW)
                                    for op in (AclOperation.CREATE, AclOperation.WRITE)]).values():
            f.result(TIMEOUT_S)
        carol = confluent_conf(b.listeners, certs, "SASL_PLAINTEXT", "PLAIN", "carol", "carol-jaas-secret")
        assert confluent_produce(carol, t, [b"carol, from JAAS, a super user"]) == [None]

        b.restart()
        dave = confluent_conf(b.listeners, certs, "SASL_SSL", "SCRAM-SHA-512", "dave", "dave-secret")
        assert confluent_produce(dave, t, [b"dave after a restart"]) == [None]  # credentials and ACL survived
        admin_conf = confluent_conf(b.listeners, certs, "SASL_SSL", "PLAIN", "admin", "admin-secret")
        assert confluent_consume(admin_conf, t, 2) == [b"carol, from JAAS, a super user", b"dave after a restart"]
    finally:
        b.stop()
    log = "".join(b.stderr_lines)
    for secret in ("admin-secret", "jaas-admin-secret", "carol-jaas-secret", "dave-secret"):
        assert secret not in log
    data = b"".join(p.read_bytes() for p in (tmp_path / "data" / ".kbroker").glob("*.journal"))
    assert b"dave-secret" not in data and b"admin-secret" not in data


def test_a_listener_beyond_loopback_without_authentication_is_warned_about(tmp_path):
    b = SecureBrokerProcess(tmp_path / "data", "--set", "listeners=PLAINTEXT://127.0.0.1:0,OPEN://0.0.0.0:0",
                            "--set", "listener.security.protocol.map=OPEN:PLAINTEXT", listener_count=2)
    b.start()
    try:
        b.wait_for_stderr(r"listening on 0\.0\.0\.0 \(listener OPEN, PLAINTEXT\) without authentication")
        assert not any("127.0.0.1" in line and "without authentication" in line for line in b.stderr_lines)
    finally:
        b.stop()


@pytest.mark.parametrize("args,message", [
    (["--set", "listeners=SSL://127.0.0.1:0"], "needs a key and certificate"),
    (["--set", "listeners=SASL_PLAINTEXT://127.0.0.1:0", "--set", "sasl.enabled.mechanisms=GSSAPI"], "not supported"),
    (["--sasl-user", "nopassword"], "NAME:PASSWORD"),
])
def test_security_settings_that_cannot_work_stop_the_start(tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "kbroker", "serve", "--port", "0", "--storage", "memory", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and message in r.stderr, r.stderr
