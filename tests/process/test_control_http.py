"""The HTTP control plane, driven with plain HTTP requests against a kbroker process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from support.brokerproc import BrokerProcess
from kbroker.client import BlockingClient
from kbroker.records.builder import simple_batch
from kbroker.wire.messages import produce
from kbroker.client import BlockingConnection
from support.topics import auto_create


def _http(method: str, url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def proc(tmp_path):
    b = BrokerProcess(tmp_path / "data", "--control-port", "0", "--storage", "memory")
    b.start()
    b.control_url = b.wait_for_stderr(r"control plane on (http://\S+)").group(1)
    yield b
    b.kill()


def _produce(b, topic: str, values: list[bytes], keys=None):
    c = BlockingConnection(b.host, b.port)
    auto_create(c, topic)
    P = produce.ProduceRequest
    req = P(acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(name=topic, partition_data=[
        P.PartitionProduceData(index=0, records=bytes(simple_batch(*values, keys=keys)))])])
    resp = c.request(0, 9, req)
    c.close()
    return resp.responses[0].partition_responses[0]


def test_health_and_unknown_route(proc):
    assert _http("GET", proc.control_url + "/health")[0] == 200
    assert _http("GET", proc.control_url + "/nope")[0] == 404


def test_faults_error_then_recovery(proc):
    url = proc.control_url
    status, rule = _http("POST", url + "/faults", {"api": "Produce", "error_code": 6, "count": 2, "topic": "f"})
    assert status == 200 and rule["api_key"] == 0
    assert _http("GET", url + "/faults")[1][0]["count"] == 2
    assert _produce(proc, "f", [b"a"]).error_code == 6  # NOT_LEADER_OR_FOLLOWER
    assert _produce(proc, "other", [b"a"]).error_code == 0  # another topic does not match
    assert _produce(proc, "f", [b"a"]).error_code == 6
    assert _http("GET", url + "/faults")[1] == []
    ok = _produce(proc, "f", [b"a"])
    assert ok.error_code == 0 and ok.base_offset == 0  # the refused attempts wrote nothing


def test_fault_by_api_key_and_clear(proc):
    url = proc.control_url
    _http("POST", url + "/faults", {"api": 0, "error_code": 7, "count": 5})
    assert _http("DELETE", url + "/faults")[0] == 200
    assert _produce(proc, "g", [b"a"]).error_code == 0


def test_disconnect_fault(proc):
    _http("POST", proc.control_url + "/faults", {"api": "Metadata", "disconnect": True})
    c = BlockingConnection(proc.host, proc.port)
    from kbroker.wire.messages import metadata

    c.send_bytes(c.frame(3, 1, metadata.MetadataRequest(topics=None)))
    assert c.read_frame() is None  # closed instead of answered
    with BlockingClient(proc.bootstrap_servers) as admin:
        assert admin.list_topics() == []  # the next one is answered


def test_bad_fault_specs(proc):
    url = proc.control_url
    assert _http("POST", url + "/faults", {"api": "NoSuchApi", "error_code": 1})[0] == 400
    assert _http("POST", url + "/faults", {"api": "Produce"})[0] == 400
    assert _http("POST", url + "/faults", {"api": "Produce", "error_code": 1, "delay_ms": 5})[0] == 400


def test_records_are_decoded(proc):
    _produce(proc, "r", [b"hello", b"\xff\xfe"], keys=[b"k1", None])
    status, recs = _http("GET", proc.control_url + "/topics/r/records?partition=0&offset=0&limit=10")
    assert status == 200
    assert [r["offset"] for r in recs] == [0, 1]
    assert recs[0]["key"] == {"encoding": "utf-8", "data": "k1"}
    assert recs[0]["value"] == {"encoding": "utf-8", "data": "hello"}
    assert recs[1]["key"] is None and recs[1]["value"] == {"encoding": "base64", "data": "//4="}
    assert _http("GET", proc.control_url + "/topics/missing/records")[0] == 404


def test_requests_log(proc):
    with BlockingClient(proc.bootstrap_servers, client_id="inspect-me") as admin:
        admin.list_topics()
    status, reqs = _http("GET", proc.control_url + "/requests?limit=10")
    assert status == 200
    assert any(r["client_id"] == "inspect-me" and r["api"] == "Metadata" for r in reqs)


def test_wait_for_records_and_timeout(proc):
    url = proc.control_url
    assert _http("POST", url + "/wait", {"topic": "w", "records": 1, "timeout_ms": 50})[0] == 408
    _produce(proc, "w", [b"x", b"y"])
    assert _http("POST", url + "/wait", {"topic": "w", "records": 2, "timeout_ms": 5000})[0] == 200


def test_reset_deletes_topics(proc):
    _produce(proc, "z", [b"x"])
    assert _http("POST", proc.control_url + "/reset")[0] == 200
    with BlockingClient(proc.bootstrap_servers) as admin:
        assert admin.list_topics() == []


def test_drop_response_fault_applies_the_request(proc):
    _http("POST", proc.control_url + "/faults", {"api": "Produce", "drop_response": True})
    c = BlockingConnection(proc.host, proc.port)
    auto_create(c, "d")
    P = produce.ProduceRequest
    req = P(acks=1, timeout_ms=1000, topic_data=[P.TopicProduceData(name="d", partition_data=[
        P.PartitionProduceData(index=0, records=bytes(simple_batch(b"x")))])])
    c.send_bytes(c.frame(0, 9, req))
    assert c.read_frame() is None  # no answer, connection closed
    status, recs = _http("GET", proc.control_url + "/topics/d/records")
    assert status == 200 and len(recs) == 1  # but the record was written


# -- safety (issue 16): what a web page, a DNS-rebinding page or another user of the machine can send ------

def _raw_http(url: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    """The status of a request sent byte for byte (urllib would add its own headers)."""
    import socket

    u = urllib.parse.urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def _topic_count(proc) -> int:
    with BlockingClient(proc.bootstrap_servers) as admin:
        return len(admin.list_topics())


def test_cross_site_and_rebinding_requests_are_refused(proc):
    url = proc.control_url
    host = urllib.parse.urlsplit(url).netloc
    _produce(proc, "keep", [b"x"])
    json_ct = {"Content-Type": "application/json"}
    # A page on another site POSTing to /reset: its browser sends Origin / Sec-Fetch-Site.
    assert _raw_http(url, "POST", "/reset", {"Host": host, "Origin": "https://evil.example", **json_ct},
                     b"{}") == 403
    assert _raw_http(url, "POST", "/reset", {"Host": host, "Sec-Fetch-Site": "cross-site", **json_ct}, b"{}") == 403
    # An HTML form can only send form or text bodies: a state change needs JSON.
    assert _raw_http(url, "POST", "/reset", {"Host": host, "Content-Type": "application/x-www-form-urlencoded"},
                     b"a=b") == 415
    assert _raw_http(url, "POST", "/reset", {"Host": host, "Content-Type": "text/plain"}, b"{}") == 415
    # DNS rebinding: the page's own name, resolved to 127.0.0.1, arrives as Host.
    port = urllib.parse.urlsplit(url).port
    assert _raw_http(url, "POST", "/reset", {"Host": f"rebind.evil.example:{port}", **json_ct}, b"{}") == 421
    assert _raw_http(url, "GET", "/topics/keep/records", {"Host": f"rebind.evil.example:{port}"}) == 421
    assert _raw_http(url, "GET", "/health", {}) == 421  # no Host at all
    assert _raw_http(url, "GET", "/reset", {"Host": host}) == 405  # state changes are POST
    assert _topic_count(proc) == 1  # nothing was reset
    # The same origin, and localhost by name, are served.
    assert _raw_http(url, "POST", "/faults", {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}",
                                              **json_ct}, b'{"api": "Produce", "error_code": 6}') == 200
    assert _raw_http(url, "DELETE", "/faults", {"Host": host}) == 200
    assert _raw_http(url, "POST", "/reset", {"Host": host, **json_ct}) == 200
    assert _topic_count(proc) == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_readme_curl_commands_work_on_loopback(proc):
    port = urllib.parse.urlsplit(proc.control_url).port
    base = f"localhost:{port}"

    def curl(*args) -> tuple[int, str]:
        r = subprocess.run(["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", *args],
                           capture_output=True, text=True, timeout=30)
        return int(r.stdout), r.stderr

    assert curl("--json", '{"api": "Produce", "error_code": 6, "count": 2, "topic": "t"}', f"{base}/faults")[0] == 200
    assert curl(f"{base}/faults")[0] == 200
    assert curl("-X", "DELETE", f"{base}/faults")[0] == 200
    assert curl("--json", '{"topic": "t", "records": 1, "timeout_ms": 50}', f"{base}/wait")[0] == 408
    assert curl("--json", "{}", f"{base}/reset")[0] == 200
    assert curl(f"{base}/health")[0] == 200


def test_token_is_required_when_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("KBROKER_TEST_CONTROL_TOKEN", "s3cret-token")
    b = BrokerProcess(tmp_path / "data", "--control-port", "0", "--storage", "memory",
                      "--control-token", "env:KBROKER_TEST_CONTROL_TOKEN")
    b.start()
    try:
        url = b.wait_for_stderr(r"control plane on (http://\S+)").group(1)
        host = urllib.parse.urlsplit(url).netloc
        assert _raw_http(url, "GET", "/health", {"Host": host}) == 401
        assert _raw_http(url, "GET", "/health", {"Host": host, "Authorization": "Bearer wrong"}) == 401
        assert _raw_http(url, "GET", "/health", {"Host": host, "Authorization": "Bearer s3cret-token"}) == 200
        assert "s3cret-token" not in "".join(b.stderr_lines)
    finally:
        b.kill()


def test_beyond_loopback_needs_a_token_and_is_warned_about(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kbroker", "serve", "--port", "0", "--storage", "memory",
                        "--control-port", "0", "--control-host", "0.0.0.0"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "only with a token" in r.stderr
    token = tmp_path / "token"
    token.write_text("file-token\n")
    b = BrokerProcess(tmp_path / "data", "--control-port", "0", "--storage", "memory", "--control-host", "0.0.0.0",
                      "--control-token", f"file:{token}")
    b.start()
    try:
        b.wait_for_stderr(r"control plane listens on 0\.0\.0\.0:\d+, beyond loopback")
        port = int(b.wait_for_stderr(r"control plane on http://\S+:(\d+)").group(1))
        url = f"http://127.0.0.1:{port}"
        assert _raw_http(url, "GET", "/health", {"Host": f"127.0.0.1:{port}",
                                                 "Authorization": "Bearer file-token"}) == 200
    finally:
        b.kill()
