"""The console's files over plain HTTP: served from the package, without the token (they hold no data),
while everything with data still needs it; nothing outside the static directory is served."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from kbroker import Broker


def _get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture(scope="module")
def guarded():
    with Broker(port=0, storage="memory", control_port=0, control_token="t0ken") as b:
        yield b


def test_the_page_and_its_files_need_no_token(guarded):
    status, ctype, body = _get(guarded.control_url + "/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in body
    status, ctype, body = _get(guarded.control_url + "/static/app.js")
    assert status == 200 and ctype.startswith("text/javascript") and b"authHeaders" in body
    assert _get(guarded.control_url + "/static/style.css")[0] == 200


def test_data_needs_the_token(guarded):
    for path in ("/topics", "/metrics", "/events", "/clients", "/snapshot", "/static/../topics"):
        assert _get(guarded.control_url + path)[0] == 401, path
    status, ctype, body = _get(guarded.control_url + "/metrics", "t0ken")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4") and b"kafka_log_log" in body


def test_only_the_static_files_are_served(guarded):
    for path in ("/static/__init__.py", "/static/..%2F__init__.py", "/static/.hidden.js", "/static/nope.js"):
        assert _get(guarded.control_url + path, "t0ken")[0] == 404, path
