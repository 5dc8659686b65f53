"""How a transaction coordinator gets its markers written: a WriteTxnMarkers request to each partition's leader
over the broker's own client (Kafka's TransactionMarkerChannelManager).

``write`` is what the coordinator calls per partition. A partition this broker leads is written at once through
``apply_local`` -- the very function the WriteTxnMarkers handler calls, so the one broker of a cluster of one
takes the same path as a remote leader, minus the socket -- and ``write`` returns None. Any other partition gets
a task that sends WriteTxnMarkers to its current leader and completes when the leader has written the marker;
while the partition has no leader, or its leader answers NOT_LEADER_OR_FOLLOWER or cannot be reached, it tries
again after ``retry_backoff_ms`` (Kafka's channel retries until the marker is written or the partition is gone).
A partition that no longer exists ends the task (there is nothing to mark), as in Kafka.

Connections: one per destination broker (``client.node_connections.NodeConnections``, opened with ``connect``,
the broker's inter-broker client) to the address ``endpoint_of`` gives.

Concurrency: the event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..client.aio import Connection
from ..client.node_connections import NodeConnections, NodeUnreachable
from ..errors import ErrorCode
from ..wire.messages import write_txn_markers as API

log = logging.getLogger("kbroker.coordinator.marker_channel")

WRITE_TXN_MARKERS = 27
RETRY_BACKOFF_MS = 100  # Kafka's retry.backoff.ms
REQUEST_TIMEOUT_S = 30.0


class MarkerChannel:
    def __init__(self, node_id: int, leader_of: Callable[[str, int], int | None],
                 endpoint_of: Callable[[int], tuple[str, int] | None],
                 apply_local: Callable[[str, int, int, int, bool, int], bool],
                 retry_backoff_ms: int = RETRY_BACKOFF_MS,
                 connect: Callable[..., Awaitable[Connection]] | None = None) -> None:
        """``leader_of(topic, partition)``: the leader's node id, -1 without one, None when the partition does not
        exist; ``endpoint_of(node)``: its address (None: not alive); ``apply_local(...)``: write the marker as
        this broker, False when it does not lead the partition; ``connect(host, port, client_id=, timeout_s=)``:
        a connection to another broker (None: plain ``Connection.open``)."""
        self.node_id = node_id
        self._leader_of = leader_of
        self._endpoint_of = endpoint_of
        self._apply_local = apply_local
        self.retry_backoff_s = retry_backoff_ms / 1000
        self._nodes = NodeConnections(f"kbroker-txn-markers-{node_id}", REQUEST_TIMEOUT_S, connect)
        self._tasks: set[asyncio.Task] = set()

    @property
    def sent(self) -> int:
        """WriteTxnMarkers requests sent, for tests and metrics."""
        return self._nodes.sent

    def write(self, topic: str, partition: int, producer_id: int, epoch: int, commit: bool,
              coordinator_epoch: int = 0) -> Awaitable | None:
        """Writes the marker, at once (None) when this broker leads the partition, else in a task (returned).
        ``coordinator_epoch``: the leader epoch of the coordinator's __transaction_state partition, as Kafka's
        coordinator sends it (a leader refuses a marker of an older coordinator: TRANSACTION_COORDINATOR_FENCED).
        Raises LookupError when the partition does not exist."""
        leader = self._leader_of(topic, partition)
        if leader is None:
            raise LookupError(f"{topic}-{partition} does not exist")
        if leader == self.node_id and self._apply_local(topic, partition, producer_id, epoch, commit,
                                                        coordinator_epoch):
            return None
        task = asyncio.ensure_future(self._send(topic, partition, producer_id, epoch, commit, coordinator_epoch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, topic: str, partition: int, producer_id: int, epoch: int, commit: bool,
                    coordinator_epoch: int) -> None:
        request = API.WriteTxnMarkersRequest(markers=[API.WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=producer_id, producer_epoch=epoch, transaction_result=commit,
            coordinator_epoch=coordinator_epoch,
            topics=[API.WriteTxnMarkersRequest.WritableTxnMarkerTopic(name=topic, partition_indexes=[partition])])])
        while True:
            leader = self._leader_of(topic, partition)
            if leader is None:
                log.warning("%s-%d is gone: no marker for producer %d", topic, partition, producer_id)
                return
            if leader == self.node_id and self._apply_local(topic, partition, producer_id, epoch, commit,
                                                            coordinator_epoch):
                return
            error = await self._request(leader, request) if leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE
            if error == ErrorCode.NONE:
                return
            if error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and self._leader_of(topic, partition) is None:
                return
            if error == ErrorCode.TRANSACTION_COORDINATOR_FENCED:  # a newer coordinator completes it
                log.info("marker for %s-%d: this coordinator (epoch %d) is fenced", topic, partition,
                         coordinator_epoch)
                return
            log.debug("marker for %s-%d to broker %d: error %s; trying again", topic, partition, leader, error)
            await asyncio.sleep(self.retry_backoff_s)

    async def _request(self, node: int, request) -> int:
        endpoint = self._endpoint_of(node)
        if endpoint is None:
            return ErrorCode.BROKER_NOT_AVAILABLE
        try:
            response = await self._nodes.send(node, endpoint, WRITE_TXN_MARKERS, request)
        except NodeUnreachable as e:
            log.debug("WriteTxnMarkers failed: %s", e)
            return ErrorCode.NETWORK_EXCEPTION
        return response.markers[0].topics[0].partitions[0].error_code

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._nodes.close()
