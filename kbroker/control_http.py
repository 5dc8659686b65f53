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
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger("kbroker.control")

MAX_BODY_BYTES = 1 << 20
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 500: "Internal Server Error"}


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


class ControlHttpServer:
    def __init__(self, control):
        self.control = control
        self.server: asyncio.base_events.Server | None = None
        self.streams: set[asyncio.Task] = set()  # the console's event streams, ended by stop

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port)
        addr = self.server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.streams:  # the broker is stopping (state.stopping): wake the streams so they end
            self.control.state.changes.notify()
            await asyncio.wait(list(self.streams), timeout=2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._handle(reader)
        except HttpError as e:
            status, body = e.status, {"error": str(e)}
        except (asyncio.IncompleteReadError, ConnectionError):
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
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader):
        line = await reader.readline()
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, _ = parts
        length = 0
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "body too large")
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise HttpError(400, "body is not JSON") from None
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = [unquote(p) for p in url.path.strip("/").split("/") if p]
        return await self._route(method, path, query, body)

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
                c.reset()
                return 200, {"reset": True}
            elif path == ["health"] and method == "GET":
                return 200, c.health()
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
                return 200, c.create_topic(body)
            elif len(path) == 2 and path[0] == "topics" and method == "GET":
                return 200, c.topic(path[1])
            elif len(path) == 3 and path[0] == "topics" and path[2] == "delete" and method == "POST":
                return 200, c.delete_topic(path[1])
            elif len(path) == 3 and path[0] == "topics" and path[2] == "configs" and method == "POST":
                return 200, c.set_topic_configs(path[1], body)
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
            else:
                raise HttpError(404, f"no route for {method} /{'/'.join(path)}")
        except KeyError as e:
            raise HttpError(404, str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise HttpError(400, str(e)) from None
        raise HttpError(405, "method not allowed")
