"""Request and response headers (KIP-482 for the flexible ones).

Request header v1: api_key int16, api_version int16, correlation_id int32, client_id nullable string
(always the classic int16-length encoding). v2 adds a tagged-field section. A flexible request version uses
v2, any other v1 (v0, without client_id, is only ControlledShutdown v0, which kbroker does not serve).

Response header v0: correlation_id int32; v1 adds a tagged-field section and goes with flexible versions,
except ApiVersions, whose response header is always v0 so that a client can read it before it knows which
versions the broker speaks (KIP-511).
"""

from __future__ import annotations

import struct

from .primitives import DecodeError, FrameBuffer, read_nullable_string, skip_tagged_fields

API_VERSIONS_KEY = 18

_HEAD = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")
_SIZE_CORRELATION = struct.Struct(">ii")


class RequestHeader:
    __slots__ = ("api_key", "api_version", "correlation_id", "client_id")

    def __init__(self, api_key: int, api_version: int, correlation_id: int, client_id: str | None):
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id

    def __repr__(self) -> str:
        return (f"RequestHeader(api_key={self.api_key}, api_version={self.api_version}, "
                f"correlation_id={self.correlation_id}, client_id={self.client_id!r})")


def peek_header(frame) -> RequestHeader:
    """The fixed part of a request header and the client id; raises DecodeError when truncated."""
    if len(frame) < 8:
        raise DecodeError("request header is truncated")
    api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
    client_id, _ = read_nullable_string(frame, 8)
    return RequestHeader(api_key, api_version, correlation_id, client_id)


def body_offset(frame, flexible: bool) -> int:
    """Where the request body starts: after the client id and, for header v2, the tagged fields."""
    _, pos = read_nullable_string(frame, 8)
    if flexible:
        pos = skip_tagged_fields(frame, pos)
    return pos


def encode_request_header(out: bytearray, header: RequestHeader, flexible: bool) -> None:
    """Used by tests and tools that play the client."""
    out += _HEAD.pack(header.api_key, header.api_version, header.correlation_id)
    cid = header.client_id
    if cid is None:
        out += b"\xff\xff"
    else:
        b = cid.encode()
        out += struct.pack(">h", len(b)) + b
    if flexible:
        out.append(0)


def response_frame_start(correlation_id: int, flexible_header: bool) -> FrameBuffer:
    """A buffer holding a size placeholder and the response header; the body is encoded into it and
    :func:`finish_frame` fills the size in."""
    out = FrameBuffer(_SIZE_CORRELATION.pack(0, correlation_id))
    if flexible_header:
        out.append(0)
    return out


def finish_frame(out: bytearray) -> bytearray | list:
    """Fill the size in. A frame with spliced records (see FrameBuffer) comes back as the list of pieces
    to send in order, the stored record chunks among them, uncopied."""
    spliced = getattr(out, "spliced", None)
    if not spliced:
        struct.pack_into(">i", out, 0, len(out) - 4)
        return out
    size = len(out) - 4 + sum(len(c) for _pos, chunks in spliced for c in chunks)
    struct.pack_into(">i", out, 0, size)
    view = memoryview(out)
    pieces: list = []
    prev = 0
    for pos, chunks in spliced:
        pieces.append(view[prev:pos])
        pieces.extend(chunks)
        prev = pos
    pieces.append(view[prev:])
    return pieces


def read_response_header(frame, flexible_header: bool) -> tuple[int, int]:
    """(correlation_id, body offset) of a response frame without its size prefix."""
    (cid,) = _CORRELATION.unpack_from(frame, 0)
    pos = 4
    if flexible_header:
        pos = skip_tagged_fields(frame, pos)
    return cid, pos
