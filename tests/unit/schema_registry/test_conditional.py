"""The ``kbroker.expected.offset`` header of a ``_schemas`` write (kbroker/schema_registry/conditional.py): the
batch is appended only where the log ends at the offset its first record names."""

from types import SimpleNamespace

import pytest

from kbroker.errors import ErrorCode, KafkaError, RecordValidationError
from kbroker.records.builder import build_batch
from kbroker.records.record import Record
from kbroker.schema_registry.conditional import CONFLICT_PREFIX, check_expected_offset, expected_offset


def _batch(*headers_per_record):
    return build_batch([Record(i, 0, b"k", b"v", headers) for i, headers in enumerate(headers_per_record)],
                       base_offset=0)


def test_the_first_records_header_is_the_expected_offset():
    assert expected_offset(_batch((("kbroker.expected.offset", b"42"),), ())) == 42
    assert expected_offset(_batch((("other", b"1"),), (("kbroker.expected.offset", b"7"),))) is None  # first only
    assert expected_offset(_batch((), ())) is None


def test_a_batch_expecting_the_log_end_passes_and_any_other_is_refused_as_invalid_record():
    log_end_5 = SimpleNamespace(log_end_offset=5)
    check_expected_offset(log_end_5, _batch((("kbroker.expected.offset", b"5"),)))
    check_expected_offset(log_end_5, _batch(()))  # no condition: appended as any producer's
    for stale in (b"4", b"6", b"0"):
        with pytest.raises(RecordValidationError) as e:
            check_expected_offset(log_end_5, _batch((("kbroker.expected.offset", stale),)))
        assert e.value.code == ErrorCode.INVALID_RECORD and e.value.message.startswith(CONFLICT_PREFIX)
        assert e.value.record_errors[0][0] == 0


def test_a_header_that_is_not_an_offset_is_refused_and_so_is_a_corrupt_batch():
    with pytest.raises(RecordValidationError) as e:
        check_expected_offset(SimpleNamespace(log_end_offset=0), _batch((("kbroker.expected.offset", b"x"),)))
    assert not e.value.message.startswith(CONFLICT_PREFIX)  # the registry does not retry it
    corrupt = bytearray(_batch((("kbroker.expected.offset", b"0"),)))
    corrupt[-20:] = b"\xff" * 20
    with pytest.raises(KafkaError):
        check_expected_offset(SimpleNamespace(log_end_offset=0), bytes(corrupt))
