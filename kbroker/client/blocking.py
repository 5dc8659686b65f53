"""The blocking faces of the client, for synchronous callers (the pytest plugin, tests, the benchmark).

``BlockingClient`` is the async ``Client`` run on a private event loop in a daemon thread: each call is
handed to that loop and waited for, so it works from plain code and from code that already runs a loop.

``BlockingConnection`` is one connection over a plain socket, driven by the same ``ClientProtocol`` as the
async one. It is for callers that need the bytes themselves: a test that sends a malformed frame, pipelines
frames in one write, or reads an answer byte for byte. Its ``sock`` is an ordinary socket the caller may
shut down, make non-blocking or wrap in TLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import threading

from ..wire.header import API_VERSIONS_KEY
from .aio import Client
from .protocol import ClientProtocol, negotiation, pick_version


class BlockingConnection:
    def __init__(self, host: str, port: int, *, client_id: str | None = "kbroker-client",
                 timeout_s: float = 10.0, ssl: ssl_module.SSLContext | None = None,
                 negotiate_versions: bool = False):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        if ssl is not None:
            self.sock = ssl.wrap_socket(self.sock, server_hostname=host)
        self.protocol = ClientProtocol(client_id)
        self.versions: dict[int, int] = {}
        if negotiate_versions:
            self.negotiate()

    @classmethod
    def over(cls, sock: socket.socket, *, client_id: str | None = "kbroker-client") -> "BlockingConnection":
        """A connection over a socket the caller opened (and keeps using afterwards)."""
        conn = cls.__new__(cls)
        conn.sock, conn.protocol, conn.versions = sock, ClientProtocol(client_id), {}
        return conn

    def __enter__(self) -> "BlockingConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def correlation_id(self) -> int:
        """The correlation id of the last request framed."""
        return self.protocol.correlation_id

    # -- frames -----------------------------------------------------------------------------------------

    def frame(self, api_key: int, version: int, request, client_id: str | None | type = ...) -> bytes:
        """The bytes of one request frame (size prefix included), now in flight; send them with
        ``send_bytes``, alone or with other frames."""
        return self.protocol.encode(api_key, version, request, client_id)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes | None:
        """The next response frame without its size prefix, or None if the broker closed the connection."""
        while True:
            frame = self.protocol.next_frame()
            if frame is not None:
                return frame
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.protocol.receive_data(chunk)

    def read_response(self, api_key: int | None = None, version: int | None = None):
        """The answer to the oldest request in flight, decoded at its version (or at ``version``)."""
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("connection closed by the broker")
        if api_key is not None and self.protocol.in_flight and self.protocol.in_flight[0].api_key != api_key:
            raise ValueError(f"the oldest request in flight is {self.protocol.in_flight[0]}, not API {api_key}")
        return self.protocol.decode(frame, version)

    def request(self, api_key: int, version: int, request, response_version: int | None = None):
        self.send_bytes(self.frame(api_key, version, request))
        return self.read_response(api_key, response_version)

    def send(self, api_key: int, request, version: int | None = None):
        """One request at the negotiated version (or ``version``), and its answer."""
        return self.request(api_key, self.version(api_key) if version is None else version, request)

    def is_closed(self) -> bool:
        """True if the broker closed the connection (a read sees EOF or a reset)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    # -- versions ---------------------------------------------------------------------------------------

    def negotiate(self, version: int | None = None) -> dict[int, int]:
        steps = negotiation(version)
        v, request = next(steps)
        while True:
            try:
                v, request = steps.send(self.request(API_VERSIONS_KEY, v, request))
            except StopIteration as done:
                self.versions = done.value
                return self.versions

    def version(self, api_key: int, at_most: int | None = None) -> int:
        return pick_version(self.versions, api_key, at_most)


class BlockingClient:
    """``Client``'s operations for synchronous code: ``BlockingClient(bootstrap).create_topic(...)``."""

    def __init__(self, bootstrap: str, *, client_id: str = "kbroker-client",
                 ssl: ssl_module.SSLContext | None = None, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kbroker-client", daemon=True)
        self._thread.start()
        self.client = Client(bootstrap, client_id=client_id, ssl=ssl, timeout_s=timeout_s)
        try:
            self._run(self.client.connect())
        except BaseException:
            self._stop()
            raise

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s + 5)

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.client.close())
        finally:
            self._stop()

    def __enter__(self) -> "BlockingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def controller_id(self) -> int:
        return self.client.controller_id

    def metadata(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False):
        return self._run(self.client.metadata(topics, allow_auto_topic_creation))

    def list_topics(self) -> list[str]:
        return self._run(self.client.list_topics())

    def create_topics(self, topics: dict[str, dict], timeout_ms: int = 30000, validate_only: bool = False) -> None:
        self._run(self.client.create_topics(topics, timeout_ms, validate_only))

    def create_topic(self, name: str, partitions: int = -1, config: dict[str, str] | None = None,
                     replication_factor: int = -1) -> None:
        self._run(self.client.create_topic(name, partitions, config, replication_factor))

    def delete_topics(self, names: list[str], timeout_ms: int = 30000) -> None:
        self._run(self.client.delete_topics(names, timeout_ms))

    def delete_topic(self, name: str) -> None:
        self._run(self.client.delete_topic(name))

    def create_partitions(self, counts: dict[str, int], timeout_ms: int = 30000, validate_only: bool = False) -> None:
        self._run(self.client.create_partitions(counts, timeout_ms, validate_only))

    def send(self, api_key: int, request, version: int | None = None, node_id: int | None = None):
        """Any request, to the bootstrap connection or to broker ``node_id``, at the negotiated version."""
        async def go():
            conn = await (self.client.connect() if node_id is None else self.client.broker(node_id))
            return await conn.send(api_key, request, version)
        return self._run(go())
