"""Confluent Schema Registry's REST API over HTTP/1.1 (``kbroker serve --schema-registry-port N``).

Requests are read with Content-Length bodies and answered on the same connection (keep-alive, as
confluent-kafka's httpx client expects) until the client closes or sends ``Connection: close``. Bodies are
JSON; the content types Confluent accepts are accepted (``application/vnd.schemaregistry.v1+json``,
``application/vnd.schemaregistry+json``, ``application/json``, ``application/octet-stream``, none), others
get 415. Answers are ``application/vnd.schemaregistry.v1+json`` unless the client accepts only
``application/json``. Errors carry Confluent's ``{"error_code": ..., "message": ...}`` body.

Every handler runs on the broker's event loop; reads answer from the state applied on this broker, writes
go through ``Registry.write`` (store.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, unquote, urlsplit

from . import errors as E
from .schemas import TYPES

log = logging.getLogger("kbroker.schema_registry")

MAX_BODY_BYTES = 16 << 20  # Confluent's schemas are capped well below (schema.max.size); this bounds memory
MAX_HEADER_BYTES = 64 << 10
IDLE_TIMEOUT_S = 300
WRITING_METHODS = ("POST", "PUT", "DELETE")  # the requests that may append to _schemas (see _may_write)
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPTED_BODY_TYPES = ("application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json",
                        "application/json", "application/octet-stream")
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Entity", 500: "Internal Server Error"}


class RawText(str):
    """A body sent as it is, not as a JSON string: a Protobuf schema from the ``/schema`` endpoints."""


def _flag(query: dict, name: str) -> bool:
    return query.get(name, "false").lower() == "true"


class SchemaRegistryServer:
    def __init__(self, registry):
        self.registry = registry
        self.server = None
        self._tasks: set[asyncio.Task] = set()  # open connections, ended at stop (keep-alive clients idle)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEADER_BYTES)
        addr = self.server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.registry.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(self._read(reader), IDLE_TIMEOUT_S)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError,
                        ValueError):
                    return
                if request is None:
                    return
                method, target, headers, raw = request
                status, body, ctype = await self._answer(method, target, headers, raw)
                if body is None:
                    data = b""
                else:
                    data = body.encode() if isinstance(body, RawText) else json.dumps(body).encode()
                close = headers.get("connection", "").lower() == "close"
                head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(data)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
                        "\r\n").encode()
                writer.write(head + (data if method != "HEAD" else b""))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):  # the client left, or the broker is stopping
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read(self, reader):
        line = await reader.readline()
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            raise ValueError("malformed request line")
        headers: dict[str, str] = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        raw = await reader.readexactly(length) if length else b""
        return parts[0], parts[1], headers, raw

    async def _answer(self, method: str, target: str, headers: dict, raw: bytes):
        accept = headers.get("accept", "")
        ctype = "application/json" if ("application/json" in accept and "schemaregistry" not in accept
                                       and "*/*" not in accept) else CONTENT_TYPE
        try:
            body_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if raw and body_type and body_type not in _ACCEPTED_BODY_TYPES:
                raise E.RegistryError(415, 415, "HTTP 415 Unsupported Media Type")
            try:
                body = json.loads(raw) if raw else None
            except ValueError as e:
                raise E.RegistryError(400, 400, f"Unrecognized JSON body: {e}") from None
            url = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            path = [unquote(p) for p in url.path.strip("/").split("/") if p]
            method = method.upper()

            def route():
                return self._route(method, path, query, body)
            if _may_write(method, path):  # against the whole log, appended through its leader (store.py)
                status, out = await self.registry.write(route)
            else:
                status, out = await self._answer_read(route)
            return status, out, ctype
        except E.RegistryError as e:
            return e.status, e.body(), ctype
        except Exception as e:  # a bug: say so with Confluent's 500 shape and keep serving
            log.exception("schema registry request failed")
            return 500, {"error_code": 50001, "message": f"Internal error: {e}"}, ctype

    async def _answer_read(self, route):
        """A read answers from the state applied here; one that finds nothing first reads what the leader of
        ``_schemas`` has, so an id or version registered through another broker's registry is found as soon
        as it is acknowledged (a serializer's id, then a consumer's lookup through another registry)."""
        await self.registry.refresh()
        try:
            return route()
        except E.RegistryError as e:
            if e.status != 404 or not await self.registry.read_latest():
                raise
        return route()

    def _route(self, method: str, path: list[str], q: dict, body):
        r = self.registry
        n = len(path)
        head = path[0] if path else ""
        if method == "HEAD":
            method = "GET"
        if n == 0 and method == "GET":
            return 200, {}
        if head == "subjects":
            if n == 1 and method == "GET":
                return 200, r.list_subjects(q.get("subjectPrefix", ""), _flag(q, "deleted"), _flag(q, "deletedOnly"))
            subject = path[1] if n > 1 else ""
            if n == 2:
                if method == "POST":
                    return 200, r.lookup(subject, body, _flag(q, "normalize"), _flag(q, "deleted"))
                if method == "DELETE":
                    return 200, r.delete_subject(subject, _flag(q, "permanent"))
            elif n == 3 and path[2] == "versions":
                if method == "GET":
                    return 200, r.list_versions(subject, _flag(q, "deleted"))
                if method == "POST":
                    out = r.register(subject, body, _flag(q, "normalize"))
                    return 200, {"id": out["id"]}
            elif n == 4 and path[2] == "versions":
                if method == "GET":
                    return 200, r.get_version(subject, path[3], _flag(q, "deleted"), q.get("format"))
                if method == "DELETE":
                    return 200, r.delete_version(subject, path[3], _flag(q, "permanent"))
            elif n == 5 and path[2] == "versions" and method == "GET":
                if path[4] == "schema":
                    v = r.get_version(subject, path[3], _flag(q, "deleted"))
                    return 200, json.loads(v["schema"]) if _is_json(v) else RawText(v["schema"])
                if path[4] == "referencedby":
                    return 200, r.referenced_by(subject, path[3])
        elif head == "schemas":
            if n == 1 and method == "GET":
                return 200, r.list_schemas(q.get("subjectPrefix", ""), _flag(q, "deleted"), _flag(q, "latestOnly"))
            if n == 2 and path[1] == "types" and method == "GET":
                return 200, list(TYPES)
            if n >= 3 and path[1] == "ids" and method == "GET":
                try:
                    sid = int(path[2])
                except ValueError:
                    raise E.schema_not_found() from None
                if n == 3:
                    return 200, r.schema_by_id(sid, q.get("format"))
                if n == 4 and path[3] == "schema":
                    s = r.schema_by_id(sid, q.get("format"))
                    return 200, json.loads(s["schema"]) if _is_json(s) else RawText(s["schema"])
                if n == 4 and path[3] == "subjects":
                    return 200, r.subjects_of_id(sid, _flag(q, "deleted"))
                if n == 4 and path[3] == "versions":
                    return 200, r.versions_of_id(sid, _flag(q, "deleted"))
        elif head == "config" and n <= 2:
            subject = path[1] if n == 2 else None
            if method == "GET":
                return 200, {"compatibilityLevel": r.compatibility(subject, subject is None
                                                                   or _flag(q, "defaultToGlobal"))}
            if method == "PUT":
                level = body.get("compatibility") if isinstance(body, dict) else None
                return 200, {"compatibility": r.set_compatibility(subject, level)}
            if method == "DELETE":
                return 200, {"compatibilityLevel": r.delete_compatibility(subject)}
        elif head == "mode" and n <= 2:
            subject = path[1] if n == 2 else None
            if method == "GET":
                return 200, {"mode": r.mode(subject, subject is None or _flag(q, "defaultToGlobal"))}
            if method == "PUT":
                mode = body.get("mode") if isinstance(body, dict) else None
                return 200, {"mode": r.set_mode(subject, mode, _flag(q, "force"))}
            if method == "DELETE" and subject is not None:
                return 200, {"mode": r.delete_mode(subject)}
        elif head == "compatibility" and n in (4, 5) and path[1] == "subjects" and path[3] == "versions":
            if method == "POST":
                return 200, r.test_compatibility(path[2], path[4] if n == 5 else None, body,
                                                 _flag(q, "normalize"), _flag(q, "verbose"))
        elif head == "contexts" and n == 1 and method == "GET":
            return 200, ["."]
        raise E.RegistryError(404, 404, "HTTP 404 Not Found")


def _may_write(method: str, path: list[str]) -> bool:
    """PUT and DELETE, and POST but for a lookup (``/subjects/{s}``) and a compatibility test: those read."""
    if method not in WRITING_METHODS:
        return False
    return method != "POST" or not ((len(path) == 2 and path[0] == "subjects") or path[:1] == ["compatibility"])


def _is_json(version_body: dict) -> bool:
    return version_body.get("schemaType", "AVRO") != "PROTOBUF"
