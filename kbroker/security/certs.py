"""``kbroker certs DIR``: throwaway certificates for tests and laptops (never for production).

Writes, in DIR:

    ca.pem            the CA certificate: the truststore of both sides (ssl.truststore.location on the
                      broker, ssl.ca.location / ssl_cafile on clients)
    ca-key.pem        the CA's private key (only needed to sign more certificates)
    server.pem        the broker's key and certificate chain in one file (ssl.keystore.location)
    server-key.pem, server-cert.pem   the same, split (for tools that want two files)
    client.pem        a client's key and certificate (subject CN=client,OU=kbroker-test,O=kbroker)
    client-key.pem, client-cert.pem   the same, split (ssl.key.location / ssl.certificate.location)

The server certificate names localhost and 127.0.0.1 (and ::1, and any extra ``--host`` names), so clients
that verify host names accept it. Keys are ECDSA P-256, unencrypted, written with mode 0600; certificates are
valid for a year. Uses the ``cryptography`` package.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

CLIENT_SUBJECT = "CN=client,OU=kbroker-test,O=kbroker"


def _name(cn: str, ou: str | None = None):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kbroker")]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_certs(directory, hosts=("localhost", "127.0.0.1", "::1"), days: int = 365) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=days)

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def cert_pem(cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kbroker test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(subject, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    san = []
    for h in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            san.append(x509.DNSName(h))
    server_key, server_cert = leaf(_name("localhost", "kbroker-server"), ExtendedKeyUsageOID.SERVER_AUTH, san)
    client_key, client_cert = leaf(_name("client", "kbroker-test"), ExtendedKeyUsageOID.CLIENT_AUTH)

    files = {
        "ca.pem": (cert_pem(ca), False), "ca-key.pem": (key_pem(ca_key), True),
        "server.pem": (key_pem(server_key) + cert_pem(server_cert) + cert_pem(ca), True),
        "server-key.pem": (key_pem(server_key), True), "server-cert.pem": (cert_pem(server_cert), False),
        "client.pem": (key_pem(client_key) + cert_pem(client_cert), True),
        "client-key.pem": (key_pem(client_key), True), "client-cert.pem": (cert_pem(client_cert), False),
    }
    paths = {}
    for name, (data, private) in files.items():
        _write(out / name, data, private)
        paths[name] = out / name
    return paths
