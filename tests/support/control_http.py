"""A JSON call to kbroker's HTTP control plane: (status, decoded body), errors included."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def control_call(base_url: str, method: str, path: str, body=None, timeout_s: float = 30) -> tuple[int, object]:
    req = urllib.request.Request(base_url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
