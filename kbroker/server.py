"""The asyncio shell: sockets in, frames to handlers, responses out. The only module that touches sockets.

Theory of operation. Each connection is an ``asyncio.Protocol``. Bytes go into a sans-IO ``FrameReader``;
complete frames queue up and are handled strictly one after another, because Kafka answers the requests of
one connection in the order they were sent (clients pipeline up to max.in.flight requests and match answers
by correlation id, but several clients also rely on the order). A handler that can answer at once is called
and its answer written without creating a task; one that must wait (a long-polling Fetch, a JoinGroup)
returns an awaitable and the connection's queue waits behind it. Other connections are never affected.

Fairness and back-pressure, as Kafka's SocketServer: a connection is muted (asyncio ``pause_reading``) from
the moment a read yields a request until every request received is answered and the answers are mostly sent
(the transport below its high-water mark), so a client that stops reading holds at most one read's requests
and a buffer of answers. One exception, as Redpanda makes it: a Produce whose records are appended and whose
answer awaits only replication (acks=all, ``AwaitingReplication``) lets the connection handle the client's
next Produce requests meanwhile (up to MAX_AWAITING_REPLICATION answers wait in order; any other request waits
until they are out), so that one acks=all producer keeps the followers busy instead of paying a follower round
trip per request; appends and answers stay in request order. The requests of one read are handled one per
turn of the event loop, so a client pipelining thousands of them takes turns with everybody else instead of
holding the loop. Pipelining clients still pipeline: what they sent is answered in order, a few answers to a
write.
``queued.max.request.bytes`` bounds the bytes of requests received and not yet answered over all
connections (connections stop reading while it is reached); ``connections.max.idle.ms``,
``max.connections``, ``max.connections.per.ip`` and the creation rates (connection_quotas.py) bound the
connections: each listener socket has its own acceptor task, which stops taking connections while a limit
holds it back, as Kafka's Acceptor does. Stored batches an answer names (FileRegions) go out by sendfile
while the socket takes them; what it does not take waits in the segment file, not in memory (``_pump``).
An idle connection holds no receive buffer (wire/framing.py). A client over a client quota (client_quotas.py)
gets its answer with throttle_time_ms, and the connection is then muted for that time (KIP-219, ``_mute_for``).

Authentication (security/authenticator.py): each connection has a Session. On a SASL listener nothing but
ApiVersions and the SASL exchange is served until it completes; any other request closes the connection, as
Kafka's SaslServerAuthenticator does; until then frames are capped by ``sasl.server.max.receive.size``
(CVE-2022-34917), and a failed authentication is answered and closed after
``connection.failed.authentication.delay.ms``. After SaslHandshake v0 the frames are raw SASL tokens, answered with raw
size-prefixed tokens. A failed exchange is answered (SASL_AUTHENTICATION_FAILED, or UNSUPPORTED_SASL_MECHANISM
for the handshake) and the connection is then closed; so is one whose session expired (KIP-368) when it sends
anything but a re-authenticating SaslHandshake. TLS is asyncio's, on the listener's server socket; the
principal of a verified client certificate is taken when the connection is made.

Bad input: a frame size above ``socket.request.max.bytes``, a header or body that does not decode, an unknown
API key or an unsupported version (other than ApiVersions, which answers UNSUPPORTED_VERSION with a v0 body,
KIP-511) close the connection with one log line, as Kafka's SocketServer does.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import itertools
import logging
import os
import socket
import struct
import time
import types

from . import heap
from .errors import ErrorCode, ProtocolViolation
from .faults import FaultAction, error_response
from .handlers import HANDLERS
from .handlers import api_versions
from .handlers.context import AwaitingReplication, RequestContext
from .security import tls
from .connection_quotas import ConnectionQuotas
from .security.authenticator import AuthenticationError, Session
from .storage.base import StorageError
from .storage.file_region import FileRegion
from .wire.buffer_pool import BufferPool
from .wire.framing import SCRATCH_BYTES, FrameError, FrameReader, ScratchPool
from .wire.header import API_VERSIONS_KEY, body_offset, finish_frame, peek_header, response_frame_start
from .wire.primitives import DecodeError

log = logging.getLogger("kbroker.server")

SCRATCH_POOL_BYTES = 64 * SCRATCH_BYTES  # receive buffers kept for the next connection that reads
# The longest one connection's requests hold the loop before the others get their turn. Yielding after
# every request costs a pipelining producer a third of its throughput (a loop turn and a poll per request);
# half a millisecond keeps that cost small and another client's wait near one request's.
TURN_BUDGET_S = 0.0005
# Of an answer's stored batches that the socket did not take, the most read into memory at a time (server
# _pump): a client that does not read holds about this much, not a whole answer of fetch.max.bytes.
PENDING_CHUNK = 1 << 20
# An answer whose stored batches (FileRegions) add up to no more than this is read into memory and written
# whole, in one write: sendfile saves a copy, but an answer in pieces (its header, the batches, the rest)
# leaves as a TCP segment per piece, and a consumer following the log end, whose answers are small, gets
# the answer sooner in one (one wake-up, one read).
INLINE_REGION_BYTES = 32 * 1024
# Produce requests of one connection handled while their answers wait in order behind one that awaits
# replication (acks=all); the next waits. Kafka's producer sends at most 5 requests at a time
# (max.in.flight.requests.per.connection).
MAX_AWAITING_REPLICATION = 5
# A listener's pool of large buffers that none was taken from for this long lets them go (the reaper looks,
# every 10 s at most, whatever connections.max.idle.ms makes its period): a burst of huge fetches or large
# requests costs its memory while it lasts.
POOL_RELEASE_S = 10.0
_conn_ids = itertools.count(1)
# Not measured against request_percentage: the SASL exchange (before a user is known) and the brokers' own
# WriteTxnMarkers, as Kafka's ClientRequestQuotaManager exempts cluster actions and authentication.
QUOTA_EXEMPT_APIS = frozenset({17, 27, 36})

_AWAITABLE_BY_TYPE: dict[type, bool] = {}


def _is_awaitable(obj) -> bool:
    """inspect.isawaitable, its answer kept per type: every request's handler result and encoded answer
    is asked, and the generic check (an ABC instance check) costs more than the lookup. A generator is
    asked each time (whether it is awaitable depends on its code's flags, not on its type)."""
    kind = type(obj)
    known = _AWAITABLE_BY_TYPE.get(kind)
    if known is None:
        known = inspect.isawaitable(obj)
        if kind is not types.GeneratorType:
            _AWAITABLE_BY_TYPE[kind] = known
    return known


class AuthenticationFailure(ProtocolViolation):
    """Authentication failed: the connection is closed after connection.failed.authentication.delay.ms."""


def close_unstarted(awaitable) -> None:
    """Close a coroutine that never ran, and first the coroutines it was given: a coroutine that has not
    started holds nothing but its arguments, and each would otherwise be dropped unawaited too (Python's
    "coroutine ... was never awaited"). A Produce waiting for replication hands its coroutine over wrapped
    (AwaitingReplication)."""
    if type(awaitable) is AwaitingReplication:
        awaitable = awaitable.awaitable
    if inspect.iscoroutine(awaitable) and inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED:
        for argument in inspect.getcoroutinelocals(awaitable).values():
            close_unstarted(argument)
        awaitable.close()


def _close_if_never_run(awaitable, task: asyncio.Task) -> None:
    """A request's answer task cancelled before its first step (a broker killed, its tasks cancelled): the
    answer's coroutine and the handler's it awaits never ran, so they are closed rather than dropped."""
    if task.cancelled():
        close_unstarted(awaitable)


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, server: "KafkaServer", admitted: bool = False):
        self.server = server
        self.broker = server.broker
        self.session = Session(server.auth)
        self.reader = FrameReader(self._max_frame_bytes(), pool=server.buffers, scratch_pool=server.scratch)
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0  # of the requests received and not yet answered (queued.max.request.bytes)
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a handler's awaitable is in flight
        self.scheduled = False  # the next request is handled on the loop's next turn
        self.write_paused = False
        self.read_paused = False
        self.closed = False
        self.failing = False  # authentication failed: the answer and the close wait for the delay
        self.admitted = admitted  # counted by the connection quotas (the acceptor did)
        self.id = next(_conn_ids)
        self.peer = "?"
        self.ip = "?"
        self.last_active = time.monotonic()  # connections.max.idle.ms
        self._out: list = []  # answers gathered for one write (see _send)
        # Their size. Above the transport's write-buffer high-water mark they are written before the next
        # request is handled, so the write pauses the connection (pause_writing) while the client does not
        # read: Kafka mutes a channel until its response is sent, and one connection holds at most one
        # answer beyond the mark (issue 16: 32 pipelined Fetch answers of fetch.max.bytes each, gathered
        # for one write, sat unsent for a client that did not read).
        self._out_bytes = 0
        self._high_water = 65536  # the transport's, once there is one
        self._out_regions = False  # _out holds FileRegions (see _write_with_regions)
        self._pending: collections.deque = collections.deque()  # answer pieces not yet given to the transport
        self._pending_fds: list[int] = []  # our duplicates of segment fds, while regions are pending
        self.sendfile_fd: int | None = None  # the socket, on a connection that sends files itself
        self._unthrottle: asyncio.TimerHandle | None = None  # muted by a client quota until it fires
        # Answers in request order while Produce requests await replication (``_stage``): [ready, answer].
        self._ordered: collections.deque[list] = collections.deque()
        # request_percentage counts, as Kafka's does, the request handler's time and the network thread's: here
        # the encoding of answers and their writes. While the connection's last request was measured (a quota
        # is set), that time adds up here and is recorded, without a throttle decision, after each write.
        self._quota_entity: tuple[str, str] | None = None  # (user, client id) of the last measured request
        self._network_ns = 0

    def _max_frame_bytes(self) -> int:
        """Before a SASL exchange completes, frames are capped by sasl.server.max.receive.size, as Kafka's
        SaslServerAuthenticator reads them since CVE-2022-34917: an unauthenticated client cannot make the
        broker buffer socket.request.max.bytes (100 MiB) per connection."""
        config = self.broker.config
        if self.session.auth is not None and not self.session.authenticated:
            return min(config.sasl_server_max_receive_size, config.socket_request_max_bytes)
        return config.socket_request_max_bytes

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._high_water = transport.get_write_buffer_limits()[1]
        peer = transport.get_extra_info("peername")
        if peer:
            self.ip = peer[0]
            self.peer = f"{peer[0]}:{peer[1]}"
        listener = self.server.listener
        if listener is not None and listener.security_protocol == "SSL":
            self.session.principal = tls.peer_principal(transport.get_extra_info("ssl_object")) or \
                self.session.principal
        sock = transport.get_extra_info("socket")
        if SENDFILE and sock is not None and transport.get_extra_info("ssl_object") is None:
            self.sendfile_fd = sock.fileno()
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self._ordered.clear()
        if self._unthrottle is not None:
            self._unthrottle.cancel()
            self._unthrottle = None
        self._drop_queue()
        self._pending.clear()
        self._release_files()
        self.reader.close()
        self.server.connections.discard(self)
        self.broker.share.on_connection_closed(self.id)
        if self.admitted:
            self.admitted = False
            self.server.quotas.release(self.ip, self.server.listener_name)

    def get_buffer(self, sizehint):
        # Bytes are received straight into the frame reader's buffers (a large frame into its own).
        return self.reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes):
        self.last_active = time.monotonic()
        if self.closed or self.failing:
            return
        try:
            self.reader.buffer_updated(nbytes)
            while (frame := self.reader.next_frame()) is not None:
                self.queue.append(frame)
                self._hold(len(frame))
        except FrameError as e:
            if self.session.auth is not None and not self.session.authenticated:
                # Kafka: "Failing SASL authentication due to invalid receive size", a failed authentication.
                self._fail_authentication(None, f"frame refused during authentication: {e}")
            else:
                self._close(f"frame refused: {e}")
            return
        self._kick()
        if (self.queue or self.busy or self.write_paused) and not self.read_paused and not self.closed:
            # Kafka mutes a connection from the moment a request is read until its answer is sent: what is
            # received is handled (in order, for a turn of the loop at a time) before more is read. A request
            # answered at once, the common case, needs no muting.
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self):
        return False

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        if self._pending:
            try:
                self._pump()
            except (StorageError, OSError) as e:
                self._fail_write(e)
                return
        self._kick()

    # -- request processing --------------------------------------------------

    def _kick(self) -> None:
        if not self.scheduled:
            self._process()

    def _process(self) -> None:
        """Handle queued requests for at most TURN_BUDGET_S, then yield: the rest wait for the loop's next
        turn, so that one connection's pipelined requests take turns with every other connection's work
        (issue 16: 3,640 pipelined Metadata requests in one read used to hold the loop for seconds)."""
        self.scheduled = False
        turn_ends = time.perf_counter() + TURN_BUDGET_S
        while True:
            if self._unthrottle is not None:  # throttled by a client quota: its answer goes out, nothing more
                self._flush()
                return
            if self.busy or self.write_paused or self._pending or self.closed or self.failing:
                return
            if not self.queue:
                self._flush()
                self._maybe_resume_reading()
                return
            if self._ordered and (len(self._ordered) >= MAX_AWAITING_REPLICATION or not _is_produce(self.queue[0])):
                self._flush()  # only a Produce goes on while earlier ones await replication
                return
            if self._out_regions or self._out_bytes > self._high_water:
                # An answer holding file regions goes out before the next request is handled: that
                # request could delete the topic whose segment files the regions name. So do answers
                # above the transport's high-water mark: the write pauses the connection (pause_writing)
                # if the client does not take them, and nothing more is handled until it has.
                self._flush()
                continue
            frame = self.queue.popleft()
            try:
                result = self._dispatch(frame)
            except Exception as e:
                self._release(len(frame))
                self._fail(e)
                return
            if type(result) is _Staged:
                self._stage(result.awaitable, frame)
            elif _is_awaitable(result):
                self._flush()
                self.busy = True
                task = asyncio.ensure_future(self._finish(result, frame))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)
                task.add_done_callback(functools.partial(_close_if_never_run, result))
                return
            else:
                self._done(frame)
                if not self._deliver(result):
                    return
            if self.queue and time.perf_counter() >= turn_ends:
                self._flush()
                self.scheduled = True
                asyncio.get_running_loop().call_soon(self._process)
                return

    async def _finish(self, awaitable, frame) -> None:
        try:
            out = await awaitable
        except Exception as e:
            self.busy = False
            self._release(len(frame))
            self._fail(e)
            return
        self.busy = False
        del awaitable  # the handler's state held views of the request
        self._done(frame)
        if self.closed:
            return
        if self._deliver(out):
            self._kick()

    def _stage(self, awaitable, frame) -> None:
        """A Produce whose records are appended awaits replication (acks=all): its answer takes its place in
        ``_ordered`` and the connection goes on with the client's next Produce, as Redpanda pipelines
        produce requests (Kafka mutes the connection until the answer is sent, so one acks=all producer
        waits a follower round trip per request). The appends stay in request order, and so do the answers;
        anything but a Produce waits until every earlier answer is out."""
        self._done(frame)  # the request's records are written: nothing of it is needed any more
        slot = [False, None]
        self._ordered.append(slot)
        task = asyncio.ensure_future(self._finish_staged(awaitable, slot))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)
        task.add_done_callback(functools.partial(_close_if_never_run, awaitable))

    async def _finish_staged(self, awaitable, slot: list) -> None:
        try:
            out = await awaitable
        except Exception as e:
            self._fail(e)
            return
        if self.closed:
            return
        slot[0], slot[1] = True, out
        self._send_ordered()
        self._kick()

    def _send_ordered(self) -> None:
        """The answers at the head of ``_ordered`` that are ready go out, in order."""
        ordered = self._ordered
        while ordered and ordered[0][0]:
            out = ordered.popleft()[1]
            if out is not None:
                self._send(out)

    def _done(self, frame) -> None:
        """The request in ``frame`` is answered: its bytes no longer count and its buffer may be used again."""
        self._release(len(frame))
        self.reader.recycle(frame)
        if self.session.auth is not None:
            self.reader.max_frame_bytes = self._max_frame_bytes()  # the session may have changed state

    def _hold(self, nbytes: int) -> None:
        self.queued_bytes += nbytes
        self.server.queued_bytes += nbytes

    def _release(self, nbytes: int) -> None:
        self.queued_bytes -= nbytes
        self.server.release_queued(nbytes)

    def _drop_queue(self) -> None:
        """The queued requests will not be handled; a request in flight releases its own bytes when done."""
        dropped = sum(len(f) for f in self.queue)
        self.queue.clear()
        if dropped:
            self._release(dropped)

    def _maybe_resume_reading(self) -> None:
        """Read again once every request received is answered and the answers are (mostly) sent, unless
        the requests of all connections together hold queued.max.request.bytes."""
        if not self.read_paused or self.closed or self.failing or self.busy or self.queue or self.write_paused \
                or self._pending or self._unthrottle is not None:
            return
        if not self.server.may_read(self):
            return
        self.read_paused = False
        self.transport.resume_reading()

    def _mute_for(self, throttle_ms: int) -> None:
        """KIP-219, as Kafka's SocketServer: the answer carrying throttle_time_ms is sent at once, then the
        connection is not read (and what the client already sent is not handled) until the throttle time has
        passed. A client that ignores throttle_time_ms waits all the same."""
        loop = asyncio.get_running_loop()
        if self._unthrottle is not None:
            if self._unthrottle.when() >= loop.time() + throttle_ms / 1000:
                return
            self._unthrottle.cancel()
        self._unthrottle = loop.call_later(throttle_ms / 1000, self._throttle_ended)
        if not self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _throttle_ended(self) -> None:
        self._unthrottle = None
        if self.closed:
            return
        self._kick()
        self._maybe_resume_reading()

    def _throttled(self, ctx, response, start_ns: int):
        """The client quotas of a handled request: its handling time against request_percentage (the time on
        the loop until the handler returned; a long poll's wait does not count; the answer's encoding and
        writing are counted after the write, see _quota_entity), and the answer's
        throttle_time_ms raised to the longest throttle time; the connection is muted for that time."""
        quotas = self.broker.client_quotas
        if ctx.api_key not in QUOTA_EXEMPT_APIS and quotas.enabled:
            percent = (time.perf_counter_ns() - start_ns) * 1e-7  # Kafka's nanosToPercentage
            entity = self._quota_entity = (ctx.quota_user, ctx.client_id or "")
            ctx.throttle(quotas.request.record_and_get_throttle_ms(*entity, percent))
        else:
            self._quota_entity = None
        if ctx.throttle_ms > 0:
            if response is not None and getattr(response, "throttle_time_ms", None) is not None:
                response.throttle_time_ms = max(response.throttle_time_ms, ctx.throttle_ms)
            self._mute_for(ctx.throttle_ms)
        return response

    def _dispatch(self, frame: bytes):
        """Returns the encoded response, None for no response, or an awaitable of either."""
        session = self.session
        if session.raw_tokens:  # after SaslHandshake v0 (security/authenticator.py)
            try:
                challenge = session.raw_token(frame)
            except AuthenticationError as e:
                raise AuthenticationFailure(f"authentication failed: {e}") from None
            return struct.pack(">i", len(challenge)) + challenge
        start_ns = time.perf_counter_ns()
        try:
            header = peek_header(frame)
        except (DecodeError, struct.error) as e:
            raise ProtocolViolation(f"malformed request header: {e}") from None
        self.server.record_request(self, header)
        handler = HANDLERS.get(header.api_key)
        advertised = self.broker.api_versions.get(header.api_key)
        if handler is None or advertised is None:
            raise ProtocolViolation(f"unknown API key {header.api_key}")
        try:
            session.admit(header.api_key, handler.name)
        except AuthenticationError as e:
            if e.answered and not session.authenticated:
                return self._refuse_during_authentication(frame, header, handler, advertised, str(e))
            raise (AuthenticationFailure if not session.authenticated else ProtocolViolation)(str(e)) from None
        version = header.api_version
        if header.api_key == API_VERSIONS_KEY and version > advertised[1]:
            # KIP-511: answer with a v0 body listing our range so the client retries at a version we speak.
            return encode_response(header.correlation_id, handler, 0,
                                   api_versions.unsupported_version_response(self.broker))
        if not advertised[0] <= version <= advertised[1]:
            raise ProtocolViolation(f"unsupported version {version} of {handler.name}")
        try:
            pos = body_offset(frame, handler.flexible(version))
            request, end = handler.codec.REQUEST_DECODERS[version](memoryview(frame), pos)
        except (DecodeError, struct.error, IndexError, ValueError) as e:
            raise ProtocolViolation(f"malformed {handler.name} v{version} request: {e}") from None
        ctx = RequestContext(self.broker, header.api_key, version, header.correlation_id, header.client_id,
                             self.peer, self.id, self.server.listener, session.principal, session,
                             request_bytes=len(frame))
        fault = self.server.faults.decide(ctx, handler, request) if self.server.faults else None
        if fault is not None:
            return self._carry_out(fault, ctx, handler, request)
        response = handler.handle(ctx, request)
        if header.api_key == API_VERSIONS_KEY and not session.authenticated:
            session.api_versions_answered(response.error_code == 0)
        metrics = self.server.metrics
        if _is_awaitable(response):
            later = self._encode_later(header.correlation_id, handler, version, response,
                                       metrics and (header, start_ns, request), (ctx, start_ns))
            if type(response) is AwaitingReplication and ctx.throttle_ms == 0 and \
                    not self.broker.client_quotas.enabled:
                return _Staged(later)
            return later
        response = self._throttled(ctx, response, start_ns)
        if metrics is not None:
            metrics.request_done(self, header, start_ns, request, response)
        if response is None:
            return None
        if self._quota_entity is None:
            return encode_response(header.correlation_id, handler, version, response)
        return self._encode_measured(header.correlation_id, handler, version, response)

    def _encode_measured(self, correlation_id, handler, version, response) -> bytearray:
        """encode_response, its time counted against request_percentage (see _quota_entity)."""
        start_ns = time.perf_counter_ns()
        out = encode_response(correlation_id, handler, version, response)
        self._network_ns += time.perf_counter_ns() - start_ns
        return out

    def _refuse_during_authentication(self, frame: bytes, header, handler, advertised, message: str):
        """A request other than SaslAuthenticate in the midst of SASL: its own error response (ILLEGAL_SASL_STATE
        wherever its schema has an error code), then the close after the failed-authentication delay, as
        Kafka's SaslServerAuthenticator answers it."""
        version = header.api_version
        if not advertised[0] <= version <= advertised[1]:
            raise AuthenticationFailure(message)
        try:
            request, _ = handler.codec.REQUEST_DECODERS[version](memoryview(frame),
                                                                 body_offset(frame, handler.flexible(version)))
        except (DecodeError, struct.error, IndexError, ValueError):
            raise AuthenticationFailure(message) from None
        self.session.refuse(message)
        return encode_response(header.correlation_id, handler, version,
                               error_response(handler, version, request, ErrorCode.ILLEGAL_SASL_STATE))

    async def _encode_later(self, correlation_id, handler, version, awaitable, measured=None, quota=None):
        if quota is not None:  # the handling time until the handler returned; the wait does not count
            ctx, start_ns = quota
            quota_ns = time.perf_counter_ns() - start_ns
        if measured is None:
            response = await awaitable
        else:  # metrics.py: the request waits (a purgatory), then counts as answered
            metrics, (header, start_ns, request) = self.server.metrics, measured
            metrics.wait_started(header.api_key)
            try:
                response = await awaitable
            finally:
                metrics.wait_ended(header.api_key)
            metrics.request_done(self, header, start_ns, request, response)
        if quota is not None and not self.closed:
            response = self._throttled(ctx, response, time.perf_counter_ns() - quota_ns)
        if response is None:
            return None
        if self._quota_entity is None:
            return encode_response(correlation_id, handler, version, response)
        return self._encode_measured(correlation_id, handler, version, response)

    def _carry_out(self, fault, ctx, handler, request):
        """Do what a fault rule decided for this request (faults.py) instead of handling it as usual."""
        action = fault.action
        if action is FaultAction.DISCONNECT:
            raise ProtocolViolation(f"fault injection: disconnect on {handler.name}")
        if action is FaultAction.ANSWER_ERROR:
            return encode_response(ctx.correlation_id, handler, ctx.version, fault.response)
        if action is FaultAction.DELAY:
            return self._handle_later(fault.delay_s, ctx, handler, request)
        return self._handle_unanswered(ctx, handler, request)

    async def _handle_later(self, delay_s: float, ctx, handler, request):
        await asyncio.sleep(delay_s)
        response = handler.handle(ctx, request)
        if inspect.isawaitable(response):
            response = await response
        if response is None:
            return None
        return encode_response(ctx.correlation_id, handler, ctx.version, response)

    async def _handle_unanswered(self, ctx, handler, request):
        """The request takes effect, but the client never hears so: the connection closes instead."""
        response = handler.handle(ctx, request)
        if inspect.isawaitable(response):
            await response
        raise ProtocolViolation(f"fault injection: {handler.name} handled, response dropped")

    def _fail(self, exc: Exception) -> None:
        """A request ends the connection: the client misbehaved (one log line) or a handler failed (a traceback)."""
        if isinstance(exc, AuthenticationFailure):
            self._fail_authentication(None, str(exc))
        elif isinstance(exc, ProtocolViolation):
            self._close(str(exc))
        else:
            log.error("handler failed on connection %s from %s", self.id, self.peer, exc_info=exc)
            self._close("internal error")

    def _deliver(self, out) -> bool:
        """Send an answer (None: there is none); False when the connection was then closed because the
        exchange it answered failed authentication."""
        if self.session.failure is not None:
            self._fail_authentication(out, self.session.failure)
            return False
        if self._ordered:  # behind answers that await replication
            self._ordered.append([True, out])
        elif out is not None:
            self._send(out)
        return True

    def _fail_authentication(self, answer, reason: str) -> None:
        """As Kafka's Selector: the answer to a failed authentication (if there is one) and the close wait
        connection.failed.authentication.delay.ms, during which nothing more is read from the client; a
        password guesser gets one try per delay and connection."""
        if self.closed or self.failing:
            return
        self.failing = True
        self._drop_queue()
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

        def finish():
            self.failing = False
            if self.closed:
                return
            if answer is not None:
                self._send(answer)
            self._close(f"authentication failed: {reason}")

        delay_ms = self.broker.config.connection_failed_authentication_delay_ms
        if delay_ms > 0:
            asyncio.get_running_loop().call_later(delay_ms / 1000, finish)
        else:
            finish()

    def _send(self, data) -> None:
        # Answers to the requests of one read are gathered and written together by _flush. A list is a frame in
        # pieces (records spliced in uncopied, header.finish_frame).
        if type(data) is list:
            if 0 <= _region_bytes(data) <= INLINE_REGION_BYTES:
                try:
                    data = _inlined(data)
                except (StorageError, OSError) as e:
                    self._fail_write(e)
                    return
            self._out.extend(data)
            self._out_bytes += sum(p.size if type(p) is FileRegion else len(p) for p in data)
            if not self._out_regions:
                self._out_regions = any(type(p) is FileRegion for p in data)
        else:
            self._out.append(data)
            self._out_bytes += len(data)

    def _flush(self) -> None:
        """Write the gathered answers: one write, or one writev under uvloop."""
        out = self._out
        if not out or self.transport is None or self.closed:
            return
        self._out = []
        self._out_bytes = 0
        self.last_active = time.monotonic()
        if self._quota_entity is None:
            self._write(out)
            return
        start_ns = time.perf_counter_ns()
        self._write(out)
        spent_ns, self._network_ns = self._network_ns + time.perf_counter_ns() - start_ns, 0
        self.broker.client_quotas.request.record_no_throttle(*self._quota_entity, spent_ns * 1e-7)

    def _write(self, out: list) -> None:
        if self._out_regions or self._pending:  # behind pending pieces, in order
            self._out_regions = False
            try:
                self._write_with_regions(out)
            except (StorageError, OSError) as e:
                self._fail_write(e)
            return
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    def _write_with_regions(self, pieces: list) -> None:
        """Send pieces some of which are FileRegions, in order, without holding more than a chunk of them in
        memory: Kafka sends a FileRecords with transferTo as the socket takes it, so a client that reads
        slowly costs it no memory. On a plaintext connection whose transport has nothing queued, straight
        to the socket: writev for bytes, sendfile for regions. From the first piece the socket does not take
        whole (and always over TLS), at most PENDING_CHUNK bytes at a time are read into memory and given to
        the transport; the rest waits in ``_pending`` (its segment files held open by duplicated
        descriptors, so a deleted or closed segment's bytes can still be sent) until the transport drains
        (resume_writing). No request of the connection is handled meanwhile."""
        self._pending.extend(pieces)
        self._pump()

    def _pump(self) -> None:
        pending = self._pending
        fd = self.sendfile_fd
        while pending and not self.closed:
            if fd is not None and self.transport.get_write_buffer_size() == 0:
                self._send_direct(fd)
                if not pending:
                    break
            chunk, size = [], 0
            while pending and size < PENDING_CHUNK:
                piece = pending.popleft()
                n = piece.size if type(piece) is FileRegion else len(piece)
                if size + n > PENDING_CHUNK and type(piece) is FileRegion:
                    take = PENDING_CHUNK - size
                    pending.appendleft(piece.tail(take))
                    piece, n = FileRegion(piece.fd, piece.position, take, piece.last_offset), take
                chunk.append(piece)
                size += n
            out, buf = self._read_regions(chunk)
            _write_in_pieces(self.transport, out)
            if buf is not None:
                self.server.buffers.give(buf)
            if self.write_paused:
                break
        if pending:
            self._hold_files()
        else:
            self._release_files()

    def _send_direct(self, fd: int) -> None:
        """Write ``_pending`` straight to the socket until it is sent or the socket would block."""
        pending = self._pending
        while pending:
            piece = pending[0]
            if type(piece) is FileRegion:
                sent = _sendfile_all(fd, piece)
                if sent < piece.size:
                    pending[0] = piece.tail(sent)
                    return
                pending.popleft()
                continue
            run = []
            while pending and type(pending[0]) is not FileRegion:
                run.append(pending.popleft())
            left = _writev_all(fd, run)
            if left:
                pending.extendleft(reversed(left))
                return

    def _hold_files(self) -> None:
        """The segment files of pending regions stay open for them (their own descriptors), whatever
        happens to the segments meanwhile."""
        own = set(self._pending_fds)
        made: dict[int, int] = {}  # segment fd -> its duplicate, for the regions new in this call
        for i, piece in enumerate(self._pending):
            if type(piece) is FileRegion and piece.fd not in own:
                dup = made.get(piece.fd)
                if dup is None:
                    dup = made[piece.fd] = os.dup(piece.fd)
                    self._pending_fds.append(dup)
                self._pending[i] = FileRegion(dup, piece.position, piece.size, piece.last_offset)

    def _release_files(self) -> None:
        if self._pending_fds:
            for dup in self._pending_fds:
                os.close(dup)
            self._pending_fds = []

    def _fail_write(self, e: Exception) -> None:
        """A segment file shorter than its region, or gone."""
        log.error("connection %s from %s: %s", self.id, self.peer, e)
        self._close("a stored batch could not be read")

    def _read_regions(self, pieces: list) -> tuple[list, bytearray | None]:
        """``pieces`` with each FileRegion replaced by its bytes, read (one pread each) into one buffer from
        the listener's pool (returned, for the caller to give back once the transport has it): TLS
        encrypts what it is given at once and asyncio's plain transport copies what the socket does not
        take, so the buffer is free for the next chunk straight away; uvloop's keeps a view of it until the
        socket has taken it, and the pool hands it out again only then (a slow reader's chunk waits in the
        pool meanwhile, wire/buffer_pool.py). Answers larger than the pool keeps get a buffer of their own."""
        total = sum(p.size for p in pieces if type(p) is FileRegion)
        if not total:
            return pieces, None
        pool = self.server.buffers
        pooled = total <= pool.max_buffer_bytes
        # Every chunk's buffer is a whole PENDING_CHUNK, the tail of an answer's too, so that any kept one
        # serves the next chunk (a shorter one would be passed over and a fresh megabyte allocated).
        buf = pool.take(total, capacity=PENDING_CHUNK) if pooled else bytearray(total)
        view = memoryview(buf)
        out = []
        at = 0
        for p in pieces:
            if type(p) is not FileRegion:
                out.append(p)
                continue
            part = view[at:at + p.size]
            if os.preadv(p.fd, [part], p.position) != p.size:
                raise StorageError(f"{p!r}: the file ends before the region does")
            out.append(part)
            at += p.size
        return out, buf if pooled else None

    def _close(self, reason: str, level: int = logging.WARNING) -> None:
        if self.closed:
            return
        self._flush()  # answers to the requests before the one that ends the connection still go out
        log.log(level, "closing connection %s from %s: %s", self.id, self.peer, reason)
        self.closed = True
        self._drop_queue()
        if self.transport is not None:
            self.transport.close()


class _Staged:
    """What ``_dispatch`` returns for a request that awaits only replication (``KafkaConnection._stage``)."""
    __slots__ = ("awaitable",)

    def __init__(self, awaitable):
        self.awaitable = awaitable


def _is_produce(frame) -> bool:
    """Whether a request frame is a Produce (API key 0, the header's first two bytes)."""
    return len(frame) >= 2 and frame[0] == 0 and frame[1] == 0


def _region_bytes(pieces: list) -> int:
    """The bytes of the FileRegions among an answer's pieces; -1 when it has none."""
    total, found = 0, False
    for p in pieces:
        if type(p) is FileRegion:
            total += p.size
            found = True
    return total if found else -1


def _inlined(pieces: list) -> list:
    """``pieces`` with each FileRegion replaced by its bytes (INLINE_REGION_BYTES)."""
    out = []
    for p in pieces:
        if type(p) is FileRegion:
            data = os.pread(p.fd, p.size, p.position)
            if len(data) != p.size:
                raise StorageError(f"{p!r}: the file ends before the region does")
            p = data
        out.append(p)
    return out


def encode_response(correlation_id: int, handler, version: int, response) -> bytearray:
    """A response as the frame that goes out: the one encode path. The response header is v1 (with tagged
    fields) for a flexible version, except ApiVersions's, which is always v0 so that a client that does not
    know our versions yet can read it (KIP-511)."""
    out = response_frame_start(correlation_id, handler.flexible(version) and handler.api_key != API_VERSIONS_KEY)
    handler.codec.RESPONSE_ENCODERS[version](response, out)
    return finish_frame(out)


SENDFILE = hasattr(os, "sendfile")
# A chunk of stored batches is given to the transport in writes of at most this much: a TLS transport
# encrypts each write into one new bytes object (all its output buffer holds), and asyncio's joins the pieces
# of a writelines into one; at a megabyte each, such buffers are served by glibc from its heap once its mmap
# threshold has risen, and freed among small long-lived objects they leave holes the heap keeps (heap.py).
# Below glibc's default mmap threshold they are ordinary heap blocks, used again write after write.
WRITE_PIECE_BYTES = 64 * 1024


def _write_in_pieces(transport, pieces: list) -> None:
    for piece in pieces:
        n = len(piece)
        if n <= WRITE_PIECE_BYTES:
            transport.write(piece)
            continue
        view = memoryview(piece)
        for at in range(0, n, WRITE_PIECE_BYTES):
            transport.write(view[at:at + WRITE_PIECE_BYTES])


def _writev_all(fd: int, pieces: list) -> list:
    """Write ``pieces`` to a non-blocking socket until it would block; returns what it did not take."""
    pieces = [m for m in (memoryview(p).cast("B") for p in pieces) if len(m)]
    while pieces:
        try:
            n = os.writev(fd, pieces[:1024])
        except (BlockingIOError, InterruptedError):
            return pieces
        except OSError:
            return pieces  # the transport meets the same error and closes the connection
        if n == 0:
            return pieces
        while n and pieces:
            if n >= len(pieces[0]):
                n -= len(pieces[0])
                pieces.pop(0)
            else:
                pieces[0] = pieces[0][n:]
                n = 0
    return []


def _sendfile_all(fd: int, region: FileRegion) -> int:
    """sendfile a region to a non-blocking socket until done or it would block; bytes sent."""
    sent = 0
    while sent < region.size:
        try:
            n = os.sendfile(fd, region.fd, region.position + sent, region.size - sent)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break  # the rest goes through the transport, which reports the error
        if n == 0:
            break  # the file ended early: reading the rest raises StorageError
        sent += n
    return sent


class KafkaServer:
    """Listens on one address (one listener) and serves Kafka connections for a broker state."""

    def __init__(self, broker, listener=None, auth=None):
        """``listener`` (security/listeners.py) is what clients are told this broker is; ``auth`` (a
        ListenerAuth) makes every connection authenticate with SASL first. Neither: PLAINTEXT."""
        self.broker = broker
        self.listener = listener
        self.auth = auth
        self.connections: set[KafkaConnection] = set()
        self.tasks: set[asyncio.Task] = set()
        self.sockets: list[socket.socket] = []  # listening
        self._acceptors: list[asyncio.Task] = []
        self.buffers = BufferPool()  # large buffers the connections use again (wire/buffer_pool.py)
        # Receive buffers of connections with bytes arriving; an idle connection holds none.
        self.scratch = ScratchPool(SCRATCH_POOL_BYTES)
        # Connection counts and queued request bytes are the broker's, shared by its listeners.
        quotas = getattr(broker, "connection_quotas", None)
        if quotas is None:
            quotas = broker.connection_quotas = ConnectionQuotas(broker.config, broker.client_quotas.ip_connection_rate)
        self.quotas: ConnectionQuotas = quotas
        self.listener_name = listener.name.upper() if listener is not None else None
        self._reaper: asyncio.TimerHandle | None = None
        self._pool_checked = time.monotonic()  # when the reaper last asked the pool to let go (POOL_RELEASE_S)
        self.faults = None  # set by the control plane (fault injection)
        self.request_log = None  # set by the control plane (request inspection)
        self.metrics = None  # set by broker_server.py: metrics.py's request counters

    @property
    def queued_bytes(self) -> int:
        return self.quotas.queued_bytes

    @queued_bytes.setter
    def queued_bytes(self, value: int) -> None:
        self.quotas.queued_bytes = value

    def release_queued(self, nbytes: int) -> None:
        """Requests were answered: connections waiting for queued.max.request.bytes may read again."""
        q = self.quotas
        q.queued_bytes -= nbytes
        if q.memory_waiters and self.may_read(None):
            waiters, q.memory_waiters = q.memory_waiters, set()
            for conn in waiters:
                conn._maybe_resume_reading()

    def may_read(self, conn: KafkaConnection | None) -> bool:
        limit = self.broker.config.queued_max_request_bytes
        if limit <= 0 or self.quotas.queued_bytes < limit:
            return True
        if conn is not None:
            self.quotas.memory_waiters.add(conn)
        return False

    def _reap_idle(self) -> None:
        """Close connections with nothing read or written for connections.max.idle.ms (Kafka's Selector
        does the same); one with a request in flight (a long poll) or an answer being sent is not idle.
        Also lets go of the pool's buffers when none was taken for POOL_RELEASE_S (wire/buffer_pool.py)."""
        now = time.monotonic()
        if now - self._pool_checked >= POOL_RELEASE_S * 0.95:  # a timer may fire a hair early
            self._pool_checked = now
            if self.buffers.release_unused():
                heap.trim()  # the buffers' pages, and any other free heap pages, go back to the system
        idle_s = self.broker.config.connections_max_idle_ms / 1000
        if idle_s > 0:
            deadline = now - idle_s
            for conn in [c for c in self.connections if c.last_active < deadline]:
                if conn.busy or conn.queue or conn._pending or conn.closed or conn.transport.get_write_buffer_size():
                    continue
                conn._close(f"idle for more than connections.max.idle.ms ({idle_s * 1000:.0f})", logging.DEBUG)
        self._schedule_reaper()

    def _schedule_reaper(self) -> None:
        idle_s = self.broker.config.connections_max_idle_ms / 1000
        interval = min(max(idle_s / 4, 0.01), 10.0) if idle_s > 0 else 10.0
        self._reaper = asyncio.get_running_loop().call_later(interval, self._reap_idle)

    def record_request(self, conn: KafkaConnection, header) -> None:
        if self.request_log is not None:
            self.request_log.record(conn, header)

    async def start(self, host: str, port: int, ssl=None) -> tuple[str, int]:
        """Bind and listen on every address ``host`` names (a port of 0: a free one, the same for all), and
        accept in an acceptor task per socket. ``ssl``: an SSLContext for a TLS listener (the handshake
        happens before connection_made). The acceptors are kbroker's own, not asyncio's create_server,
        because Kafka's acceptor stops taking connections while a limit holds it back (connection_quotas.py)
        and asyncio's server cannot be paused."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen = set()
        try:
            for family, kind, proto, _, addr in infos:
                if (family, addr[0]) in seen:
                    continue
                seen.add((family, addr[0]))
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(self.sockets) > 1:
                    addr = (addr[0], self.sockets[0].getsockname()[1]) + tuple(addr[2:])
                sock.bind(addr)
                sock.listen(1024)
                sock.setblocking(False)
        except OSError:
            for sock in self.sockets:
                sock.close()
            self.sockets.clear()
            raise
        self.quotas.servers.add(self)
        for sock in self.sockets:
            self._acceptors.append(loop.create_task(self._accept_loop(sock, ssl)))
        self._schedule_reaper()
        addr = self.sockets[0].getsockname()
        return addr[0], addr[1]

    async def _accept_loop(self, sock: socket.socket, ssl) -> None:
        """Kafka's Acceptor: take a connection from the backlog, wait for its slot (the creation rates and
        max.connections; connection_quotas.py), count it against max.connections.per.ip, and serve it."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as e:  # out of file descriptors, mostly: asyncio's own server waits a second too
                log.error("listener %s cannot accept a connection: %s", self.listener_name or "", e)
                await asyncio.sleep(1.0)
                continue
            try:
                await self.quotas.wait_for_connection_slot(self.listener_name)
            except BaseException:
                conn.close()
                raise
            ip = addr[0]
            throttle_ms = self.quotas.ip_throttle_ms(ip)
            if throttle_ms > 0:
                log.info("refusing connection from %s:%s after %d ms: over the connection_creation_rate quota of "
                         "its address", ip, addr[1], throttle_ms)
                loop.call_later(throttle_ms / 1000, conn.close)
                continue
            refused = self.quotas.admit(ip, self.listener_name)
            if refused is not None:
                log.info("refusing connection from %s:%s: %s", ip, addr[1], refused)
                conn.close()
                continue
            if ssl is None:  # ready on the loop's next turn: no task of its own (an idle connection stays small)
                await self._serve(conn, ip, None)
                continue
            task = loop.create_task(self._serve(conn, ip, ssl))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket, ip: str, ssl) -> None:
        """Hand an admitted socket to a KafkaConnection (after the TLS handshake, on a TLS listener); a
        socket that never becomes one gives its slot back."""
        protocol = None

        def factory():
            nonlocal protocol
            protocol = KafkaConnection(self, admitted=True)
            return protocol

        try:
            await asyncio.get_running_loop().connect_accepted_socket(factory, conn, ssl=ssl)
        except Exception as e:  # noqa: BLE001  a failed TLS handshake, a connection reset meanwhile
            log.info("connection from %s not served: %s", ip, e)
            if protocol is None or protocol.transport is None:
                self.quotas.release(ip, self.listener_name)
            conn.close()

    async def stop(self, grace_s: float = 3.0) -> None:
        """Stop accepting, let requests in flight finish (up to a deadline), then close connections."""
        for task in self._acceptors:
            task.cancel()
        if self._acceptors:
            await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors.clear()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        self.quotas.servers.discard(self)
        if self._reaper is not None:
            self._reaper.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace_s)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
