"""Kafka's wire primitives: fixed-width integers, varints, strings, bytes, uuids.

Sans-IO: every reader takes a buffer (bytes or memoryview) and a position and
returns ``(value, new_position)``; every writer appends to a ``bytearray``.
Readers raise :class:`DecodeError` for any input that is not a valid encoding,
so a caller has exactly one exception to catch for "the peer misbehaved".

The generated codec modules in ``kbroker/wire/messages`` call these for the
variable-length types and use precompiled ``struct.Struct`` objects for runs of
fixed-width fields.
"""

from __future__ import annotations

import struct
import uuid as _uuid

__all__ = [
    "DecodeError",
    "I8", "I16", "I32", "I64", "U16", "U32", "F64", "BOOL",
    "ZERO_UUID",
]


class DecodeError(ValueError):
    """The bytes are not a valid encoding of what was expected."""


I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
F64 = struct.Struct(">d")
BOOL = struct.Struct(">?")

ZERO_UUID = _uuid.UUID(int=0)

_i16_pack = I16.pack
_i32_pack = I32.pack
_i16_unpack = I16.unpack_from
_i32_unpack = I32.unpack_from


# -- varints (protobuf style, as Kafka's ByteUtils) --------------------------

def read_uvarint(buf, pos: int) -> tuple[int, int]:
    """An unsigned varint of at most 5 bytes (32 bits).

    Kafka's ByteUtils refuses a sixth byte but silently drops the bits of a fifth byte above bit 31;
    those bits can only come from a broken or hostile peer, so they are refused here.
    """
    try:
        b = buf[pos]
    except IndexError:
        raise DecodeError("truncated varint") from None
    pos += 1
    if b < 0x80:
        return b, pos
    result = b & 0x7F
    shift = 7
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise DecodeError("truncated varint") from None
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result > 0xFFFFFFFF:
                raise DecodeError("varint overflows 32 bits")
            return result, pos
        shift += 7
        if shift > 28:
            raise DecodeError("varint is longer than 5 bytes")


def read_varint(buf, pos: int) -> tuple[int, int]:
    """A zig-zag signed 32-bit varint."""
    v, pos = read_uvarint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def read_uvarlong(buf, pos: int) -> tuple[int, int]:
    """An unsigned varint of at most 10 bytes (64 bits); bits above bit 63 are refused."""
    result = 0
    shift = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise DecodeError("truncated varlong") from None
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result > 0xFFFFFFFFFFFFFFFF:
                raise DecodeError("varlong overflows 64 bits")
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varlong is longer than 10 bytes")


def read_varlong(buf, pos: int) -> tuple[int, int]:
    v, pos = read_uvarlong(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def write_uvarint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def write_varint(out: bytearray, v: int) -> None:
    write_uvarint(out, ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)


def write_varlong(out: bytearray, v: int) -> None:
    write_uvarint(out, ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def uvarint_size(v: int) -> int:
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


# -- strings -----------------------------------------------------------------

def _take(buf, pos: int, n: int) -> tuple[memoryview | bytes, int]:
    end = pos + n
    if n < 0 or end > len(buf):
        raise DecodeError("length runs past the end of the buffer")
    return buf[pos:end], end


def _decode_utf8(raw) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise DecodeError("string is not valid UTF-8") from None


def read_string(buf, pos: int) -> tuple[str, int]:
    try:
        (n,) = _i16_unpack(buf, pos)
    except struct.error:
        raise DecodeError("truncated string length") from None
    if n < 0:
        raise DecodeError("null for a non-nullable string")
    raw, pos = _take(buf, pos + 2, n)
    return _decode_utf8(raw), pos


def read_nullable_string(buf, pos: int) -> tuple[str | None, int]:
    try:
        (n,) = _i16_unpack(buf, pos)
    except struct.error:
        raise DecodeError("truncated string length") from None
    if n < 0:
        return None, pos + 2
    raw, pos = _take(buf, pos + 2, n)
    return _decode_utf8(raw), pos


def read_compact_string(buf, pos: int) -> tuple[str, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null for a non-nullable string")
    raw, pos = _take(buf, pos, n - 1)
    return _decode_utf8(raw), pos


def read_compact_nullable_string(buf, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    raw, pos = _take(buf, pos, n - 1)
    return _decode_utf8(raw), pos


def write_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out += b"\xff\xff"
        return
    b = s.encode()
    out += _i16_pack(len(b))
    out += b


def write_compact_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out.append(0)
        return
    b = s.encode()
    write_uvarint(out, len(b) + 1)
    out += b


# -- bytes and records -------------------------------------------------------
# Decoded byte fields are memoryview slices of the request buffer: no copy.

def read_bytes(buf, pos: int) -> tuple[memoryview, int]:
    try:
        (n,) = _i32_unpack(buf, pos)
    except struct.error:
        raise DecodeError("truncated bytes length") from None
    if n < 0:
        raise DecodeError("null for non-nullable bytes")
    return _take(buf, pos + 4, n)


def read_nullable_bytes(buf, pos: int) -> tuple[memoryview | None, int]:
    try:
        (n,) = _i32_unpack(buf, pos)
    except struct.error:
        raise DecodeError("truncated bytes length") from None
    if n < 0:
        return None, pos + 4
    return _take(buf, pos + 4, n)


def read_compact_bytes(buf, pos: int) -> tuple[memoryview, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null for non-nullable bytes")
    return _take(buf, pos, n - 1)


def read_compact_nullable_bytes(buf, pos: int) -> tuple[memoryview | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return _take(buf, pos, n - 1)


SPLICE_MIN_BYTES = 16384  # below this, copying is cheaper than another piece to send


class FrameBuffer(bytearray):
    """A response frame being encoded. Records handed over as a list of chunks (read from a log) of at
    least SPLICE_MIN_BYTES are not copied in: ``spliced`` keeps (position, chunks), and the frame is sent
    as the pieces between them (header.finish_frame), so stored bytes reach the socket without another
    copy through Python."""

    def __init__(self, *args):
        super().__init__(*args)
        self.spliced: list[tuple[int, list]] = []


def _bytes_len(b) -> int:
    if isinstance(b, (list, tuple)):
        return sum(len(c) for c in b)
    return len(b)


def _append_bytes(out: bytearray, b, n: int) -> None:
    # Records may be handed over as a list of chunks read from a log segment.
    if isinstance(b, (list, tuple)):
        if n >= SPLICE_MIN_BYTES and type(out) is FrameBuffer:
            out.spliced.append((len(out), b))
            return
        for c in b:
            try:
                out += c
            except TypeError:  # a region of a file (storage/file_region.py) being encoded into memory
                out += bytes(c)
    else:
        out += b


def write_bytes(out: bytearray, b) -> None:
    if b is None:
        out += b"\xff\xff\xff\xff"
        return
    n = _bytes_len(b)
    out += _i32_pack(n)
    _append_bytes(out, b, n)


def write_compact_bytes(out: bytearray, b) -> None:
    if b is None:
        out.append(0)
        return
    n = _bytes_len(b)
    write_uvarint(out, n + 1)
    _append_bytes(out, b, n)


# -- uuids and arrays --------------------------------------------------------

_UUIDS: dict[bytes, _uuid.UUID] = {}  # topic ids repeat in every Fetch: build each UUID object once
_UUIDS_MAX = 100_000


def read_uuid(buf, pos: int) -> tuple[_uuid.UUID, int]:
    raw, pos = _take(buf, pos, 16)
    raw = bytes(raw)
    u = _UUIDS.get(raw)
    if u is None:
        if len(_UUIDS) >= _UUIDS_MAX:
            _UUIDS.clear()
        u = _UUIDS[raw] = _uuid.UUID(bytes=raw)
    return u, pos


def write_uuid(out: bytearray, u) -> None:
    out += (u or ZERO_UUID).bytes


def read_array_len(buf, pos: int) -> tuple[int, int]:
    """Classic array length: int32, -1 for null. Refuses counts the buffer cannot hold."""
    try:
        (n,) = _i32_unpack(buf, pos)
    except struct.error:
        raise DecodeError("truncated array length") from None
    pos += 4
    if n > len(buf) - pos:
        raise DecodeError("array length runs past the end of the buffer")
    return n, pos


def read_compact_array_len(buf, pos: int) -> tuple[int, int]:
    """Compact array length: uvarint N+1, 0 for null (returned as -1)."""
    n, pos = read_uvarint(buf, pos)
    n -= 1
    if n > len(buf) - pos:
        raise DecodeError("array length runs past the end of the buffer")
    return n, pos


def skip_tagged_fields(buf, pos: int) -> int:
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        _raw, pos = _take(buf, pos, size)
    return pos


def write_tagged(out: bytearray, tagged: list[tuple[int, bytes]]) -> None:
    """Write a tagged-field section; ``tagged`` is sorted by tag."""
    write_uvarint(out, len(tagged))
    for tag, data in tagged:
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data
