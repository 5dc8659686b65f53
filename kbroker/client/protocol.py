"""The client's side of the Kafka protocol, without I/O.

A ``ClientProtocol`` turns (API key, version, request object) into a request frame, remembers the request as
in flight under its correlation id, and turns the response frames it is fed back into response objects. Kafka
answers the requests of one connection in the order they were sent (a broker processes one request per
connection at a time), so the in-flight requests form a queue and the oldest one is the one answered next;
an answer with any other correlation id means the connection is out of step and is a ``ProtocolError``.
Produce with ``acks=0`` gets no answer and is never put in flight.

Headers follow the version's flexibility (KIP-482): request header v2 for a flexible request version, else v1;
response header v1 for a flexible response version, else v0, except ApiVersions, whose response header is
always v0 (KIP-511). The async connection (``aio.py``) and the blocking one (``blocking.py``) are thin shells
around this class that only move bytes.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Generator

from .. import __version__
from ..errors import ErrorCode
from ..wire.header import API_VERSIONS_KEY, RequestHeader, encode_request_header, read_response_header
from ..wire.messages import BY_KEY, api_versions
from ..wire.primitives import DecodeError

_SIZE = struct.Struct(">i")

# A response frame larger than this is taken for a desynchronised stream rather than buffered. Kafka's
# consumer has no such bound; 1 GiB is well above fetch.max.bytes (50 MiB) and Kafka's
# socket.request.max.bytes (100 MiB).
MAX_RESPONSE_BYTES = 1 << 30

SOFTWARE_NAME = "kbroker-client"


class ClientError(Exception):
    """The broker answered with an error code; ``name`` is Kafka's name for it."""

    def __init__(self, code: int, message: str | None = None):
        try:
            self.name = ErrorCode(code).name
        except ValueError:
            self.name = f"UNKNOWN_ERROR_CODE_{code}"
        super().__init__(f"{self.name}: {message}" if message else self.name)
        self.code = code
        self.message = message


class ProtocolError(ConnectionError):
    """The broker's bytes do not fit what was asked (wrong correlation id, bad size, undecodable body).
    The connection cannot be trusted any more and is closed."""


def check(code: int, message: str | None = None) -> None:
    """Raise ``ClientError`` unless ``code`` is NONE."""
    if code:
        raise ClientError(code, message)


def request_header_flexible(api_key: int, version: int) -> bool:
    api = BY_KEY[api_key]
    return api.REQUEST_FLEXIBLE_FROM is not None and version >= api.REQUEST_FLEXIBLE_FROM


def response_header_flexible(api_key: int, version: int) -> bool:
    if api_key == API_VERSIONS_KEY:
        return False
    api = BY_KEY[api_key]
    return api.RESPONSE_FLEXIBLE_FROM is not None and version >= api.RESPONSE_FLEXIBLE_FROM


def expects_response(api_key: int, request) -> bool:
    return not (api_key == 0 and getattr(request, "acks", 1) == 0)


def negotiate(response) -> dict[int, int]:
    """Per API both sides know, the highest version both sides serve (what Java's NetworkClient and
    librdkafka do with an ApiVersions answer). APIs without a common version are left out."""
    versions: dict[int, int] = {}
    for k in response.api_keys:
        if k.api_key not in BY_KEY:
            continue
        lo, hi = BY_KEY[k.api_key].REQUEST_VERSIONS
        v = min(hi, k.max_version)
        if v >= max(lo, k.min_version):
            versions[k.api_key] = v
    return versions


def api_versions_request(version: int, software_name: str, software_version: str):
    return api_versions.ApiVersionsRequest(client_software_name=software_name,
                                           client_software_version=software_version)


def api_versions_fallback(response) -> int | None:
    """After UNSUPPORTED_VERSION, the ApiVersions version to try next: the highest the broker lists
    for ApiVersions itself (Kafka answers an unknown version with a v0 body naming its range)."""
    for k in response.api_keys:
        if k.api_key == API_VERSIONS_KEY:
            return min(k.max_version, BY_KEY[API_VERSIONS_KEY].REQUEST_VERSIONS[1])
    return None


def negotiation(version: int | None = None) -> Generator[tuple[int, object], object, dict[int, int]]:
    """ApiVersions from our highest version (or ``version``) down to what the broker names after
    UNSUPPORTED_VERSION, without I/O: a generator that yields ``(version, request)`` to send, is sent each
    response, and returns the negotiated versions (``negotiate``). Both connection shells drive it."""
    v = BY_KEY[API_VERSIONS_KEY].REQUEST_VERSIONS[1] if version is None else version
    for _attempt in range(3):
        resp = yield v, api_versions_request(v, SOFTWARE_NAME, __version__)
        if resp.error_code == ErrorCode.UNSUPPORTED_VERSION and v > 0:
            nxt = api_versions_fallback(resp)
            v = v - 1 if nxt is None or nxt >= v else nxt
            continue
        check(resp.error_code, "ApiVersions")
        return negotiate(resp)
    raise ClientError(ErrorCode.UNSUPPORTED_VERSION, "no ApiVersions version in common")


def pick_version(versions: dict[int, int], api_key: int, at_most: int | None = None) -> int:
    """The version to use for ``api_key``: the negotiated one, capped at ``at_most``."""
    if api_key not in versions:
        raise ClientError(ErrorCode.UNSUPPORTED_VERSION,
                          f"the broker serves no version of API {api_key} that this client knows")
    v = versions[api_key]
    return v if at_most is None else min(v, at_most)


class InFlight:
    __slots__ = ("correlation_id", "api_key", "version")

    def __init__(self, correlation_id: int, api_key: int, version: int):
        self.correlation_id = correlation_id
        self.api_key = api_key
        self.version = version

    def __repr__(self) -> str:
        return f"InFlight(correlation_id={self.correlation_id}, api_key={self.api_key}, version={self.version})"


class ClientProtocol:
    def __init__(self, client_id: str | None = "kbroker-client"):
        self.client_id = client_id
        self.correlation_id = 0          # the last one used
        self.in_flight: deque[InFlight] = deque()
        self._buf = bytearray()

    # -- requests ---------------------------------------------------------------------------------------

    def encode(self, api_key: int, version: int, request, client_id: str | None | type = ...,
               expect_response: bool | None = None) -> bytes:
        """The bytes of one request frame, size prefix included; the request is in flight from now on
        unless it expects no answer (Produce with acks=0)."""
        api = BY_KEY[api_key]
        if version not in api.REQUEST_ENCODERS:
            raise ValueError(f"{api.__name__.rsplit('.', 1)[-1]} v{version} is not known to the codec")
        self.correlation_id = (self.correlation_id + 1) & 0x7FFFFFFF
        cid = self.correlation_id
        out = bytearray(4)
        encode_request_header(out, RequestHeader(api_key, version, cid,
                                                 self.client_id if client_id is ... else client_id),
                              request_header_flexible(api_key, version))
        api.REQUEST_ENCODERS[version](request, out)
        _SIZE.pack_into(out, 0, len(out) - 4)
        if expect_response is None:
            expect_response = expects_response(api_key, request)
        if expect_response:
            self.in_flight.append(InFlight(cid, api_key, version))
        return bytes(out)

    # -- responses --------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next whole frame (without its size prefix), or None until more bytes arrive. A frame may
        be empty: SASL v0 sends its tokens framed but without a header."""
        if len(self._buf) < 4:
            return None
        (size,) = _SIZE.unpack_from(self._buf, 0)
        if size < 0 or size > MAX_RESPONSE_BYTES:
            raise ProtocolError(f"response frame of {size} bytes")
        if len(self._buf) < 4 + size:
            return None
        frame = bytes(self._buf[4:4 + size])
        del self._buf[:4 + size]
        return frame

    def decode(self, frame: bytes, version: int | None = None):
        """The response object answering the oldest request in flight, which stops being in flight.
        ``version`` decodes the body at another version than the request's (an ApiVersions answer to an
        unsupported version carries a v0 body)."""
        if not self.in_flight:
            raise ProtocolError("a response arrived with no request in flight")
        entry = self.in_flight.popleft()
        return self.decode_as(frame, entry.api_key, entry.version if version is None else version,
                              entry.correlation_id, header_version=entry.version)

    @staticmethod
    def decode_as(frame: bytes, api_key: int, version: int, correlation_id: int | None = None,
                  header_version: int | None = None):
        """Decode ``frame`` as the answer to (api_key, version); check the correlation id if given."""
        api = BY_KEY[api_key]
        try:
            cid, pos = read_response_header(frame, response_header_flexible(
                api_key, version if header_version is None else header_version))
        except (DecodeError, struct.error, IndexError) as e:
            raise ProtocolError(f"undecodable response header: {e}") from e
        if correlation_id is not None and cid != correlation_id:
            raise ProtocolError(f"response to correlation id {cid}, expected {correlation_id}")
        try:
            return _decode_body(api, frame, pos, version)
        except ProtocolError:
            if api_key != API_VERSIONS_KEY or version == 0:
                raise
            # KIP-511: a broker that does not know our ApiVersions version answers UNSUPPORTED_VERSION
            # in a v0 body. As Java's ApiVersionsResponse.parse: our version first, then v0.
            return _decode_body(api, frame, pos, 0)


def _decode_body(api, frame: bytes, pos: int, version: int):
    try:
        obj, end = api.RESPONSE_DECODERS[version](memoryview(frame), pos)
    except (DecodeError, struct.error, IndexError) as e:
        raise ProtocolError(f"undecodable answer to API {api.API_KEY} v{version}: {e}") from e
    if end != len(frame):
        raise ProtocolError(f"{len(frame) - end} trailing bytes in the answer to API {api.API_KEY} v{version}")
    return obj
