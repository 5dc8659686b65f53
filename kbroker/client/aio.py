"""The asyncio shell of the client: connections with pipelined requests, and a client that finds the
cluster from its bootstrap servers.

``Connection`` writes each request as soon as it is asked for and keeps any number in flight; the answers,
which Kafka sends in request order, are received by an ``asyncio.BufferedProtocol`` straight into the frame
reader's buffers (wire/framing.py, as the server receives requests) and resolve the waiting futures in that
order, decoded in the protocol's callback.
Writing a frame and queueing its future happen without an ``await`` between them, so concurrent callers on
one loop cannot interleave a frame with another's. A failed read (EOF, reset, an answer out of step) fails
every request in flight and closes the connection: after that the stream position is unknown.

``Client`` connects to the first bootstrap server that answers, learns the brokers and the controller from
Metadata, opens one connection per broker on demand, and offers the admin operations the tools need.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque

from ..errors import ErrorCode
from ..wire.buffer_pool import BufferPool
from ..wire.framing import SCRATCH_BYTES, FrameError, FrameReader, ScratchPool
from ..wire.header import API_VERSIONS_KEY
from ..wire.messages import create_partitions, create_topics, delete_topics, metadata, sasl_authenticate, sasl_handshake
from .protocol import (MAX_RESPONSE_BYTES, ClientError, ClientProtocol, ProtocolError, check,
                       expects_response, negotiation, pick_version)
from .sasl import SaslClientError, SaslCredentials, mechanism_client

SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY = 17, 36
# Answers up to this size are received into buffers used again (a follower's Fetch answer is up to
# replica.fetch.response.max.bytes, 10 MiB, one partition's up to replica.fetch.max.bytes, 1 MiB); larger
# ones get a buffer of their own. A connection keeps at most this much for the next answers.
RESPONSE_POOL_BYTES = 16 * 1024 * 1024


def split_host_port(address: str) -> tuple[str, int]:
    host, port = address.strip().rsplit(":", 1)
    return host.strip("[]"), int(port)


class _Stream(asyncio.BufferedProtocol):
    """The socket side of a ``Connection``: bytes are received straight into the frame reader's buffers
    (wire/framing.py, as the server receives requests), not copied through a ``StreamReader``: a follower's
    Fetch answers are a megabyte each, and a stream reader copies every byte twice more (into its buffer,
    then out of it) before the answer is decoded. A large answer lands in a buffer of its own, which is used
    again for a later answer once nothing views it (its records are memoryviews of it until the caller is
    done with the response)."""

    def __init__(self, conn: "Connection"):
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(MAX_RESPONSE_BYTES, pool=BufferPool(RESPONSE_POOL_BYTES, RESPONSE_POOL_BYTES),
                                  scratch_pool=ScratchPool(SCRATCH_BYTES), recycle_max_bytes=RESPONSE_POOL_BYTES)
        self.closed = asyncio.get_running_loop().create_future()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int):
        return self.reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.reader.buffer_updated(nbytes)
        except FrameError as e:
            self._lost(ProtocolError(f"response frame refused: {e}"))
            return
        reader, conn = self.reader, self.conn
        while (frame := reader.next_frame()) is not None:
            if not conn.answer(frame):
                self._lost(None)
                return
            reader.recycle(frame)  # its buffer is taken again only once nothing views it (buffer_pool.py)

    def eof_received(self) -> bool:
        self.conn.fail(ConnectionError("connection closed by the broker (EOF)"))
        return False  # the transport closes itself

    def connection_lost(self, exc) -> None:
        self.conn.fail(ConnectionError(f"connection closed by the broker ({exc.__class__.__name__})" if exc
                                       else "connection closed"))
        self.reader.close()
        self._wake_drainers(exc or ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _lost(self, error: BaseException | None) -> None:
        """The stream is out of step: fail what is in flight and close (nothing after can be trusted)."""
        if error is not None:
            self.conn.fail(error)
        if self.transport is not None:
            self.transport.abort()

    # -- write flow control, as StreamWriter.drain ----------------------------------------------------

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))

    async def drain(self) -> None:
        if self.closed.done():
            raise ConnectionError("connection closed")
        if not self._write_paused:
            return
        fut = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(fut)
        await fut


class Connection:
    def __init__(self, protocol: ClientProtocol):
        self.protocol = protocol
        self.versions: dict[int, int] = {}
        self._waiters: deque[asyncio.Future | None] = deque()
        self._failure: BaseException | None = None
        self._stream = _Stream(self)

    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str | None = "kbroker-client",
                   ssl: ssl_module.SSLContext | None = None, negotiate_versions: bool = True,
                   timeout_s: float = 30.0, sasl: SaslCredentials | None = None) -> "Connection":
        """A connection (over TLS with ``ssl``), its versions negotiated and, with ``sasl``, authenticated."""
        conn = cls(ClientProtocol(client_id))
        await asyncio.wait_for(asyncio.get_running_loop().create_connection(
            lambda: conn._stream, host, port, ssl=ssl, server_hostname=host if ssl else None), timeout_s)
        if negotiate_versions or sasl is not None:
            try:
                await asyncio.wait_for(conn.negotiate(), timeout_s)
                if sasl is not None:
                    await asyncio.wait_for(conn.authenticate(sasl), timeout_s)
            except BaseException:
                await conn.close()
                raise
        return conn

    async def authenticate(self, credentials: SaslCredentials) -> None:
        """SaslHandshake v1 and SaslAuthenticate until the mechanism is done (Kafka's SaslClientAuthenticator);
        ClientError with the broker's code (SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM) if refused."""
        hs = await self.send(SASL_HANDSHAKE_KEY, sasl_handshake.SaslHandshakeRequest(
            mechanism=credentials.mechanism), 1)
        check(hs.error_code, f"mechanism {credentials.mechanism} not enabled (the broker offers "
                             f"{', '.join(hs.mechanisms or [])})" if hs.error_code else None)
        mech = mechanism_client(credentials)
        token: bytes | None = mech.first()
        version = self.version(SASL_AUTHENTICATE_KEY, 2)
        while token is not None:
            resp = await self.send(SASL_AUTHENTICATE_KEY, sasl_authenticate.SaslAuthenticateRequest(
                auth_bytes=token), version)
            check(resp.error_code, resp.error_message)
            try:
                token = mech.evaluate(bytes(resp.auth_bytes or b""))
            except SaslClientError as e:
                raise ClientError(ErrorCode.SASL_AUTHENTICATION_FAILED, str(e)) from None

    # -- versions ---------------------------------------------------------------------------------------

    async def negotiate(self, version: int | None = None) -> dict[int, int]:
        """ApiVersions, from our highest version down to what the broker names after UNSUPPORTED_VERSION."""
        steps = negotiation(version)
        v, request = next(steps)
        while True:
            try:
                v, request = steps.send(await self.send(API_VERSIONS_KEY, request, v))
            except StopIteration as done:
                self.versions = done.value
                return self.versions

    def version(self, api_key: int, at_most: int | None = None) -> int:
        """The version to use for ``api_key``: the negotiated one, capped at ``at_most``."""
        return pick_version(self.versions, api_key, at_most)

    # -- requests ---------------------------------------------------------------------------------------

    def send_nowait(self, api_key: int, request, version: int | None = None) -> asyncio.Future | None:
        """Write the request now; the future resolves to the response (None for Produce with acks=0)."""
        if self._failure is not None:
            raise ConnectionError(f"connection failed: {self._failure}")
        if version is None:
            version = self.version(api_key)
        frame = self.protocol.encode(api_key, version, request)
        self._stream.transport.write(frame)
        if not expects_response(api_key, request):
            return None
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    async def send(self, api_key: int, request, version: int | None = None):
        fut = self.send_nowait(api_key, request, version)
        await self._stream.drain()
        return None if fut is None else await fut

    def answer(self, frame) -> bool:
        """A response frame arrived (the stream's callback): decode it and resolve the oldest request in
        flight. False when the stream is out of step (the connection then fails and closes)."""
        try:
            if not self._waiters:
                raise ProtocolError("a response arrived with no request in flight")
            resp = self.protocol.decode(frame)
        except ProtocolError as e:
            self.fail(e)
            return False
        fut = self._waiters.popleft()
        if not fut.done():
            fut.set_result(resp)
        return True

    def fail(self, exc: BaseException) -> None:
        """Every request in flight fails with ``exc``; so does every later one (the first failure stays)."""
        if self._failure is None:
            self._failure = exc
        while self._waiters:
            fut = self._waiters.popleft()
            if fut is not None and not fut.done():
                fut.set_exception(exc)

    def abort(self, exc: BaseException) -> None:
        """Fail what is in flight with ``exc`` at once and drop the connection without waiting (a write
        blocked in ``drain`` then fails with ConnectionError); ``close`` still awaits the end."""
        self.fail(exc)
        if self._stream.transport is not None:
            self._stream.transport.abort()

    @property
    def closed(self) -> bool:
        return self._failure is not None

    async def close(self) -> None:
        self.fail(ConnectionError("connection closed"))
        transport = self._stream.transport
        if transport is None:
            return
        transport.close()
        try:
            await asyncio.shield(self._stream.closed)
        except (OSError, ssl_module.SSLError):
            pass


class Client:
    """A cluster seen from its bootstrap servers."""

    def __init__(self, bootstrap: str, *, client_id: str = "kbroker-client",
                 ssl: ssl_module.SSLContext | None = None, timeout_s: float = 30.0):
        self.bootstrap = [split_host_port(a) for a in bootstrap.split(",") if a.strip()]
        self.client_id = client_id
        self.ssl = ssl
        self.timeout_s = timeout_s
        self.brokers: dict[int, tuple[str, int]] = {}
        self.controller_id = -1
        self._bootstrap_conn: Connection | None = None
        self._conns: dict[int, Connection] = {}

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _open(self, host: str, port: int) -> Connection:
        return await Connection.open(host, port, client_id=self.client_id, ssl=self.ssl, timeout_s=self.timeout_s)

    async def connect(self) -> Connection:
        """A connection to the first bootstrap server that answers ApiVersions; learns the cluster."""
        if self._bootstrap_conn is not None and not self._bootstrap_conn.closed:
            return self._bootstrap_conn
        errors = []
        for host, port in self.bootstrap:
            try:
                self._bootstrap_conn = await self._open(host, port)
                break
            except (OSError, asyncio.TimeoutError, ClientError) as e:
                errors.append(f"{host}:{port}: {e!r}")
        else:
            raise ConnectionError("no bootstrap server answered: " + "; ".join(errors))
        await self.metadata([])
        return self._bootstrap_conn

    async def broker(self, node_id: int) -> Connection:
        conn = self._conns.get(node_id)
        if conn is not None and not conn.closed:
            return conn
        if node_id not in self.brokers:
            await self.metadata([])
        if node_id not in self.brokers:
            raise ClientError(ErrorCode.BROKER_NOT_AVAILABLE, f"broker {node_id} is not in the cluster's metadata")
        conn = self._conns[node_id] = await self._open(*self.brokers[node_id])
        return conn

    async def controller(self) -> Connection:
        """Where admin requests go: the controller Metadata names (Kafka's admin client does the same)."""
        await self.connect()
        if self.controller_id < 0:
            return self._bootstrap_conn
        return await self.broker(self.controller_id)

    async def close(self) -> None:
        conns = list(self._conns.values())
        if self._bootstrap_conn is not None:
            conns.append(self._bootstrap_conn)
        self._conns.clear()
        self._bootstrap_conn = None
        for c in conns:
            await c.close()

    # -- operations -------------------------------------------------------------------------------------

    async def metadata(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False):
        """Metadata for ``topics`` (None: every topic); refreshes the brokers and the controller."""
        conn = self._bootstrap_conn if self._bootstrap_conn is not None else await self.connect()
        resp = await conn.send(3, metadata_request(conn.version(3), topics, allow_auto_topic_creation))
        self.brokers = {b.node_id: (b.host, b.port) for b in resp.brokers}
        self.controller_id = resp.controller_id
        return resp

    async def list_topics(self) -> list[str]:
        return sorted(t.name for t in (await self.metadata(None)).topics if t.error_code == 0)

    async def create_topics(self, topics: dict[str, dict], timeout_ms: int = 30000,
                            validate_only: bool = False) -> None:
        """``topics``: name -> {"partitions", "replication_factor", "config"}; raises the first error."""
        conn = await self.controller()
        resp = await conn.send(19, create_topics_request(topics, timeout_ms, validate_only))
        for r in resp.topics:
            check(r.error_code, r.error_message)

    async def create_topic(self, name: str, partitions: int = -1, config: dict[str, str] | None = None,
                           replication_factor: int = -1) -> None:
        await self.create_topics({name: {"partitions": partitions, "replication_factor": replication_factor,
                                         "config": config or {}}})

    async def delete_topics(self, names: list[str], timeout_ms: int = 30000) -> None:
        conn = await self.controller()
        resp = await conn.send(20, delete_topics_request(conn.version(20), names, timeout_ms))
        for r in resp.responses:
            check(r.error_code, r.error_message)

    async def delete_topic(self, name: str) -> None:
        await self.delete_topics([name])

    async def create_partitions(self, counts: dict[str, int], timeout_ms: int = 30000,
                                validate_only: bool = False) -> None:
        conn = await self.controller()
        C = create_partitions.CreatePartitionsRequest
        req = C(topics=[C.CreatePartitionsTopic(name=n, count=c, assignments=None) for n, c in counts.items()],
                timeout_ms=timeout_ms, validate_only=validate_only)
        resp = await conn.send(37, req)
        for r in resp.results:
            check(r.error_code, r.error_message)


# -- request builders shared by the async and the blocking clients ------------------------------------------

def metadata_request(version: int, topics: list[str] | None, allow_auto_topic_creation: bool = False):
    """None asks for every topic: a null array from v1 on, an empty one in v0 (which has no null)."""
    M = metadata.MetadataRequest
    if topics is None and version == 0:
        topics = []
    return M(topics=None if topics is None else [M.MetadataRequestTopic(name=t) for t in topics],
             allow_auto_topic_creation=allow_auto_topic_creation)


def create_topics_request(topics: dict[str, dict], timeout_ms: int, validate_only: bool = False):
    C = create_topics.CreateTopicsRequest
    return C(topics=[C.CreatableTopic(
        name=name, num_partitions=spec.get("partitions", -1),
        replication_factor=spec.get("replication_factor", -1), assignments=[],
        configs=[C.CreatableTopicConfig(name=k, value=v) for k, v in (spec.get("config") or {}).items()],
    ) for name, spec in topics.items()], timeout_ms=timeout_ms, validate_only=validate_only)


def delete_topics_request(version: int, names: list[str], timeout_ms: int):
    D = delete_topics.DeleteTopicsRequest
    if version >= 6:
        return D(topics=[D.DeleteTopicState(name=n) for n in names], timeout_ms=timeout_ms)
    return D(topic_names=list(names), timeout_ms=timeout_ms)
