"""What a handler knows about the request it is answering.

Besides the request itself: the listener it came through (whose advertised address Metadata, FindCoordinator
and DescribeCluster name), the authenticated principal and, for the SASL APIs, the connection's
authentication session. ``authorize`` asks the broker's authorizer (always yes when ACLs are off), so a
handler checks an operation with one call: ``ctx.authorize(acl.WRITE, acl.TOPIC, name)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..security import acl

if TYPE_CHECKING:
    from ..broker_state import BrokerState
    from ..security.authenticator import Session
    from ..security.listeners import Listener

ANONYMOUS = "User:ANONYMOUS"


@dataclass(slots=True)
class RequestContext:
    broker: "BrokerState"
    api_key: int
    version: int
    correlation_id: int
    client_id: str | None
    peer: str  # "host:port" of the client
    connection_id: int
    listener: "Listener | None" = None
    principal: str = ANONYMOUS
    session: "Session | None" = None

    @property
    def client_host(self) -> str:
        return self.peer.rsplit(":", 1)[0]

    @property
    def advertised(self) -> tuple[str, int]:
        """The host and port this broker is known by on the client's listener."""
        if self.listener is not None:
            return self.listener.advertised()
        return self.broker.advertised_host, self.broker.advertised_port

    # -- authorisation (security/acl.py) ---------------------------------------------------------------

    def authorize(self, operation, resource_type, name: str, *, log_denied: bool = True) -> bool:
        authorizer = self.broker.authorizer
        return authorizer is None or authorizer.authorize(self.principal, self.client_host, operation,
                                                          resource_type, name, log_denied)

    def authorized(self, operation, resource_type, names, *, log_denied: bool = True) -> set[str]:
        """The names among ``names`` the principal may ``operation`` (Kafka's filterByAuthorized)."""
        return {n for n in set(names) if self.authorize(operation, resource_type, n, log_denied=log_denied)}

    def authorize_cluster(self, operation, *, log_denied: bool = True) -> bool:
        return self.authorize(operation, acl.CLUSTER, acl.CLUSTER_NAME, log_denied=log_denied)

    def authorize_by_resource_type(self, operation, resource_type) -> bool:
        authorizer = self.broker.authorizer
        return authorizer is None or authorizer.authorize_by_resource_type(self.principal, self.client_host,
                                                                           operation, resource_type)

    def authorized_operations(self, resource_type, name: str) -> int:
        """The bit set Metadata, DescribeGroups and DescribeCluster report (bit n: operation code n)."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return acl.all_operations(resource_type)
        return authorizer.authorized_operations(self.principal, self.client_host, resource_type, name)
