"""The records of a produced compressed batch, checked as Kafka's LogValidator checks them on append.

Kafka decompresses every compressed batch a client produces and reads its records without their keys and
values (``validateMessagesAndAssignOffsetsCompressed`` over ``skipKeyValueIterator``): a batch whose
records do not parse, or that holds more or fewer records than its header counts, is refused; so is one
whose records' offset deltas are not 0, 1, 2, ... (Kafka then rebuilds the batch from records it read
without keys and values, which fails). What Kafka 4.4 answers, measured on its jars with the batches of
tests/integration/test_compressed_validation.py:

- the payload does not decompress (any codec): UNKNOWN_SERVER_ERROR (its KafkaException "Failed to
  decompress"), no message;
- records that do not parse, a record count that is not the header's, bytes left over: INVALID_RECORD;
- offset deltas that are not the records' positions: UNKNOWN_SERVER_ERROR.

How it stays cheap. The payload is decompressed once by the codec's C library. The records are then walked
by their length prefixes in runs rather than one by one: records written by one producer have the same
length for long stretches (the same value size; the length changes when the offset delta or timestamp
delta needs one more varint byte), and when the record at ``pos`` takes ``size`` bytes, the next ``n``
records take ``size`` bytes each exactly when the bytes of its length prefix repeat every ``size`` bytes
``n`` times. That is counted in C: a strided slice of the payload (``data[pos::size]``) and ``lstrip`` of
the prefix byte. The first record of each run is parsed field by field (its key, value and headers must
fill its length exactly, its offset delta must be its position), and so is the last record of the batch.
A batch of 1,000 records of 100 bytes costs a handful of Python steps, not a thousand.

What it does not do that Kafka does: parse the fields of every record of a run (the records inside a run
have the right lengths, and the first and last have the right layout and offset deltas; a record in the
middle whose fields contradict its length, or whose offset delta is out of order, is stored as Kafka's
follower would store it); recompute the batch's maxTimestamp from its records (Kafka rewrites a header
that disagrees; kbroker keeps the producer's).
"""

from __future__ import annotations

from kbroker.records.batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader
from kbroker.records.compression import decompress
from kbroker.records.errors import CorruptRecordError, InvalidRecordError, RecordError
from kbroker.wire.primitives import DecodeError, read_varint, read_varlong

__all__ = ["UnreadableRecordsError", "check_compressed_records"]

# The smallest record body: attributes, timestamp delta, offset delta, key length, value length, header
# count, one byte each.
MIN_RECORD_BODY = 6
# The most records one strided slice looks at; a run that fills it is looked at again from its end.
MAX_RUN_WINDOW = 8192
# The most a produced batch may decompress to, Kafka's default socket.request.max.bytes: a client can make
# the broker hold no more for a compressed batch than it could for an uncompressed request. Kafka reads the
# records as a stream and sets no bound; a batch of valid records above it is refused here (INVALID_RECORD).
MAX_DECOMPRESSED_BYTES = 104857600


class UnreadableRecordsError(RecordError):
    """A compressed batch Kafka fails on with UNKNOWN_SERVER_ERROR: it does not decompress, or its records'
    offset deltas are not their positions."""


def check_compressed_records(buf, pos: int, header: BatchHeader) -> bytes:
    """Check the records of the compressed batch at ``pos`` of ``buf`` (its header and CRC already checked);
    returns them decompressed, for a caller that reads them further (the keys of a compacted topic).

    Raises UnreadableRecordsError or InvalidRecordError (see the module's docstring)."""
    view = memoryview(buf)
    section = view[pos + HEADER_SIZE:pos + header.batch_length + LOG_OVERHEAD]
    failure = too_large = None
    try:
        data = decompress(header.compression, section, MAX_DECOMPRESSED_BYTES)
    except InvalidRecordError as e:
        too_large = str(e)
    except CorruptRecordError as e:
        failure = str(e)  # the traceback (and a decompressor holding the section) goes with ``e``
    section.release()
    view.release()
    if too_large is not None:
        raise InvalidRecordError(too_large)
    if failure is not None:
        raise UnreadableRecordsError(failure)
    if type(data) is not bytes:
        data = bytes(data)
    try:
        _walk(data, header.record_count)
    except DecodeError as e:
        raise InvalidRecordError(f"Found invalid record structure: {e}") from None
    return data


def _walk(data, count: int) -> None:
    end = len(data)
    pos = 0
    index = 0  # of the record at pos
    last_pos = -1  # of the last record, once known
    while pos < end:
        if index >= count:
            raise InvalidRecordError(f"Incorrect declared batch size: records still remaining after the "
                                     f"{count} the header declares")
        b = data[pos]
        if b < 0x80:
            length, body = (b >> 1) ^ -(b & 1), pos + 1
        else:
            length, body = read_varint(data, pos)
        size = body - pos + length
        if length < MIN_RECORD_BODY or pos + size > end:
            raise InvalidRecordError(f"Invalid record size {length} at record {index}")
        _check_record(data, body, pos + size, index)
        # The records after it with the same length prefix: looked at 16 first (records of varying sizes
        # cost little more than one by one), then 8 times as many each time the run goes on.
        prefix = data[pos:body]
        run = 1
        window = 16
        while True:
            start = pos + run * size
            limit = min((end - start) // size, count - index - run, window)
            if limit <= 0:
                break
            n = _run_length(data, start, prefix, size, limit)
            run += n
            if n < limit:
                break
            window = min(window * 8, MAX_RUN_WINDOW)
        index += run
        pos += run * size
        last_pos = pos - size
    if index != count:
        raise InvalidRecordError(f"Incorrect declared batch size: {index} records, the header declares {count}")
    if count > 1:
        length, body = read_varint(data, last_pos)
        _check_record(data, body, body + length, count - 1)


def _run_length(data, pos: int, prefix, size: int, limit: int) -> int:
    """How many records from ``pos`` (at most ``limit``) start with the length prefix ``prefix``, hence take
    ``size`` bytes: the prefix's bytes repeated every ``size`` bytes, counted by lstrip in C."""
    stop = pos + size * limit
    run = limit
    for k in range(len(prefix)):
        column = data[pos + k:stop:size]
        run = min(run, limit - len(column.lstrip(prefix[k:k + 1])))
    return run


def _check_record(data: bytes, pos: int, end: int, index: int) -> None:
    """The fields of the record whose body is ``data[pos:end]`` fill it exactly, as Kafka's
    DefaultRecord.readPartiallyFrom requires; its offset delta is ``index``."""
    pos += 1  # attributes
    _timestamp_delta, pos = read_varlong(data, pos)
    offset_delta, pos = read_varint(data, pos)
    if offset_delta != index:
        raise UnreadableRecordsError(f"record {index} has offset delta {offset_delta}")
    for _field in range(2):  # key, value
        n, pos = read_varint(data, pos)
        if n < -1:
            raise InvalidRecordError(f"Invalid negative length {n} in record {index}")
        if n > 0:
            pos += n
    headers, pos = read_varint(data, pos)
    if headers < 0:
        raise InvalidRecordError(f"Found invalid number of record headers {headers}")
    for _header in range(headers):
        n, pos = read_varint(data, pos)
        if n < 0:
            raise InvalidRecordError(f"Invalid negative header key size {n}")
        pos += n
        n, pos = read_varint(data, pos)
        if n < -1:
            raise InvalidRecordError(f"Invalid negative header value size {n}")
        if n > 0:
            pos += n
        if pos > end:
            break
    if pos != end:
        raise InvalidRecordError(f"Invalid record size: record {index}'s fields end {pos - end} bytes after "
                                 f"its length says")
