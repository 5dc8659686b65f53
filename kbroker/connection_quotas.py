"""How many connections the broker keeps, as Kafka's ConnectionQuotas counts them: ``max.connections``
for the whole broker (every listener together), ``listener.name.<listener>.max.connections`` for one
listener, and ``max.connections.per.ip`` per client address, with exceptions by address or host name in
``max.connections.per.ip.overrides`` ("host:N,10.0.0.1:M").

The limits are read from the broker's config at every new connection, so that AlterConfigs changes them
at once (Kafka marks all three dynamic). A connection over a limit is closed as soon as it is accepted.
Kafka differs in one case: at ``max.connections`` its acceptor stops accepting until a connection
closes, leaving new clients in the kernel's backlog; asyncio offers no way to pause accepting, so
kbroker closes the new connection, which a client sees as a refused connection and retries.

One writer: everything runs on the event loop.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import ipaddress
import logging
import socket

from .config import parse_ip_overrides

log = logging.getLogger("kbroker.server")


class ConnectionQuotas:
    def __init__(self, config):
        self.config = config
        self.total = 0
        self.peak = 0  # connections at the last high point (see release)
        # queued.max.request.bytes: bytes of requests received and not yet answered, all connections;
        # connections that stopped reading because of it wait here.
        self.queued_bytes = 0
        self.memory_waiters: set = set()
        self.by_ip: collections.Counter[str] = collections.Counter()
        self.by_listener: collections.Counter[str] = collections.Counter()
        self._overrides_text: str | None = None
        self._overrides: dict[str, int] = {}

    def admit(self, ip: str, listener: str | None = None) -> str | None:
        """Counts a new connection from ``ip`` on ``listener``; or, when a limit is reached, says why it must
        be closed (and counts nothing)."""
        c = self.config
        if self.total >= c.max_connections:
            return f"the broker already has the configured maximum of {c.max_connections} connections " \
                   f"(max.connections)"
        own = c.listener_max_connections.get(listener) if listener else None
        if own is not None and self.by_listener[listener] >= own:
            return f"listener {listener} already has the configured maximum of {own} connections " \
                   f"(listener.name.{listener.lower()}.max.connections)"
        limit = self.limit_for(ip)
        if self.by_ip[ip] >= limit:
            return f"address {ip} already has the configured maximum of {limit} connections " \
                   f"(max.connections.per.ip)"
        self.total += 1
        self.peak = max(self.peak, self.total)
        self.by_ip[ip] += 1
        if listener:
            self.by_listener[listener] += 1
        return None

    def release(self, ip: str, listener: str | None = None) -> None:
        self.total -= 1
        if listener:
            self.by_listener[listener] -= 1
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]
        if self.peak - self.total >= TRIM_AFTER_CLOSED and self.total <= self.peak // 2:
            # Many connections have gone: give their memory back to the system. Python frees its arenas
            # once empty, but the C allocator keeps freed heap pages unless asked (glibc's malloc_trim).
            self.peak = self.total
            _trim_heap()

    def limit_for(self, ip: str) -> int:
        text = self.config.max_connections_per_ip_overrides
        if text != self._overrides_text:
            self._overrides = _resolve(parse_ip_overrides(text))
            self._overrides_text = text
        return self._overrides.get(ip, self.config.max_connections_per_ip)


TRIM_AFTER_CLOSED = 256
_libc_name = ctypes.util.find_library("c")
_malloc_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def _trim_heap() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


def _resolve(overrides: dict[str, int]) -> dict[str, int]:
    """Host names become addresses, as Kafka's InetAddress.getByName does (once, when the setting
    changes); a name that does not resolve is reported and left out."""
    out = {}
    for host, count in overrides.items():
        try:
            out[str(ipaddress.ip_address(host))] = count
            continue
        except ValueError:
            pass
        try:
            for info in socket.getaddrinfo(host, None):
                out[info[4][0]] = count
        except OSError as e:
            log.warning("max.connections.per.ip.overrides: cannot resolve %s (%s)", host, e)
    return out
