"""A small blocking Kafka client built on kbroker's own codec, for the pytest plugin and the command-line
tools. It speaks to any Kafka-compatible broker: versions are negotiated with ApiVersions, taking for each
API the highest version both sides know.
"""

from __future__ import annotations

import socket
import struct

from .errors import ErrorCode
from .wire.header import RequestHeader, encode_request_header, read_response_header
from .wire.messages import BY_KEY, api_versions, create_topics, delete_topics, metadata


class AdminError(Exception):
    def __init__(self, code: int, message: str | None = None):
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{name}: {message}" if message else name)
        self.code = code


class AdminConnection:
    def __init__(self, bootstrap: str, client_id: str = "kbroker-admin", timeout_s: float = 30.0):
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
        self.client_id = client_id
        self.correlation_id = 0
        self.versions: dict[int, int] = {}
        self._negotiate()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing ------------------------------------------------------------

    def _negotiate(self) -> None:
        resp = self._request(18, 0, api_versions.ApiVersionsRequest())
        if resp.error_code:
            raise AdminError(resp.error_code, "ApiVersions")
        for k in resp.api_keys:
            ours = BY_KEY.get(k.api_key)
            if ours is None:
                continue
            lo, hi = ours.REQUEST_VERSIONS
            v = min(hi, k.max_version)
            if v >= max(lo, k.min_version):
                self.versions[k.api_key] = v

    def version(self, api_key: int, at_most: int | None = None) -> int:
        if api_key not in self.versions:
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, f"the broker does not serve API {api_key}")
        v = self.versions[api_key]
        return min(v, at_most) if at_most is not None else v

    def _request(self, api_key: int, version: int, request):
        api = BY_KEY[api_key]
        self.correlation_id += 1
        flex_req = api.REQUEST_FLEXIBLE_FROM is not None and version >= api.REQUEST_FLEXIBLE_FROM
        out = bytearray()
        encode_request_header(out, RequestHeader(api_key, version, self.correlation_id, self.client_id), flex_req)
        api.REQUEST_ENCODERS[version](request, out)
        self.sock.sendall(struct.pack(">i", len(out)) + out)
        (size,) = struct.unpack(">i", self._read(4))
        frame = self._read(size)
        flex_resp = api_key != 18 and api.RESPONSE_FLEXIBLE_FROM is not None and version >= api.RESPONSE_FLEXIBLE_FROM
        cid, pos = read_response_header(frame, flex_resp)
        if cid != self.correlation_id:
            raise ConnectionError(f"response to correlation id {cid}, expected {self.correlation_id}")
        obj, _ = api.RESPONSE_DECODERS[version](memoryview(frame), pos)
        return obj

    def request(self, api_key: int, request, at_most: int | None = None):
        v = self.version(api_key, at_most)
        return v, self._request(api_key, v, request)

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    # -- operations ----------------------------------------------------------

    def metadata(self, topics: list[str] | None = None):
        req = metadata.MetadataRequest(
            topics=None if topics is None else [metadata.MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
        )
        return self.request(3, req)[1]

    def list_topics(self) -> list[str]:
        return sorted(t.name for t in self.metadata().topics if t.error_code == 0)

    def create_topic(self, name: str, partitions: int = -1, config: dict[str, str] | None = None,
                     replication_factor: int = -1) -> None:
        C = create_topics.CreateTopicsRequest
        req = C(topics=[C.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=replication_factor,
            configs=[C.CreatableTopicConfig(name=k, value=v) for k, v in (config or {}).items()],
        )], timeout_ms=30000)
        _, resp = self.request(19, req)
        r = resp.topics[0]
        if r.error_code:
            raise AdminError(r.error_code, r.error_message)

    def delete_topic(self, name: str) -> None:
        v = self.version(20)
        D = delete_topics.DeleteTopicsRequest
        if v >= 6:
            req = D(topics=[D.DeleteTopicState(name=name)], timeout_ms=30000)
        else:
            req = D(topic_names=[name], timeout_ms=30000)
        resp = self._request(20, v, req)
        r = resp.responses[0]
        if r.error_code:
            raise AdminError(r.error_code, r.error_message)
