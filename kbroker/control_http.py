"""The control plane over HTTP with JSON bodies (``kbroker serve --control-port N``), for tests in any
language. Loopback only unless told otherwise. One request per connection (``Connection: close``).

    POST   /faults      {"api": "Produce", "error_code": 6, "count": 1, "topic": "t", "partition": 0}
                        {"api": ..., "delay_ms": 200} | {"disconnect": true} | {"drop_response": true}
    GET    /faults      DELETE /faults
    GET    /topics/{topic}/records?partition=P&offset=O&limit=N
    GET    /groups/{group}
    GET    /requests?limit=N
    POST   /wait        {"group": "g", "state": "Stable", "members": 3, "timeout_ms": 10000}
                        {"topic": "t", "records": 100, "timeout_ms": 10000}    -> 200, or 408 on timeout
    POST   /reset
    GET    /health

Safety (issue 16). Any web page the user opens can send requests to localhost, so, before routing:

- ``Host`` must name what this server serves: a loopback name when it listens on loopback, the address the
  connection came to, or a name given with ``--control-allow-host``; with the port it listens on. This
  defeats DNS rebinding (a page whose own name resolves to 127.0.0.1 sends its own name as Host).
- A request a browser marks as coming from elsewhere is refused when it would change state: an ``Origin``
  that is not this server's, or ``Sec-Fetch-Site`` other than ``same-origin``/``none``.
- State changes are POST (DELETE for /faults) and a POST must say ``Content-Type: application/json``: a
  page cannot send that cross-site without a CORS preflight, which this server never grants.
- With a token (``--control-token file:PATH`` or ``env:NAME``; required when listening beyond loopback),
  every request must carry ``Authorization: Bearer <token>``, except for the console's page and static
  files (``GET /``, ``/static/...``: no data), which then ask for the token and send it.

Refusals are 403 (421 for a foreign Host, 401 for a missing or wrong token, 415 for a body that is not JSON).

The console (kbroker/console/static, a page of vanilla JS; see the README) and what it uses:

    GET    /                    the page; GET /static/{file} its script and style
    GET    /metrics             Prometheus text format (metrics.py)
    GET    /events              server-sent events: a snapshot (topics, groups, clients, requests, totals) each
                                second and after every change
    GET    /topics              POST /topics {"name": "t", "partitions": 3, "configs": {"k": "v"}}
    GET    /topics/{topic}      POST /topics/{topic}/delete {}     POST /topics/{topic}/configs {"k": "v" | null}
    GET    /topics/{topic}/records?partition=P&offset=O | timestamp=MS | newest=1&limit=N
    POST   /topics/{topic}/records {"partition": 0, "key": "k", "value": "v", "headers": {"h": "x"}}
    GET    /groups              POST /groups/{group}/reset-offsets {"topic": "t", "to": "earliest"}
    GET    /clients             GET /brokers             GET /snapshot
    GET    /telemetry           GET /telemetry/{client instance id}: clients' latest pushed metrics (KIP-714)

A cluster in one process (``--brokers N``) also has:
    GET    /brokers                       every broker of the cluster, with "running": true or false
    POST   /brokers/{node_id}/stop        a clean stop: its partitions have no leader until it starts again
    POST   /brokers/{node_id}/start       on its port and data directory
    POST   /brokers/{node_id}/kill        connections dropped, nothing flushed, no controlled shutdown
    POST   /brokers/{node_id}/cut-off     no replication traffic to or from it (clients still reach it)
    POST   /brokers/{node_id}/restore     replication traffic flows again
    POST   /topics/{topic}/partitions/{p}/leader {"broker": 2}   move leadership to a live ISR member (409 if not)
    POST   /wait        {"leaders": true, "timeout_ms": 10000}   every partition has a live leader
    POST   /wait        {"full_isr": true, "timeout_ms": 10000}  ... and every replica in its ISR
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from importlib import resources
import os
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ErrorCode, KafkaError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger("kbroker.control")

MAX_BODY_BYTES = 1 << 20
MAX_HEADERS = 100
HEAD_TIMEOUT_S = 10.0  # for the request line, headers and body: a client that trickles them is dropped
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
            415: "Unsupported Media Type", 421: "Misdirected Request", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
EVENT_INTERVAL_S = 1.0  # the console's live view: at most this long between snapshots
EVENT_MIN_INTERVAL_S = 0.25  # and at least this long


class Raw:
    """A body that is not JSON: the console's page and files, the metrics."""

    def __init__(self, content_type: str, data: bytes):
        self.content_type = content_type
        self.data = data


class EventStream:
    """A body of server-sent events, written until the client goes away."""

    def __init__(self, control):
        self.control = control

    async def run(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                     b"Connection: close\r\n\r\n")
        state = self.control.state
        loop = asyncio.get_running_loop()
        while not state.stopping:
            sent = loop.time()
            data = json.dumps(self.control.snapshot())
            writer.write(f"event: snapshot\ndata: {data}\n\n".encode())
            await writer.drain()
            try:  # the next snapshot after a change (a record, a group moving) or the interval
                await asyncio.wait_for(state.changes.wait(), EVENT_INTERVAL_S)
            except asyncio.TimeoutError:
                continue
            if state.stopping:
                break
            # Changes come with every append under load: a snapshot per change would cost the broker more
            # than the page gains, so they are sent at most this often.
            await asyncio.sleep(max(0.0, sent + EVENT_MIN_INTERVAL_S - loop.time()))


def is_console_page(target: str) -> bool:
    """The console's page and its static files (not its data)."""
    path = urlsplit(target).path
    return path in ("/", "/index.html") or (path.startswith("/static/") and path.count("/") == 2)


def static_file(name: str) -> Raw:
    """One of the console's files, from the package (so a wheel serves it too)."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        raise HttpError(404, f"no file {name}")
    f = resources.files("kbroker.console").joinpath("static", name)
    if not f.is_file():
        raise HttpError(404, f"no file {name}")
    return Raw(STATIC_TYPES[suffix], f.read_bytes())


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(source: str | None, environ=None) -> str | None:
    """``file:PATH`` (the file's first line) or ``env:NAME``; never the token itself, which ``ps`` would show."""
    if not source:
        return None
    kind, sep, where = source.partition(":")
    if not sep or kind not in ("file", "env") or not where:
        raise ValueError("--control-token expects file:PATH or env:NAME")
    if kind == "file":
        with open(where, encoding="utf-8") as fh:
            token = fh.readline().strip()
    else:
        token = (os.environ if environ is None else environ).get(where, "").strip()
    if not token:
        raise ValueError(f"--control-token {kind}:{where} gives an empty token")
    return token


def _split_host(value: str) -> tuple[str, int | None]:
    """``Host`` -> (name, port): ``localhost:8080``, ``[::1]:8080``, ``example``."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    else:
        name, sep, port = value.rpartition(":")
        if not sep:
            name, port = value, None
    try:
        return name, int(port) if port else None
    except ValueError:
        return value, -1


class ControlHttpServer:
    def __init__(self, control, token: str | None = None, allowed_hosts=()):
        self.control = control
        self.token = token
        self.allowed_hosts = {h.strip().lower() for h in allowed_hosts if h.strip()}
        self.server: asyncio.base_events.Server | None = None
        self.streams: set[asyncio.Task] = set()  # the console's event streams, ended by stop
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        if not is_loopback(host) and self.token is None:
            raise ValueError(f"the control plane may listen on {host} (beyond loopback) only with a token "
                             f"(--control-token file:PATH or env:NAME)")
        self.server = await asyncio.start_server(self._serve, host, port)
        addr = self.server.sockets[0].getsockname()
        self.host, self.port = host, addr[1]
        if not is_loopback(host):
            log.warning("the HTTP control plane listens on %s:%d, beyond loopback: anyone who can reach it and "
                        "has the token can inject faults, read every record and delete every topic", host, addr[1])
        return addr[0], addr[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.streams:  # the broker is stopping (state.stopping): wake the streams so they end
            self.control.state.changes.notify()
            await asyncio.wait(list(self.streams), timeout=2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._handle(reader, writer)
        except HttpError as e:
            status, body = e.status, {"error": str(e)}
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, asyncio.LimitOverrunError):
            writer.close()
            return
        except Exception as e:  # a bug: say so, keep serving
            log.exception("control request failed")
            status, body = 500, {"error": str(e)}
        if isinstance(body, EventStream):
            task = asyncio.current_task()
            self.streams.add(task)
            try:
                await body.run(writer)
            except ConnectionError:
                pass
            finally:
                self.streams.discard(task)
                writer.close()
            return
        content_type = "application/json"
        if isinstance(body, Raw):
            content_type, data = body.content_type, body.data
        else:
            data = b"" if body is None else json.dumps(body).encode()
        extra = 'WWW-Authenticate: Bearer realm="kbroker"\r\n' if status == 401 else ""
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n{extra}"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        method, target, headers, raw = await asyncio.wait_for(self._read_request(reader), HEAD_TIMEOUT_S)
        self._check(method, headers, writer, page=method == "GET" and is_console_page(target))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise HttpError(400, "body is not JSON") from None
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = [unquote(p) for p in url.path.strip("/").split("/") if p]
        return await self._route(method, path, query, body)

    async def _read_request(self, reader):
        line = await reader.readline()
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= MAX_HEADERS:
                raise HttpError(431, "too many header fields")
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length > MAX_BODY_BYTES or length < 0:
            raise HttpError(413, "body too large")
        raw = await reader.readexactly(length) if length else b""
        return method.upper(), target, headers, raw

    def _check(self, method: str, headers: dict[str, str], writer, page: bool = False) -> None:
        """The rules in the module docstring, in the order that tells an honest client what is wrong first.
        ``page``: the console's own files, which hold no data, are served without the token (a browser
        cannot send one for them); the page then asks for it and sends it with everything else."""
        host = headers.get("host")
        if host is None or not self._host_allowed(host, writer):
            raise HttpError(421, f"Host {host!r} is not this control plane's (see --control-allow-host)")
        if self.token is not None and not page:
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                raise HttpError(401, "a bearer token is required (Authorization: Bearer ...)")
        if method in STATE_CHANGING:
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, writer):
                raise HttpError(403, f"cross-site request refused (Origin {origin})")
            site = headers.get("sec-fetch-site")
            if site is not None and site.lower() not in ("same-origin", "none"):
                raise HttpError(403, f"cross-site request refused (Sec-Fetch-Site {site})")
            if method == "POST":
                ctype = headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    raise HttpError(415, "a state change needs a JSON body (Content-Type: application/json)")

    def _names(self, writer) -> set[str]:
        names = set(self.allowed_hosts)
        names.add(self.host.lower().strip("[]"))
        if is_loopback(self.host) or self.host in ("0.0.0.0", "::", ""):
            names |= LOOPBACK_NAMES
        sock = writer.get_extra_info("sockname")
        if sock:
            names.add(str(sock[0]).lower())
        return names

    def _host_allowed(self, value: str, writer) -> bool:
        name, port = _split_host(value)
        if port is not None and port != self.port:
            return False
        if port is None and self.port != 80:
            return False
        return name in self._names(writer)

    def _origin_allowed(self, origin: str, writer) -> bool:
        url = urlsplit(origin)
        if url.scheme != "http" or not url.hostname:
            return False
        return url.port == self.port and url.hostname.lower() in self._names(writer)

    async def _route(self, method: str, path: list[str], query: dict, body):
        c = self.control
        try:
            if path == ["faults"]:
                if method == "POST":
                    return 200, c.add_fault(body)
                if method == "GET":
                    return 200, c.list_faults()
                if method == "DELETE":
                    c.clear_faults()
                    return 200, {"cleared": True}
            elif len(path) == 3 and path[0] == "topics" and path[2] == "records" and method == "GET":
                return 200, c.records(path[1], int(query.get("partition", 0)), int(query.get("offset", 0)),
                                      int(query.get("limit", 100)),
                                      int(query["timestamp"]) if query.get("timestamp") else None,
                                      query.get("newest") in ("1", "true"))
            elif len(path) == 2 and path[0] == "groups" and method == "GET":
                return 200, c.group(path[1])
            elif path == ["requests"] and method == "GET":
                return 200, c.requests(int(query.get("limit", 100)))
            elif path == ["wait"] and method == "POST":
                ok = await c.wait(body)
                return (200, {"ok": True}) if ok else (408, {"ok": False, "error": "timed out"})
            elif path == ["reset"] and method == "POST":
                await c.reset()
                return 200, {"reset": True}
            elif path == ["health"] and method == "GET":
                return 200, c.health()
            elif len(path) == 3 and path[0] == "brokers" and path[2] in ("stop", "start") and method == "POST" \
                    and hasattr(c, "stop_broker"):
                await (c.stop_broker(path[1]) if path[2] == "stop" else c.start_broker(path[1]))
                return 200, {"started" if path[2] == "start" else "stopped": True}
            elif len(path) == 3 and path[0] == "brokers" and path[2] == "kill" and method == "POST" \
                    and hasattr(c, "kill_broker"):
                await c.kill_broker(path[1])
                return 200, {"killed": True}
            elif len(path) == 3 and path[0] == "brokers" and path[2] in ("cut-off", "restore") and method == "POST" \
                    and hasattr(c, "cut_off"):
                (c.cut_off if path[2] == "cut-off" else c.restore)(path[1])
                return 200, {"cut_off": path[2] == "cut-off"}
            elif len(path) == 5 and path[0] == "topics" and path[2] == "partitions" and path[4] == "leader" \
                    and method == "POST" and hasattr(c, "move_leader"):
                try:
                    c.move_leader(path[1], int(path[3]), (body or {})["broker"])
                except KafkaError as e:
                    raise HttpError(409, f"{ErrorCode(e.code).name}: {e.message}") from None
                return 200, {"leader": int((body or {})["broker"])}
            elif len(path) == 5 and path[0] == "topics" and path[2] == "partitions" and path[4] == "reassign" \
                    and method == "POST" and hasattr(c, "reassign"):
                try:
                    return 200, c.reassign(path[1], int(path[3]), (body or {})["replicas"])
                except KafkaError as e:
                    raise HttpError(409, f"{ErrorCode(e.code).name}: {e.message}") from None
            elif method == "GET" and path in ([], ["index.html"]):
                return 200, static_file("index.html")
            elif method == "GET" and len(path) == 2 and path[0] == "static":
                return 200, static_file(path[1])
            elif path == ["metrics"] and method == "GET":
                return 200, Raw(METRICS_CONTENT_TYPE, c.metrics_text())
            elif path == ["events"] and method == "GET":
                return 200, EventStream(c)
            elif path == ["snapshot"] and method == "GET":
                return 200, c.snapshot()
            elif path == ["topics"] and method == "GET":
                return 200, c.topics()
            elif path == ["topics"] and method == "POST":
                return 200, await c.create_topic(body)
            elif len(path) == 2 and path[0] == "topics" and method == "GET":
                return 200, c.topic(path[1])
            elif len(path) == 3 and path[0] == "topics" and path[2] == "delete" and method == "POST":
                return 200, await c.delete_topic(path[1])
            elif len(path) == 3 and path[0] == "topics" and path[2] == "configs" and method == "POST":
                return 200, await c.set_topic_configs(path[1], body)
            elif len(path) == 3 and path[0] == "topics" and path[2] == "records" and method == "POST":
                return 200, c.produce(path[1], body)
            elif path == ["groups"] and method == "GET":
                return 200, c.groups()
            elif len(path) == 3 and path[0] == "groups" and path[2] == "reset-offsets" and method == "POST":
                return 200, c.reset_offsets(path[1], body)
            elif path == ["clients"] and method == "GET":
                return 200, c.clients()
            elif path == ["brokers"] and method == "GET":
                return 200, c.brokers()
            elif path == ["telemetry"] and method == "GET":
                return 200, c.telemetry()
            elif len(path) == 2 and path[0] == "telemetry" and method == "GET":
                return 200, c.telemetry(path[1])
            elif path and path[0] in ("faults", "topics", "groups", "requests", "wait", "reset", "health"):
                raise HttpError(405, f"{method} is not allowed on /{'/'.join(path)}")
            else:
                raise HttpError(404, f"no route for {method} /{'/'.join(path)}")
        except KeyError as e:
            raise HttpError(404, str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise HttpError(400, str(e)) from None
        raise HttpError(405, "method not allowed")
