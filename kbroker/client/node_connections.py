"""One connection per other broker, for a broker's own requests to its peers (transaction markers, partitions
added to a transaction, share-group state): opened on first use with the broker's inter-broker ``connect``
(inter_broker.py: the inter-broker listener's TLS and SASL), reused while it stays open, dropped on an error so
that the next request opens a fresh one. Kafka's ``NetworkClient`` inside its ``NodeToNodeChannelManager`` /
``InterBrokerSendThread``.

Concurrency: the event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .aio import ClientError, Connection


class NodeUnreachable(Exception):
    """The request got no answer: the connection could not be opened, broke, or timed out (it is dropped)."""


class NodeConnections:
    def __init__(self, client_id: str, timeout_s: float,
                 connect: Callable[..., Awaitable[Connection]] | None = None) -> None:
        """``connect(host, port, client_id=, timeout_s=)``: a connection to another broker (None: plain
        ``Connection.open``); ``timeout_s``: for opening it and for each request."""
        self._connect = connect or Connection.open
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._conns: dict[int, Connection] = {}
        self.sent = 0  # requests sent, for tests and metrics

    async def send(self, node: int, endpoint: tuple[str, int], api_key: int, request, version: int | None = None):
        """The answer of ``node`` (at ``endpoint``) to ``request``; NodeUnreachable when there is none."""
        try:
            conn = self._conns.get(node)
            if conn is None or conn.closed:
                conn = self._conns[node] = await self._connect(*endpoint, client_id=self.client_id,
                                                               timeout_s=self.timeout_s)
            self.sent += 1
            return await asyncio.wait_for(conn.send(api_key, request, version), self.timeout_s)
        except (OSError, asyncio.TimeoutError, ClientError, ConnectionError) as e:
            conn = self._conns.pop(node, None)
            if conn is not None:
                await conn.close()
            raise NodeUnreachable(f"broker {node}: {e!r}") from None

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            await conn.close()
