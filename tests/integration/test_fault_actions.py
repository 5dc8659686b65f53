"""What each injected fault does on the wire (faults.py decides, the connection carries it out): an error
answer leaves through the same encode path as any other (response header v1 for a flexible version, v0 for
ApiVersions, KIP-511), a delayed request is handled late but answered in its place in the connection's order,
and a rule is used up after its count."""

from __future__ import annotations

import time

import pytest
from kbroker.client import BlockingConnection

from kbroker import Broker
from kbroker.errors import ErrorCode
from kbroker.wire.messages import api_versions, metadata

METADATA, API_VERSIONS = 3, 18


@pytest.fixture
def b():
    with Broker(port=0, storage="memory") as broker:
        yield broker


def test_error_fault_answers_a_flexible_version_in_its_shape(b):
    b.control.add_fault("Metadata", error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, topic="t")
    c = BlockingConnection(b.host, b.port)
    M = metadata.MetadataRequest
    req = M(topics=[M.MetadataRequestTopic(name="t")], allow_auto_topic_creation=False)
    resp = c.request(METADATA, 12, req)  # v12 is flexible: header v1, read to the last byte
    assert [(t.name, t.error_code) for t in resp.topics] == [("t", ErrorCode.TOPIC_AUTHORIZATION_FAILED)]
    resp = c.request(METADATA, 12, req)  # the rule is used up: handled as usual
    assert [(t.name, t.error_code) for t in resp.topics] == [("t", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert b.control.faults() == []


def test_error_fault_on_api_versions_keeps_the_v0_response_header(b):
    b.control.add_fault("ApiVersions", error_code=ErrorCode.UNSUPPORTED_VERSION)
    c = BlockingConnection(b.host, b.port)
    resp = c.request(API_VERSIONS, 3, api_versions.ApiVersionsRequest(client_software_name="raw",
                                                                       client_software_version="1"))
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_delayed_request_is_handled_late_and_answered_in_order(b):
    b.control.add_fault("Metadata", delay_ms=300)
    c = BlockingConnection(b.host, b.port)
    started = time.monotonic()
    # Both requests in one write: the second waits behind the delayed first, as Kafka answers a
    # connection's requests in the order they were sent.
    c.send_bytes(c.frame(METADATA, 12, metadata.MetadataRequest(topics=None)) +
                 c.frame(API_VERSIONS, 3, api_versions.ApiVersionsRequest(client_software_name="raw",
                                                                          client_software_version="1")))
    first = c.read_response(METADATA, 12)
    assert time.monotonic() - started >= 0.3
    assert [br.node_id for br in first.brokers] == [0]  # handled as usual, only late
    assert c.read_response(API_VERSIONS, 3).error_code == 0
