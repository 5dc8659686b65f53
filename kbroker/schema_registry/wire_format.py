"""The serializers' wire format, as the broker sees it: a magic byte 0, the schema id (4 bytes, big
endian), then the payload (for Protobuf, message indexes first).

``validate_batches`` is the broker-side schema validation of Confluent Server's topic configs
``confluent.key.schema.validation`` / ``confluent.value.schema.validation``: a produced batch whose keys
(or values) do not all start with a registered schema id is refused whole with INVALID_RECORD. Only the
header is checked (as Confluent does): the id is registered, not that the payload matches the schema.
``decode`` turns a key or value carrying a registered id into JSON for the control plane.
"""

from __future__ import annotations

import struct

from ..errors import ErrorCode, KafkaError, RecordValidationError
from ..records.batch import iter_batches
from ..records.errors import CorruptRecordError
from ..records.record import decode_records

MAGIC = 0
_HEADER = struct.Struct(">bI")
KEY_CONFIG = "confluent.key.schema.validation"
VALUE_CONFIG = "confluent.value.schema.validation"


def schema_id(data) -> int | None:
    if data is None or len(data) < _HEADER.size or data[0] != MAGIC:
        return None
    return _HEADER.unpack_from(data, 0)[1]


def validate_batches(registry, topic, records) -> None:
    """Raise INVALID_RECORD unless every key/value the topic's configs ask about carries a registered id."""
    keys = topic.config(KEY_CONFIG) == "true"
    values = topic.config(VALUE_CONFIG) == "true"
    if not (keys or values) or not records:
        return  # nothing to check (no records: the append refuses them)
    refused: list[tuple[int, str]] = []  # (index of the record in its batch, why): KIP-467's record errors
    try:
        for pos, h in iter_batches(records):
            for index, rec in enumerate(decode_records(records, pos, h)):
                for wanted, data, what in ((keys, rec.key, "key"), (values, rec.value, "value")):
                    if not wanted:
                        continue
                    sid = schema_id(data)
                    if sid is None or registry is None or registry.parsed_by_id(sid) is None:
                        why = ("no schema registry is running" if registry is None else
                               "no schema id" if sid is None else f"schema id {sid} is not registered")
                        refused.append((index, f"Log record {what} of topic {topic.name} does not carry a "
                                               f"registered schema id ({why})"))
    except CorruptRecordError as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    if refused:
        raise RecordValidationError(ErrorCode.INVALID_RECORD, refused)


def decode(registry, data) -> dict | None:
    """``{"schema_id", "schema_type", "json"}`` for a key or value in the wire format with a registered id."""
    sid = schema_id(data)
    if sid is None or registry is None:
        return None
    parsed = registry.parsed_by_id(sid)
    if parsed is None:
        return None
    try:
        value = parsed.decode(bytes(data[_HEADER.size:]))
    except Exception:  # not what the schema describes: shown raw only
        return None
    return {"schema_id": sid, "schema_type": parsed.schema_type, "json": value}
