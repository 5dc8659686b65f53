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


class AwaitingReplication:
    """A handler's answer whose request has taken effect (its records are appended) and that waits only for
    the followers (acks=all): the connection may handle the client's next Produce meanwhile, answers still
    going out in request order (server.py). Awaiting it awaits the answer."""
    __slots__ = ("awaitable",)

    def __init__(self, awaitable):
        self.awaitable = awaitable

    def __await__(self):
        return self.awaitable.__await__()


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
    # The client quotas' throttle time for this request (client_quotas.py): the answer carries it as
    # throttle_time_ms and the connection is muted for as long once the answer is sent (KIP-219).
    throttle_ms: int = 0
    request_bytes: int = 0  # the request's size (the produce byte rate counts it)

    def throttle(self, ms: int) -> int:
        """Throttle this request's connection for ``ms`` (the longest asked for wins); returns the throttle time."""
        if ms > self.throttle_ms:
            self.throttle_ms = ms
        return self.throttle_ms

    @property
    def quota_user(self) -> str:
        """The user the client quotas know this client by: the principal's name (ANONYMOUS without one)."""
        return self.principal.split(":", 1)[1] if ":" in self.principal else self.principal

    @property
    def client_host(self) -> str:
        return self.peer.rsplit(":", 1)[0]

    @property
    def advertised(self) -> tuple[str, int]:
        """The host and port this broker is known by on the client's listener."""
        if self.listener is not None:
            return self.listener.advertised()
        return self.broker.advertised_host, self.broker.advertised_port

    def endpoint(self, node_id: int) -> tuple[str, int] | None:
        """Where the client reaches broker ``node_id`` through a listener of the same name as its own (Kafka
        answers every broker by the client's listener name); None when that broker is not alive."""
        if node_id == self.broker.node_id:
            return self.advertised
        name = self.listener.name if self.listener is not None else "PLAINTEXT"
        return self.broker.live_endpoint(node_id, name)

    def live_brokers(self) -> list[tuple[int, str, int, str | None]]:
        """(node id, host, port, rack) of every live broker, by node id, as the client's listener reaches them."""
        out = []
        for b in self.broker.controller.brokers():
            ep = self.endpoint(b.node_id) if b.alive else None
            if ep is not None:
                out.append((b.node_id, ep[0], ep[1], b.rack))
        return out

    def registered_brokers(self) -> list[tuple[int, str, int, str | None, bool]]:
        """(node id, host, port, rack, fenced) of every registered broker, alive or not (a stopped or dead one
        is Kafka's fenced broker: registered, not alive), by node id, at its advertised address of the
        client's listener name (DescribeCluster v2's IncludeFencedBrokers, KIP-1073)."""
        name = self.listener.name if self.listener is not None else "PLAINTEXT"
        out = []
        for b in sorted(self.broker.controller.brokers(), key=lambda b: b.node_id):
            ep = self.endpoint(b.node_id) if b.alive else b.endpoints.get(name)
            if ep is not None:
                out.append((b.node_id, ep[0], ep[1], b.rack, not b.alive))
        return out

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
