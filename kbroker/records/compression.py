"""Compression codecs of RecordBatch v2 (attributes bits 0-2).

Only the records section of a batch (everything after the 61-byte header) is
compressed.  The broker never recompresses on the produce/fetch path; these
codecs serve inspection, timestamp lookups, compaction and the builder.

Framing per codec, as Kafka's clients write it:

* gzip:   an RFC 1952 stream (possibly several members).
* snappy: xerial framing -- ``b"\\x82SNAPPY\\x00"``, int32 version, int32
          minimum compatible version, then blocks of [int32 length][raw snappy
          block].  librdkafka and some old clients send a bare raw snappy block,
          which is accepted too.
* lz4:    the LZ4 frame format.  Java's decoder refuses linked blocks and
          content sizes, so the encoder writes independent blocks and no size.
* zstd:   a zstd frame; the decoder does not require the content size.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from kbroker.records.errors import CorruptRecordError, InvalidRecordError, RecordError

__all__ = [
    "NONE", "GZIP", "SNAPPY", "LZ4", "ZSTD", "CODEC_NAMES",
    "compress", "decompress",
]

NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4

CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_I32 = struct.Struct(">i")
# Uncompressed bytes per xerial block; snappy-java's default block size.
XERIAL_BLOCK_BYTES = 32 * 1024


def compress(codec: int, data) -> bytes:
    """Compress a records section with ``codec``; NONE returns it unchanged."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        # mtime=0 keeps the output deterministic, which tests and dedup like.
        return gzip.compress(data, mtime=0)
    if codec == SNAPPY:
        return _xerial_compress(data)
    if codec == LZ4:
        return lz4.frame.compress(data, block_linked=False, store_size=False)
    if codec == ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    raise InvalidRecordError(f"unknown compression codec {codec}")


def decompress(codec: int, data, max_bytes: int | None = None) -> bytes:
    """Undo :func:`compress`; any malformed input raises CorruptRecordError. With ``max_bytes``, input that
    would decompress to more raises InvalidRecordError once that much is out, so that a small hostile batch
    cannot make the broker allocate gigabytes (a decompression bomb)."""
    if codec == NONE:
        return bytes(data)
    try:
        if max_bytes is not None:
            return _decompress_bounded(codec, data, max_bytes)
        if codec == GZIP:
            return gzip.decompress(data)
        if codec == SNAPPY:
            return _snappy_decompress(data)
        if codec == LZ4:
            return lz4.frame.decompress(data)
        if codec == ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            return reader.read()
    except RecordError:
        raise
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError,
            zstandard.ZstdError, cramjam.DecompressionError) as exc:
        name = CODEC_NAMES[codec]
        raise CorruptRecordError(f"cannot decompress {name} records: {exc}") from None
    raise CorruptRecordError(f"unknown compression codec {codec}")


def _decompress_bounded(codec: int, data, max_bytes: int) -> bytes:
    def too_large():
        return InvalidRecordError(f"{CODEC_NAMES[codec]} records decompress to more than {max_bytes} bytes")

    if codec == GZIP:  # one member after another, as gzip.decompress reads them
        out = bytearray()
        rest = data
        while True:
            d = zlib.decompressobj(wbits=31)
            out += d.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise too_large()
            if not d.eof:
                raise CorruptRecordError("cannot decompress gzip records: the stream ends early")
            rest = d.unused_data
            if not rest:
                return bytes(out)
    if codec == SNAPPY:  # every raw block states its decompressed length first
        if _snappy_declared_length(data) > max_bytes:
            raise too_large()
        return _snappy_decompress(data)
    if codec == LZ4:
        if _lz4_frame_bound(data) <= max_bytes:  # its blocks cannot hold more: the fast one-shot decoder
            return lz4.frame.decompress(data)
        d = lz4.frame.LZ4FrameDecompressor()
        parts, total = [], 0
        while True:
            part = d.decompress(data if not parts else b"", max_length=_CHUNK_BYTES)
            total += len(part)
            if total > max_bytes:
                raise too_large()
            parts.append(part)
            if d.eof or d.needs_input:
                break
        if not d.eof:
            raise CorruptRecordError("cannot decompress lz4 records: the frame ends early")
        return b"".join(parts)
    if codec == ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        parts, total = [], 0
        while part := reader.read(_CHUNK_BYTES):
            total += len(part)
            if total > max_bytes:
                raise too_large()
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    raise CorruptRecordError(f"unknown compression codec {codec}")


_CHUNK_BYTES = 1 << 20
_LZ4_MAGIC = 0x184D2204
_LZ4_BLOCK_BYTES = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}


def _lz4_frame_bound(data) -> int:
    """The most an LZ4 frame can decompress to, from its header and block sizes alone (its blocks times the
    frame's maximum block size), without decompressing; a very large number when it does not parse (the
    decompressor then says what is wrong)."""
    view = memoryview(data)
    unknown = 1 << 62
    if len(view) < 7 or int.from_bytes(view[:4], "little") != _LZ4_MAGIC:
        return unknown
    flags, block_max = view[4], _LZ4_BLOCK_BYTES.get((view[5] >> 4) & 7)
    if block_max is None:
        return unknown
    pos = 6 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0) + 1
    checksum = 4 if flags & 0x10 else 0
    end, blocks = len(view), 0
    while pos + 4 <= end:
        size = int.from_bytes(view[pos:pos + 4], "little")
        if size == 0:
            return blocks * block_max
        pos += 4 + (size & 0x7FFFFFFF) + checksum
        blocks += 1
    return unknown


def _snappy_declared_length(data) -> int:
    """The decompressed length a snappy payload (xerial blocks, or one raw block) states."""
    view = memoryview(data)
    if bytes(view[:8]) != XERIAL_MAGIC:
        return _uvarint(view, 0)
    pos, end, total = _XERIAL_HEADER.size, len(view), 0
    while pos + 4 <= end:
        (n,) = _I32.unpack_from(view, pos)
        pos += 4
        if n < 0 or pos + n > end:
            break  # _snappy_decompress says what is wrong
        total += _uvarint(view, pos)
        pos += n
    return total


def _uvarint(view, pos: int) -> int:
    result = shift = 0
    for b in view[pos:pos + 5]:
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result
        shift += 7
    raise CorruptRecordError("snappy block without a valid length")


def _xerial_compress(data) -> bytes:
    view = memoryview(data)
    out = bytearray(_XERIAL_HEADER.pack(XERIAL_MAGIC, 1, 1))
    for start in range(0, len(view), XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[start:start + XERIAL_BLOCK_BYTES]))
        out += _I32.pack(len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data) -> bytes:
    view = memoryview(data)
    if bytes(view[:8]) != XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(view))
    if len(view) < _XERIAL_HEADER.size:
        raise CorruptRecordError("truncated xerial snappy header")
    pos = _XERIAL_HEADER.size
    out = bytearray()
    end = len(view)
    while pos < end:
        if pos + 4 > end:
            raise CorruptRecordError("truncated xerial snappy block length")
        (n,) = _I32.unpack_from(view, pos)
        pos += 4
        if n < 0 or pos + n > end:
            raise CorruptRecordError("xerial snappy block runs past the end")
        out += cramjam.snappy.decompress_raw(view[pos:pos + n])
        pos += n
    return bytes(out)
