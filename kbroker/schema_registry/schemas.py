"""The schema types and the compatibility levels, over the per-type modules."""

from __future__ import annotations

from . import avro, json_schema, protobuf

TYPES = ("AVRO", "JSON", "PROTOBUF")
_PARSERS = {"AVRO": avro.parse, "JSON": json_schema.parse, "PROTOBUF": protobuf.parse}
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


def parse(schema_type: str, schema_str: str, deps: list[tuple[str, str]]):
    """Raises ValueError for a schema its type's parser refuses."""
    return _PARSERS[schema_type](schema_str, deps)


def _one_way(reader, writer, new_is_reader: bool) -> list[str]:
    if reader.schema_type == "AVRO":
        return avro.incompatibilities(reader, writer, new_is_reader)
    if reader.schema_type == "JSON":  # Confluent's diff: original = the writer, update = the reader
        return json_schema.incompatibilities(writer, reader)
    return protobuf.incompatibilities(writer, reader)


def check(level: str, new, previous: list[tuple[int, object]]) -> list[str]:
    """Why ``new`` may not follow ``previous`` (oldest first, (version, parsed)) under ``level``; [] if it
    may. Non-transitive levels look at the latest version only."""
    if level == "NONE" or not previous:
        return []
    against = previous if level.endswith("_TRANSITIVE") else previous[-1:]
    base = level.removesuffix("_TRANSITIVE")
    out: list[str] = []
    for version, old in reversed(against):
        if old.schema_type != new.schema_type:
            msgs = [f"{{errorType:'TYPE_MISMATCH', description:'Incompatible schema type: {old.schema_type} "
                    f"to {new.schema_type}'}}"]
        else:
            msgs = []
            if base in ("BACKWARD", "FULL"):
                msgs += _one_way(new, old, True)
            if base in ("FORWARD", "FULL"):
                msgs += _one_way(old, new, False)
        if msgs:
            out += msgs + [f"{{oldSchemaVersion: {version}}}", f"{{oldSchema: '{_text(old)}'}}",
                           f"{{compatibility: '{level}'}}"]
    return out


def _text(parsed) -> str:
    return getattr(parsed, "canonical", "") if parsed.schema_type != "PROTOBUF" else parsed.schema_str
