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
    A cluster in one process (``--brokers N``) also has:
    GET    /brokers                       [{"node_id": 0, "running": true, "host": ..., "port": ...}, ...]
    POST   /brokers/{node_id}/stop        a clean stop: its partitions have no leader until it starts again
    POST   /brokers/{node_id}/start       on its port and data directory
    POST   /wait        {"leaders": true, "timeout_ms": 10000}   every partition has a live leader
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("kbroker.control")

MAX_BODY_BYTES = 1 << 20
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 500: "Internal Server Error"}


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ControlHttpServer:
    def __init__(self, control):
        self.control = control
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port)
        addr = self.server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

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
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: application/json\r\n"
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
                                      int(query.get("limit", 100)))
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
            elif path == ["brokers"] and method == "GET" and hasattr(c, "brokers"):
                return 200, c.brokers()
            elif len(path) == 3 and path[0] == "brokers" and path[2] in ("stop", "start") and method == "POST" \
                    and hasattr(c, "stop_broker"):
                await (c.stop_broker(path[1]) if path[2] == "stop" else c.start_broker(path[1]))
                return 200, {"started" if path[2] == "start" else "stopped": True}
            else:
                raise HttpError(404, f"no route for {method} /{'/'.join(path)}")
        except KeyError as e:
            raise HttpError(404, str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise HttpError(400, str(e)) from None
        raise HttpError(405, "method not allowed")
