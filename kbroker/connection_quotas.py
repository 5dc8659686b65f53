"""How many connections the broker keeps and how fast it takes new ones, as Kafka's ConnectionQuotas
(SocketServer.scala) does: ``max.connections`` for the whole broker (every listener together),
``listener.name.<listener>.max.connections`` for one listener, ``max.connections.per.ip`` per client
address (with exceptions by address or host name in ``max.connections.per.ip.overrides``,
"host:N,10.0.0.1:M"), and ``max.connection.creation.rate`` / ``listener.name.<listener>.max.connection.creation.rate``
for new connections per second.

What happens at each limit, as in Kafka:
- over a creation rate, the listener's acceptor waits (it takes no connection from the kernel's backlog)
  until the rate, measured like Kafka's quota sensors (a Rate over ``quota.window.num`` samples of
  ``quota.window.size.seconds``), is back at the limit; the wait is at most one quota window. The
  connection is then served.
- at ``max.connections`` or a listener's ``max.connections``, the acceptor waits until a connection
  closes (or the limit is raised); new clients wait in the backlog, as Kafka's waitForConnectionSlot makes
  them. When max.connections is lowered below the connections open, the least recently active ones are closed until
  the count is back at the limit (Kafka's Processor.closeExcessConnections).
- over ``max.connections.per.ip`` the connection is accepted and closed at once (TooManyConnectionsException).

Kafka's inter-broker listener is exempt from the broker-wide limits; kbroker's brokers do not connect to
each other over a listener, so no listener is.

The per-address creation rate is a client quota (KIP-612): ``connection_creation_rate`` of an ``ip`` entity, or
of the ip default (AlterClientQuotas; client_quotas.py). As Kafka's recordIpConnectionMaybeThrottle does, a
connection that would take its address over that rate is not counted and not served: it is held for the throttle
time (at most one quota window) and then closed (Kafka's delayed close of a throttled socket), so a client that
reconnects in a loop is slowed down, and the other addresses are not.

The limits are read from the broker's config at every new connection; AlterConfigs calls
``limits_changed`` so that waiting acceptors and excess connections see a change at once.
One writer: everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time

from . import heap
from .config import parse_ip_overrides

log = logging.getLogger("kbroker.server")

UNLIMITED = 2147483647  # Kafka's Int.MaxValue: no limit


class RateSensor:
    """Kafka's Rate over a SampledStat (WindowedSum) with a quota: events per second over ``samples``
    windows of ``window_ms`` (plus the overlapping one), the elapsed time counted as at least
    ``samples - 1`` full windows, so that a burst at start-up is measured against the whole window."""

    def __init__(self, samples: int, window_ms: int):
        self.samples = max(1, samples)
        self.window_ms = max(1, window_ms)
        self._slots: list[list[float]] = []  # [start_ms, last_event_ms, value]
        self._current = 0

    def record(self, value: float, now_ms: float) -> None:
        slot = self._current_slot(now_ms)
        if now_ms - slot[0] >= self.window_ms:
            self._current = (self._current + 1) % (self.samples + 1)
            if self._current >= len(self._slots):
                slot = [now_ms, now_ms, 0.0]
                self._slots.append(slot)
            else:
                slot = self._slots[self._current]
                slot[:] = [now_ms, now_ms, 0.0]
        slot[2] += value
        slot[1] = now_ms

    def _current_slot(self, now_ms: float) -> list[float]:
        if not self._slots:
            self._slots.append([now_ms, now_ms, 0.0])
        return self._slots[self._current]

    def window_size_ms(self, now_ms: float) -> float:
        expire = self.samples * self.window_ms
        for slot in self._slots:  # purgeObsoleteSamples
            if now_ms - slot[1] >= expire:
                slot[:] = [now_ms, now_ms, 0.0]
        oldest = min(s[0] for s in self._slots) if self._slots else now_ms
        elapsed = now_ms - oldest
        full = int(elapsed // self.window_ms)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def rate(self, now_ms: float) -> float:
        window = self.window_size_ms(now_ms)
        return sum(s[2] for s in self._slots) / (window / 1000.0)

    def record_and_throttle_ms(self, now_ms: float, bound: int, max_throttle_ms: float) -> float:
        """Records one connection; the delay that brings the rate back to ``bound`` (QuotaUtils's
        boundedThrottleTime: (observed - bound) / bound x the rate's window), or 0 when it is within."""
        self.record(1.0, now_ms)
        if bound >= UNLIMITED:
            return 0.0
        observed = self.rate(now_ms)
        if observed <= bound:
            return 0.0
        return min(round((observed - bound) / bound * self.window_size_ms(now_ms)), max_throttle_ms)


class ConnectionQuotas:
    def __init__(self, config, ip_rate_of=None):
        self.config = config
        self._ip_rate_of = ip_rate_of  # ip -> its connection_creation_rate (client quotas), or None
        self._ip_rates: dict[str, RateSensor] = {}
        self.total = 0
        self.peak = 0  # connections at the last high point (see release)
        # queued.max.request.bytes: bytes of requests received and not yet answered, all connections;
        # connections that stopped reading because of it wait here.
        self.queued_bytes = 0
        self.memory_waiters: set = set()
        self.by_ip: collections.Counter[str] = collections.Counter()
        self.by_listener: collections.Counter[str | None] = collections.Counter()
        self._overrides_text: str | None = None
        self._overrides: dict[str, int] = {}
        self.servers: set = set()  # the listeners' KafkaServers, whose connections count here
        self._slot_waiters: set[asyncio.Future] = set()  # acceptors waiting for a slot or a limit change
        self._broker_rate: RateSensor | None = None
        self._listener_rates: dict[str | None, RateSensor] = {}
        self.throttled_ms = 0.0  # accepts held back by the creation rates, in all (for tests and reports)
        self.ip_throttled = 0  # connections refused by an ip's connection_creation_rate quota

    # -- accepting ---------------------------------------------------------------------------------

    async def wait_for_connection_slot(self, listener: str | None) -> None:
        """Kafka's waitForConnectionSlot: record the new connection in the broker's and the listener's
        creation-rate sensors and wait out the longer throttle time, then wait until the broker and the
        listener are below their max.connections."""
        start = _now_ms()
        throttle_ms = self._record_connection_and_get_throttle_ms(listener, start)
        end = start + throttle_ms
        while True:
            remaining = end - _now_ms()
            if remaining <= 0 and self.slot_available(listener):
                break
            waiter = asyncio.get_running_loop().create_future()
            self._slot_waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining / 1000 if remaining > 0 else None)
            except asyncio.TimeoutError:
                pass
            finally:
                self._slot_waiters.discard(waiter)
        self.throttled_ms += _now_ms() - start if throttle_ms else 0.0

    def slot_available(self, listener: str | None) -> bool:
        own = self.config.listener_max_connections.get(listener) if listener else None
        if own is not None and self.by_listener[listener] >= own:
            return False
        return self.total < self.config.max_connections

    def _record_connection_and_get_throttle_ms(self, listener: str | None, now_ms: float) -> float:
        c = self.config
        window_ms = c.quota_window_size_seconds * 1000
        if self._broker_rate is None:
            self._broker_rate = RateSensor(c.quota_window_num, window_ms)
        throttle = self._broker_rate.record_and_throttle_ms(now_ms, c.max_connection_creation_rate, window_ms)
        sensor = self._listener_rates.get(listener)
        if sensor is None:
            sensor = self._listener_rates[listener] = RateSensor(c.quota_window_num, window_ms)
        bound = c.listener_max_connection_creation_rate.get(listener, UNLIMITED) if listener else UNLIMITED
        return max(throttle, sensor.record_and_throttle_ms(now_ms, bound, window_ms))

    def ip_throttle_ms(self, ip: str) -> float:
        """Record a new connection from ``ip`` against its connection_creation_rate quota: 0 when it is within
        (the connection is counted), else the time to hold it before closing it (it is not counted)."""
        bound = self._ip_rate_of(ip) if self._ip_rate_of is not None else UNLIMITED
        if bound >= UNLIMITED:
            return 0.0
        c = self.config
        window_ms = c.quota_window_size_seconds * 1000
        sensor = self._ip_rates.get(ip)
        if sensor is None:
            if len(self._ip_rates) > 10000:  # addresses long gone: their samples have expired anyway
                self._ip_rates.clear()
            sensor = self._ip_rates[ip] = RateSensor(c.quota_window_num, window_ms)
        if bound <= 0:  # no connection at all
            self.ip_throttled += 1
            return float(window_ms)
        now = _now_ms()
        throttle = sensor.record_and_throttle_ms(now, bound, window_ms)
        if throttle > 0:
            sensor.record(-1.0, now)  # Kafka unrecords a connection it does not accept
            self.ip_throttled += 1
        return throttle

    def admit(self, ip: str, listener: str | None = None) -> str | None:
        """Counts a new connection from ``ip`` on ``listener`` (which has waited for its slot); or, when
        its address already has max.connections.per.ip, says why it must be closed (and counts nothing)."""
        limit = self.limit_for(ip)
        if self.by_ip[ip] >= limit:
            return f"address {ip} already has the configured maximum of {limit} connections " \
                   f"(max.connections.per.ip)"
        self.total += 1
        self.peak = max(self.peak, self.total)
        self.by_ip[ip] += 1
        self.by_listener[listener] += 1
        return None

    def release(self, ip: str, listener: str | None = None) -> None:
        self.total -= 1
        self.by_listener[listener] -= 1
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]
        self._wake()
        if self.peak - self.total >= TRIM_AFTER_CLOSED and self.total <= self.peak // 2:
            # Many connections have gone: give their memory back to the system. Python frees its arenas
            # once empty, but the C allocator keeps freed heap pages unless asked (glibc's malloc_trim).
            self.peak = self.total
            heap.trim()

    def limits_changed(self) -> None:
        """A limit was changed at run time: acceptors waiting for a slot look again, and connections over a
        lowered max.connections are closed, least recently active first (Kafka's closeExcessConnections;
        like Kafka, a lowered listener limit only holds new connections back)."""
        self._wake()
        excess = self.total - self.config.max_connections
        if excess <= 0:
            return
        conns = sorted((c for s in self.servers for c in s.connections if c.admitted and not c.closed),
                       key=lambda c: c.last_active)
        for conn in conns[:excess]:
            conn._close(f"more connections than max.connections ({self.config.max_connections}) after it "
                        f"was lowered; least recently active")

    def _wake(self) -> None:
        if self._slot_waiters:
            waiters, self._slot_waiters = self._slot_waiters, set()
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def limit_for(self, ip: str) -> int:
        text = self.config.max_connections_per_ip_overrides
        if text != self._overrides_text:
            self._overrides = _resolve(parse_ip_overrides(text))
            self._overrides_text = text
        return self._overrides.get(ip, self.config.max_connections_per_ip)


def _now_ms() -> float:
    return time.monotonic() * 1000


TRIM_AFTER_CLOSED = 256


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
