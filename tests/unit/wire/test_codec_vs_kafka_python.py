"""Our codec against kafka-python's, byte for byte, wherever both know a version.

kafka-python 3 builds its codecs at import time from Kafka's own JSON message definitions (bundled in
kafka/protocol/schemas/resources), so it is an independent oracle for our schemas and our generator.
For every API both sides know and every version in both ranges, in three variants (see
test_codec_roundtrip: every value set, nullable fields null, strings and arrays empty):

- ours -> theirs: our encoding decodes with kafka-python into the same values, and kafka-python
  encodes those values back into exactly our bytes;
- theirs -> ours: the same values handed to kafka-python's classes encode into exactly our bytes,
  and our decoder reads them back into the values.

kafka-python's validVersions are Kafka 4's (Produce 3+, Fetch 4+, ...), but its classes accept every
version from 0; versions below its validVersions are compared too, since its field annotations keep the
old versions. Field names are Kafka's in snake_case on both sides, except where kafka-python renames a
field (ALIASES). kafka-python turns the authorized-operations int32s into a set of bit numbers
("bitfield"), a null uuid into None, and an ApiVersions response with an error into a v0 body; the
converters below undo that.
"""

from __future__ import annotations

import pytest

pytest.importorskip("kafka.protocol.api_message")

import kafka.protocol.admin  # noqa: E402,F401  (importing registers the classes)
import kafka.protocol.consumer  # noqa: E402,F401
import kafka.protocol.metadata  # noqa: E402,F401
import kafka.protocol.producer  # noqa: E402,F401
from kafka.protocol.api_message import ApiMessage  # noqa: E402

from kbroker.wire.primitives import ZERO_UUID  # noqa: E402

try:
    from test_codec_roundtrip import ALL_SIDES, VARIANTS, FieldSpec, SideSpec, build, encode, decode
except ImportError:  # tests/ imported as a package
    from tests.test_codec_roundtrip import ALL_SIDES, VARIANTS, FieldSpec, SideSpec, build, encode, decode


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _their_classes() -> dict[tuple[int, str], type]:
    out = {}
    for cls in _subclasses(ApiMessage):
        if getattr(cls, "_class_version", None) is not None:  # the per-version wrappers
            continue
        try:
            out[(cls.API_KEY, cls.type)] = cls
        except (AttributeError, TypeError):
            continue
    return out


THEIRS = _their_classes()

# The APIs the brief names; each must be covered, so a rename on either side fails loudly.
REQUIRED = {
    "ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets", "FindCoordinator", "JoinGroup",
    "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch", "CreateTopics",
    "DeleteTopics", "DescribeGroups", "ListGroups", "InitProducerId", "DescribeConfigs",
}

# (API, side, our field name) -> kafka-python's name, where kafka-python's json_patch renames a field.
ALIASES = {
    ("Metadata", "response", "cluster_authorized_operations"): "authorized_operations",
    ("Metadata", "response", "topic_authorized_operations"): "authorized_operations",
    ("DescribeCluster", "response", "cluster_authorized_operations"): "authorized_operations",
}

# Cases where kafka-python's encoding is wrong: (API, side, version, variant) -> reason.
# None so far; a case goes here only with the kafka-python bug explained.
KAFKA_PYTHON_BUGS: dict[tuple[str, str, int, str], str] = {}


def _cases():
    cases = []
    for side in ALL_SIDES:
        tcls = THEIRS.get((side.api_key, side.side))
        if tcls is None:
            continue
        hi = min(side.versions[1], tcls.max_version)
        for v in range(side.versions[0], hi + 1):
            cases.append(pytest.param(side, tcls, v, id=f"{side.api_name}{side.side.capitalize()}-v{v}"))
    return cases


CASES = _cases()


# -- converting between our objects and kafka-python's ----------------------------------------------

def _their_field(side: SideSpec, tstruct, f: FieldSpec):
    name = ALIASES.get((side.api_name, side.side, f.name), f.name.rstrip("_"))
    return tstruct.fields[name]


def _is_bitfield(tf) -> bool:
    return getattr(tf, "_type_str", None) == "bitfield"


def _bits_to_set(v: int) -> set[int]:
    u = v & 0xFFFFFFFF
    return {b for b in range(32) if u >> b & 1}


def _set_to_bits(s) -> int:
    if s is None:  # kafka-python's reading of "bit 31 alone", Kafka's "not requested"
        s = {31}
    u = 0
    for b in s:
        u |= 1 << b
    return u - (1 << 32) if u & (1 << 31) else u


def to_theirs(side: SideSpec, tstruct, obj, fields: list[FieldSpec], v: int, factory=None):
    """Our message ``obj`` as an instance of kafka-python's data class for ``tstruct`` at version ``v``
    (``factory``: the top-level message class, whose struct only holds a weak proxy to it)."""
    kwargs = {}
    for f in fields:
        if not f.present(v):
            continue
        tf = _their_field(side, tstruct, f)
        val = getattr(obj, f.name)
        if val is None:
            pass
        elif f.is_struct and f.is_array:
            val = [to_theirs(side, tf, e, f.fields, v) for e in val]
        elif f.is_struct:
            val = to_theirs(side, tf, val, f.fields, v)
        elif _is_bitfield(tf):
            val = _bits_to_set(val)
        elif f.type in ("bytes", "records"):
            val = bytes(val)
        kwargs[tf.name] = val
    return (factory or tstruct.data_class)(version=v, **kwargs)


def from_theirs(side: SideSpec, tstruct, tobj, cls, fields: list[FieldSpec], v: int):
    """kafka-python's decoded ``tobj`` as our class ``cls``; fields absent in ``v`` get our defaults."""
    o = cls()
    for f in fields:
        if not f.present(v):
            setattr(o, f.name, f.default())
            continue
        tf = _their_field(side, tstruct, f)
        val = getattr(tobj, tf.name)
        if f.is_struct and val is not None:
            sub = getattr(side.cls, f.type)
            if f.is_array:
                val = [from_theirs(side, tf, e, sub, f.fields, v) for e in val]
            else:
                val = from_theirs(side, tf, val, sub, f.fields, v)
        elif _is_bitfield(tf):
            val = _set_to_bits(val)
        elif f.type == "uuid" and not f.is_array and val is None:
            val = ZERO_UUID  # kafka-python reads the all-zero uuid as None
        elif f.type == "uuid" and f.is_array and val is not None:
            val = [ZERO_UUID if u is None else u for u in val]
        elif f.type in ("bytes", "records") and val is not None:
            val = bytes(val)
        setattr(o, f.name, val)
    return o


def their_decode(tcls, data: bytes, v: int):
    if tcls.__name__ == "ApiVersionsResponse":
        # kafka-python decodes any ApiVersions response with a non-zero error code as v0 (what a broker
        # sends for an unsupported request version, KIP-511); these bodies are well-formed at ``v``.
        return ApiMessage.decode.__func__(tcls, data, version=v)
    return tcls.decode(data, version=v)


def their_encode(tobj, v: int) -> bytes:
    # kafka-python's decoder makes objects with object.__new__, leaving the _header slot unset, which
    # encode(version=...) reads: a freshly decoded object cannot be re-encoded without this.
    if not hasattr(tobj, "_header"):
        tobj._header = None
    return bytes(tobj.encode(version=v))


# -- the tests ---------------------------------------------------------------------------------------

def test_the_required_apis_are_compared():
    compared = {c.values[0].api_name for c in CASES}
    assert REQUIRED <= compared, REQUIRED - compared
    for side in ALL_SIDES:
        if side.api_name in REQUIRED:
            assert (side.api_key, side.side) in THEIRS


@pytest.mark.parametrize("side, tcls, v", CASES)
def test_ours_decode_with_kafka_python_and_re_encode_identically(side, tcls, v):
    for variant in VARIANTS:
        if (side.api_name, side.side, v, variant) in KAFKA_PYTHON_BUGS:
            continue
        ours = encode(side, v, build(side, v, variant))
        tobj = their_decode(tcls, ours, v)
        got = from_theirs(side, tcls._struct, tobj, side.cls, side.fields, v)
        assert got == build(side, v, variant, expected=True), variant
        assert their_encode(tobj, v) == ours, variant


@pytest.mark.parametrize("side, tcls, v", CASES)
def test_kafka_python_encodings_decode_with_ours(side, tcls, v):
    for variant in VARIANTS:
        reason = KAFKA_PYTHON_BUGS.get((side.api_name, side.side, v, variant))
        if reason:
            pytest.skip(reason)
        want = build(side, v, variant, expected=True)
        theirs = their_encode(to_theirs(side, tcls._struct, want, side.fields, v, tcls), v)
        assert theirs == encode(side, v, want), variant
        got, end = decode(side, v, theirs)
        assert end == len(theirs)
        assert got == want, variant
