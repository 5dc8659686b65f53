"""A minimal Kafka client over a plain socket, for tests that need exact bytes."""

from __future__ import annotations

import socket
import struct

from kbroker.wire.header import RequestHeader, encode_request_header, read_response_header
from kbroker.wire.messages import BY_KEY


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self, api_key: int, version: int, request, client_id: str | None = "raw") -> bytes:
        """The bytes of one request frame, size prefix included."""
        api = BY_KEY[api_key]
        self.correlation_id += 1
        flexible = api.REQUEST_FLEXIBLE_FROM is not None and version >= api.REQUEST_FLEXIBLE_FROM
        out = bytearray()
        encode_request_header(out, RequestHeader(api_key, version, self.correlation_id, client_id), flexible)
        api.REQUEST_ENCODERS[version](request, out)
        return struct.pack(">i", len(out)) + bytes(out)

    def read_frame(self) -> bytes | None:
        head = self._read_exact(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._read_exact(size)

    def _read_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, version: int, request, response_version: int | None = None):
        self.send_bytes(self.frame(api_key, version, request))
        return self.read_response(api_key, version if response_version is None else response_version)

    def read_response(self, api_key: int, version: int):
        api = BY_KEY[api_key]
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("connection closed by the broker")
        flexible = api.RESPONSE_FLEXIBLE_FROM is not None and version >= api.RESPONSE_FLEXIBLE_FROM
        cid, pos = read_response_header(frame, flexible and api_key != 18)
        assert cid == self.correlation_id, (cid, self.correlation_id)
        obj, end = api.RESPONSE_DECODERS[version](memoryview(frame), pos)
        assert end == len(frame), f"{len(frame) - end} trailing bytes in the response"
        return obj

    def is_closed(self) -> bool:
        """True if the broker closed the connection (reads EOF)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
