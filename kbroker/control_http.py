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
  every request must carry ``Authorization: Bearer <token>``.

Refusals are 403 (421 for a foreign Host, 401 for a missing or wrong token, 415 for a body that is not JSON).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
from urllib.parse import parse_qs, unquote, urlsplit

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
        data = b"" if body is None else json.dumps(body).encode()
        extra = 'WWW-Authenticate: Bearer realm="kbroker"\r\n' if status == 401 else ""
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: application/json\r\n{extra}"
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
        self._check(method, headers, writer)
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

    def _check(self, method: str, headers: dict[str, str], writer) -> None:
        """The rules in the module docstring, in the order that tells an honest client what is wrong first."""
        host = headers.get("host")
        if host is None or not self._host_allowed(host, writer):
            raise HttpError(421, f"Host {host!r} is not this control plane's (see --control-allow-host)")
        if self.token is not None:
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
            elif path and path[0] in ("faults", "topics", "groups", "requests", "wait", "reset", "health"):
                raise HttpError(405, f"{method} is not allowed on /{'/'.join(path)}")
            else:
                raise HttpError(404, f"no route for {method} /{'/'.join(path)}")
        except KeyError as e:
            raise HttpError(404, str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise HttpError(400, str(e)) from None
        raise HttpError(405, "method not allowed")
