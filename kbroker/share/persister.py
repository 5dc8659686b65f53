"""The share state of keys whose share coordinator is another broker: ReadShareGroupState,
WriteShareGroupState, InitializeShareGroupState, DeleteShareGroupState and ReadShareGroupStateSummary sent to
the leader of the key's ``__share_group_state`` partition over kbroker's client (Kafka's DefaultStatePersister
and PersisterStateManager).

Each call names one key and returns what the coordinator answered, or raises KafkaError with its error (or
NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE when the partition has no reachable leader; Kafka's persister
retries those itself, kbroker's callers try again on the next fetch or write). Connections: one per
destination broker, as the transaction markers' channel keeps them, opened with the broker's inter-broker
``connect`` (its inter-broker listener's TLS and SASL login, inter_broker.py).

Concurrency: the event loop only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..client.aio import Connection
from ..client.node_connections import NodeConnections, NodeUnreachable
from ..errors import ErrorCode, KafkaError
from ..wire.messages import delete_share_group_state as DEL
from ..wire.messages import initialize_share_group_state as INIT
from ..wire.messages import read_share_group_state as READ
from ..wire.messages import read_share_group_state_summary as SUMMARY
from ..wire.messages import write_share_group_state as WRITE
from . import state_records as SR
from .share_coordinator import Key

log = logging.getLogger("kbroker.share.persister")

REQUEST_TIMEOUT_S = 30.0


class RemotePersister:
    def __init__(self, node_id: int, coordinator_of: Callable[[Key], int | None],
                 endpoint_of: Callable[[int], tuple[str, int] | None],
                 connect: Callable[..., Awaitable[Connection]] | None = None) -> None:
        """``coordinator_of(key)``: the leader of the key's ``__share_group_state`` partition (-1 or None: none);
        ``endpoint_of(node)``: its address (None: not alive); ``connect(host, port, client_id=, timeout_s=)``:
        a connection to another broker (None: plain ``Connection.open``)."""
        self.node_id = node_id
        self._coordinator_of = coordinator_of
        self._endpoint_of = endpoint_of
        self._nodes = NodeConnections(f"kbroker-share-persister-{node_id}", REQUEST_TIMEOUT_S, connect)

    @property
    def sent(self) -> int:
        """Requests sent, for tests."""
        return self._nodes.sent

    async def _send(self, key: Key, api_key: int, request):
        node = self._coordinator_of(key)
        if node is None or node < 0:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "the share coordinator has no leader")
        endpoint = self._endpoint_of(node)
        if endpoint is None:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, f"broker {node} is not alive")
        try:
            response = await self._nodes.send(node, endpoint, api_key, request)
        except NodeUnreachable as e:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, str(e)) from None
        result = response.results[0].partitions[0]
        if result.error_code:
            raise KafkaError(ErrorCode(result.error_code), result.error_message)
        return result

    async def read(self, key: Key, leader_epoch: int = 0) -> SR.ShareState | None:
        group_id, topic_id, partition = key
        Q = READ.ReadShareGroupStateRequest
        r = await self._send(key, READ.API_KEY, Q(group_id=group_id, topics=[Q.ReadStateData(
            topic_id=topic_id, partitions=[Q.PartitionData(partition=partition, leader_epoch=leader_epoch)])]))
        if r.start_offset < 0:
            return None
        return SR.ShareState(r.start_offset, r.state_epoch, leader_epoch, state_batches=[
            (b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in r.state_batches])

    async def write(self, key: Key, state: SR.ShareState) -> None:
        group_id, topic_id, partition = key
        Q = WRITE.WriteShareGroupStateRequest
        await self._send(key, WRITE.API_KEY, Q(group_id=group_id, topics=[Q.WriteStateData(
            topic_id=topic_id, partitions=[Q.PartitionData(
                partition=partition, state_epoch=state.state_epoch, leader_epoch=state.leader_epoch,
                start_offset=state.start_offset, delivery_complete_count=SR.delivery_complete_count(state),
                state_batches=[Q.StateBatch(first_offset=f, last_offset=l, delivery_state=s, delivery_count=c)
                               for f, l, s, c in state.state_batches])])]))

    async def initialize(self, key: Key, start_offset: int, state_epoch: int) -> None:
        group_id, topic_id, partition = key
        Q = INIT.InitializeShareGroupStateRequest
        await self._send(key, INIT.API_KEY, Q(group_id=group_id, topics=[Q.InitializeStateData(
            topic_id=topic_id, partitions=[Q.PartitionData(partition=partition, state_epoch=state_epoch,
                                                           start_offset=start_offset)])]))

    async def delete(self, key: Key) -> None:
        group_id, topic_id, partition = key
        Q = DEL.DeleteShareGroupStateRequest
        await self._send(key, DEL.API_KEY, Q(group_id=group_id, topics=[Q.DeleteStateData(
            topic_id=topic_id, partitions=[Q.PartitionData(partition=partition)])]))

    async def summary(self, key: Key) -> tuple[int, int, int] | None:
        """(start offset, leader epoch, delivery complete count) of a key; None when it has no state."""
        group_id, topic_id, partition = key
        Q = SUMMARY.ReadShareGroupStateSummaryRequest
        r = await self._send(key, SUMMARY.API_KEY, Q(group_id=group_id, topics=[Q.ReadStateSummaryData(
            topic_id=topic_id, partitions=[Q.PartitionData(partition=partition, leader_epoch=0)])]))
        if r.start_offset < 0:
            return None
        return r.start_offset, r.leader_epoch, r.delivery_complete_count

    async def close(self) -> None:
        await self._nodes.close()
