"""kbroker's Kafka client, on kbroker's generated codec.

- ``protocol.ClientProtocol``: framing, correlation ids and the queue of requests in flight, without I/O.
- ``aio.Connection`` / ``aio.Client``: asyncio; many requests in flight on one connection; bootstrap,
  Metadata, one connection per broker, admin operations. Replica fetchers build on ``Connection``.
- ``blocking.BlockingClient``: the async client for synchronous callers; ``blocking.BlockingConnection``:
  one socket with exact control of the bytes, for tests and probes.

Versions are negotiated with ApiVersions: per API, the highest version both sides know. Errors are raised
as ``ClientError`` carrying Kafka's name for the code.
"""

from .aio import Client, Connection
from .blocking import BlockingClient, BlockingConnection
from .protocol import ClientError, ClientProtocol, ProtocolError, check

__all__ = ["BlockingClient", "BlockingConnection", "Client", "ClientError", "ClientProtocol", "Connection",
           "ProtocolError", "check"]
