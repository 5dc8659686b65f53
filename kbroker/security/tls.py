"""TLS on a listener: Python's ``ssl`` configured with Kafka's settings for PEM files.

    ssl.keystore.type=PEM
    ssl.keystore.location=/etc/kbroker/server.pem        # private key and certificate chain in one file
    ssl.keystore.certificate.chain=-----BEGIN ...        # or both inline, as PEM text
    ssl.keystore.key=-----BEGIN PRIVATE KEY-----...
    ssl.key.password=...                                  # when the key is encrypted
    ssl.truststore.location=/etc/kbroker/ca.pem          # CAs that sign client certificates
    ssl.client.auth=required|requested|none
    ssl.enabled.protocols=TLSv1.2,TLSv1.3

Inline PEM may come from a properties file whose line continuations removed the newlines; blocks are found by
their BEGIN/END lines and re-wrapped. A verified client certificate's subject is the principal, written as
Java's ``X500Principal.getName()`` writes it (RFC 2253: most specific name first), which is what Kafka's
default principal builder gives: ``User:CN=alice,OU=eng,O=example``.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile

from . import SecurityConfigError

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_PROTOCOLS = {"TLSV1": ssl.TLSVersion.TLSv1, "TLSV1.1": ssl.TLSVersion.TLSv1_1,
              "TLSV1.2": ssl.TLSVersion.TLSv1_2, "TLSV1.3": ssl.TLSVersion.TLSv1_3}


def normalise_pem(text: str) -> str:
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise SecurityConfigError("expected PEM text (-----BEGIN ...-----)")
    out = []
    for label, body in blocks:
        lines = body.strip().splitlines()
        headers = [ln.strip() for ln in lines if ":" in ln]  # e.g. Proc-Type of an encrypted legacy key
        b64 = "".join("".join(ln.split()) for ln in lines if ":" not in ln)
        chunks = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        out.append("\n".join([f"-----BEGIN {label}-----", *headers, *([""] if headers else []), *chunks,
                              f"-----END {label}-----"]))
    return "\n".join(out) + "\n"


def _load_inline_chain(ctx: ssl.SSLContext, chain: str, key: str, password: str | None) -> None:
    # load_cert_chain reads files only: write both to a private temporary directory and remove it at once.
    with tempfile.TemporaryDirectory(prefix="kbroker-tls-") as d:
        cert_path, key_path = os.path.join(d, "chain.pem"), os.path.join(d, "key.pem")
        for path, text in ((cert_path, normalise_pem(chain)), (key_path, normalise_pem(key))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        ctx.load_cert_chain(cert_path, key_path, password=password)


def _load_keystore(ctx: ssl.SSLContext, listener) -> bool:
    """The listener's key and certificate chain into ``ctx``; False when none is configured."""
    password = listener.get("ssl.key.password") or listener.get("ssl.keystore.password")
    location = listener.get("ssl.keystore.location")
    chain, key = listener.get("ssl.keystore.certificate.chain"), listener.get("ssl.keystore.key")
    if location:
        ctx.load_cert_chain(location, password=password)
    elif chain and key:
        _load_inline_chain(ctx, chain, key, password)
    else:
        return False
    return True


def _load_truststore(ctx: ssl.SSLContext, listener) -> bool:
    """The listener's trusted CA certificates into ``ctx``; False when none is configured."""
    location = listener.get("ssl.truststore.location")
    inline = listener.get("ssl.truststore.certificates")
    if location:
        ctx.load_verify_locations(cafile=location)
    elif inline:
        ctx.load_verify_locations(cadata=normalise_pem(inline))
    else:
        return False
    return True


def server_context(listener) -> ssl.SSLContext:
    """The SSLContext a TLS listener serves with; SecurityConfigError names what is missing or unreadable."""
    name = listener.name
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    location = listener.get("ssl.keystore.location")
    try:
        if not _load_keystore(ctx, listener):
            raise SecurityConfigError(
                f"listener {name} ({listener.security_protocol}) needs a key and certificate: set "
                f"ssl.keystore.location (a PEM file with both), or ssl.keystore.certificate.chain and "
                f"ssl.keystore.key (with the {listener.prefix} prefix for this listener only); "
                "`kbroker certs DIR` writes throwaway ones")
    except (OSError, ssl.SSLError) as e:
        what = location or "ssl.keystore.certificate.chain/ssl.keystore.key"
        if isinstance(e, ssl.SSLError):  # no key in the file, or a wrong ssl.key.password
            why = f"{e} (is the private key in it, and ssl.key.password right?)"
        else:
            why = e.strerror or e
        raise SecurityConfigError(f"listener {name}: cannot load the key and certificate from {what}: {why}") \
            from None
    client_auth = listener.ssl_client_auth
    ctx.verify_mode = {"required": ssl.CERT_REQUIRED, "requested": ssl.CERT_OPTIONAL}.get(client_auth, ssl.CERT_NONE)
    trust_location = listener.get("ssl.truststore.location")
    try:
        if not _load_truststore(ctx, listener) and client_auth != "none":
            raise SecurityConfigError(f"listener {name}: ssl.client.auth={client_auth} needs "
                                      "ssl.truststore.location (the CA certificates that sign client certificates)")
    except (OSError, ssl.SSLError) as e:
        raise SecurityConfigError(f"listener {name}: cannot load the truststore "
                                  f"{trust_location or 'ssl.truststore.certificates'}: {e}") from None
    protocols = [p.strip().upper() for p in (listener.get("ssl.enabled.protocols") or "TLSv1.2,TLSv1.3").split(",")
                 if p.strip()]
    versions = [_PROTOCOLS[p] for p in protocols if p in _PROTOCOLS]
    if not versions:
        raise SecurityConfigError(f"listener {name}: ssl.enabled.protocols names no protocol kbroker knows "
                                  f"({', '.join(_PROTOCOLS)})")
    ctx.minimum_version, ctx.maximum_version = min(versions), max(versions)
    return ctx


def client_context(listener) -> ssl.SSLContext:
    """The SSLContext a broker connects to another broker's TLS listener with (inter-broker traffic), from that
    listener's settings as Kafka's broker-side clients take them: the truststore verifies the other broker's
    certificate, its host name checked unless ``ssl.endpoint.identification.algorithm`` is empty (Kafka's
    default https checks it); the broker's own key and certificate are presented when the listener requires
    client certificates."""
    name = listener.name
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = bool(listener.get("ssl.endpoint.identification.algorithm", "https"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        if not _load_truststore(ctx, listener):
            ctx.load_default_certs()
        if listener.ssl_client_auth == "required":
            _load_keystore(ctx, listener)
    except (OSError, ssl.SSLError) as e:
        raise SecurityConfigError(f"listener {name}: cannot set up the inter-broker TLS client: {e}") from None
    return ctx


# Attribute names as ssl.getpeercert() gives them -> the keywords X500Principal.getName() (RFC 2253) uses.
# Others are written as OID=#hex of their DER value, as Java does.
_RFC2253_KEYWORDS = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
_OIDS = {  # name -> (OID, DER string tag Java would see for the usual encoding)
    "emailAddress": ("1.2.840.113549.1.9.1", 0x16), "serialNumber": ("2.5.4.5", 0x13),
    "title": ("2.5.4.12", 0x0C), "surname": ("2.5.4.4", 0x0C), "givenName": ("2.5.4.42", 0x0C),
    "initials": ("2.5.4.43", 0x0C), "generationQualifier": ("2.5.4.44", 0x0C),
    "dnQualifier": ("2.5.4.46", 0x13), "pseudonym": ("2.5.4.65", 0x0C), "postalCode": ("2.5.4.17", 0x0C),
    "businessCategory": ("2.5.4.15", 0x0C),
}


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _der_hex(tag: int, value: str) -> str:
    raw = value.encode()
    n = len(raw)
    length = bytes([n]) if n < 128 else bytes([0x80 | len(n.to_bytes((n.bit_length() + 7) // 8, "big"))]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return "#" + (bytes([tag]) + length + raw).hex()


def rfc2253(subject) -> str:
    """A subject as ``ssl.getpeercert()['subject']`` gives it (RDNs, least specific first) in RFC 2253."""
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for name, value in rdn:
            if name in _RFC2253_KEYWORDS:
                parts.append(f"{_RFC2253_KEYWORDS[name]}={_escape(value)}")
            elif name in _OIDS:
                oid, tag = _OIDS[name]
                parts.append(f"{oid}={_der_hex(tag, value)}")
            else:
                parts.append(f"{name}={_escape(value)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def peer_principal(ssl_object) -> str | None:
    """``User:<subject DN>`` of the verified client certificate, or None when the client sent none."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert or not cert.get("subject"):
        return None
    return "User:" + rfc2253(cert["subject"])
