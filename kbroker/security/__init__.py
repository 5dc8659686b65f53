"""Security as Kafka configures it: listeners, TLS, SASL authentication and ACL authorisation.

    listeners.py      ``listeners``, ``advertised.listeners``, ``listener.security.protocol.map`` and the
                      listener-prefixed settings (``listener.name.<listener>.<key>``)
    tls.py            the server-side ``ssl.SSLContext`` from Kafka's PEM settings; a client certificate's
                      subject as the principal (``User:CN=...``, as Kafka's default principal builder)
    jaas.py           ``sasl.jaas.config`` values (``... PlainLoginModule required user_alice="...";``)
    scram.py          SCRAM-SHA-256/512 (RFC 5802, RFC 7677): stored credentials and the server exchange
    sasl.py           the PLAIN, SCRAM and OAUTHBEARER (unsecured JWS) servers behind one small interface
    credentials.py    the user store: salted SCRAM credentials and PLAIN password hashes, in a state log
    authenticator.py  one connection's authentication state (Kafka's SaslServerAuthenticator), sans-IO
    acl.py            ACL bindings, filters and the authorizer (Kafka's StandardAuthorizer rules)
    certs.py          ``kbroker certs DIR``: a throwaway CA, a server and a client certificate

Nothing here touches a socket: server.py feeds requests in and writes what comes out.
Secrets (passwords, JAAS values, private keys) are never logged nor put in an error message.
"""


class SecurityConfigError(ValueError):
    """The security settings cannot work as given; said once at start-up (never with a secret in it)."""


class SaslFailure(Exception):
    """A SASL exchange failed. A ``public`` message may be sent to the client; any other is replaced by
    Kafka's generic "invalid credentials" text, so that a client cannot tell which users exist."""

    def __init__(self, message: str, public: bool = False):
        super().__init__(message)
        self.public = public
