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

from kbroker.records.errors import CorruptRecordError, InvalidRecordError

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


def decompress(codec: int, data) -> bytes:
    """Undo :func:`compress`; any malformed input raises CorruptRecordError."""
    if codec == NONE:
        return bytes(data)
    try:
        if codec == GZIP:
            return gzip.decompress(data)
        if codec == SNAPPY:
            return _snappy_decompress(data)
        if codec == LZ4:
            return lz4.frame.decompress(data)
        if codec == ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            return reader.read()
    except CorruptRecordError:
        raise
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError,
            zstandard.ZstdError, cramjam.DecompressionError) as exc:
        name = CODEC_NAMES[codec]
        raise CorruptRecordError(f"cannot decompress {name} records: {exc}") from None
    raise CorruptRecordError(f"unknown compression codec {codec}")


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
