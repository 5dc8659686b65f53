"""A write to ``_schemas`` on condition that the log still ends where its writer has read it to.

Why. Confluent elects one registry leader and only it writes, so its ids and versions are computed from the
whole log. kbroker has a registry on every broker and no election between them; instead every write is a
compare-and-set on the partition's log end, decided by the partition's leader: the writer reads the log to
offset N, computes its records (the next id, the next version) from that state and sends them with the header
``kbroker.expected.offset: N`` on the first record. The leader appends them only if its log ends at N at that
moment; otherwise someone else wrote first, and the writer reads on and computes again. So the log is one
sequence of writes each made against everything before it, and two registries cannot give one id to two
schemas. (KIP-27, "Conditional Publish", proposed this for Kafka's Produce; it was never adopted, hence a
header Kafka and its clients ignore: a record without it is appended as any producer's.)

The check runs in the leader's produce path (handlers/produce.py) for the ``_schemas`` topic only, and in the
registry's own local append when its broker leads the partition; with no ``await`` between the check and the
append, no other write can come in between.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError, RecordValidationError
from ..records.batch import iter_batches
from ..records.errors import CorruptRecordError
from ..records.record import decode_records

SCHEMAS_TOPIC = "_schemas"
EXPECTED_OFFSET_HEADER = "kbroker.expected.offset"
CONFLICT_PREFIX = "kbroker.expected.offset mismatch"  # how the writer tells a lost race from another refusal


def expected_offset(records) -> int | None:
    """The offset the first record's ``kbroker.expected.offset`` header names, or None without one."""
    try:
        for pos, h in iter_batches(records):
            for rec in decode_records(records, pos, h):
                for name, value in rec.headers:
                    if name == EXPECTED_OFFSET_HEADER and value is not None:
                        return int(bytes(value))
                return None
    except CorruptRecordError as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    except ValueError:
        raise RecordValidationError(ErrorCode.INVALID_RECORD, [(0, f"{EXPECTED_OFFSET_HEADER} is not an offset")])
    return None


def check_expected_offset(partition, records) -> None:
    """Raise INVALID_RECORD (record 0 named, the message starting with ``CONFLICT_PREFIX``) when the records
    expect the log to end elsewhere than it does; nothing when they expect nothing."""
    expected = expected_offset(records)
    if expected is None:
        return
    end = partition.log_end_offset
    if expected != end:
        raise RecordValidationError(ErrorCode.INVALID_RECORD, [(0, f"{CONFLICT_PREFIX}: {expected}, log end {end}")],
                                    f"{CONFLICT_PREFIX}: the records expect the log to end at {expected}, "
                                    f"it ends at {end}")
