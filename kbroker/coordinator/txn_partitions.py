"""How a partition's leader adds a partition to a v2 producer's transaction (KIP-890 part 2; Kafka's
AddPartitionsToTxnManager with ``verifyOnly`` false).

With transaction protocol v2 a producer sends no AddPartitionsToTxn or AddOffsetsToTxn: a transactional
Produce v12+ or TxnOffsetCommit v5+ to a partition that is not in its transaction yet has the partition's
leader add it, through the transactional id's coordinator, before anything is appended (Kafka's
ReplicaManager with its ``addPartition`` operation, and the group coordinator's partition writer for the
``__consumer_offsets`` partition of the group). ``add`` asks the coordinator in this broker directly when it
hosts the transactional id, and otherwise sends AddPartitionsToTxn v5 (the broker-to-broker form, one
transaction, ``verify_only`` false) to the leader of the transactional id's ``__transaction_state`` partition,
which treats v4+ as transaction version 2 (TransactionVersion.transactionVersionForAddPartitionsToTxn).

A partition whose log has the producer's open transaction at the batch's epoch is in the transaction already
(Kafka's partition skips verification then), so only a transaction's first batch per partition asks.

The answers' errors are the coordinator's, translated as Kafka's AddPartitionsToTxnManager does for the
requests it serves: PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, a CLUSTER_AUTHORIZATION_FAILED answer
INVALID_TXN_STATE, and an unreachable coordinator NETWORK_EXCEPTION; ``produce_error`` and
``offset_commit_error`` turn them into what each API answers.

Connections: one per coordinator broker, opened on first use with ``connect`` (the broker's inter-broker
client: the inter-broker listener's TLS and SASL, inter_broker.py), as the marker channel's. Concurrency: the event loop only; a coordinator on another broker is awaited, so the partition's
state may change meanwhile (an append checks the producer's epoch again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..client.aio import Connection
from ..client.node_connections import NodeConnections, NodeUnreachable
from ..errors import ErrorCode
from ..wire.messages import add_partitions_to_txn as API
from .transaction import TV2

log = logging.getLogger("kbroker.coordinator.txn_partitions")

ADD_PARTITIONS_TO_TXN = 24
BROKER_VERSION = 5  # Kafka's AddPartitionsToTxnManager sends the latest version
REQUEST_TIMEOUT_S = 30.0

# Coordinator errors that a client retries: Kafka answers Produce NOT_ENOUGH_REPLICAS for them ("it does not
# trigger a metadata refresh", ReplicaManager), and the group coordinator COORDINATOR_NOT_AVAILABLE
# (NOT_ENOUGH_REPLICAS normalised by GroupCoordinatorService).
RETRIABLE = frozenset({ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.NETWORK_EXCEPTION,
                       ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                       ErrorCode.NOT_COORDINATOR})

Partitions = list[tuple[str, int]]


def produce_error(code: int) -> tuple[int, str | None]:
    """(error, message) a Produce partition gets for a coordinator error (Kafka's ReplicaManager)."""
    if code == ErrorCode.INVALID_TXN_STATE:
        return code, "Partition was not added to the transaction"
    if code in RETRIABLE:
        return (ErrorCode.NOT_ENOUGH_REPLICAS,
                f"Unable to verify the partition has been added to the transaction. Underlying error: "
                f"{ErrorCode(code).name}")
    return code, None


def offset_commit_error(code: int) -> int:
    """What TxnOffsetCommit answers for a coordinator error."""
    return ErrorCode.COORDINATOR_NOT_AVAILABLE if code in RETRIABLE else code


def _translate(code: int) -> int:
    return ErrorCode.INVALID_PRODUCER_EPOCH if code == ErrorCode.PRODUCER_FENCED else code


class TxnPartitionAdder:
    def __init__(self, node_id: int, transactions, coordinator_of: Callable[[str], int | None],
                 endpoint_of: Callable[[int], tuple[str, int] | None],
                 connect: Callable[..., Awaitable[Connection]] | None = None) -> None:
        """``transactions``: this broker's TransactionCoordinatorService; ``coordinator_of(tid)``: the node
        leading the transactional id's partition of __transaction_state (-1 or None: none);
        ``endpoint_of(node)``: its inter-broker address (None: not alive); ``connect(host, port, client_id=,
        timeout_s=)``: a connection to another broker (None: plain ``Connection.open``)."""
        self.node_id = node_id
        self.transactions = transactions
        self._coordinator_of = coordinator_of
        self._endpoint_of = endpoint_of
        self._nodes = NodeConnections(f"kbroker-add-partitions-{node_id}", REQUEST_TIMEOUT_S, connect)

    @property
    def sent(self) -> int:
        """AddPartitionsToTxn requests sent to other brokers, for tests."""
        return self._nodes.sent

    def add(self, tid: str, pid: int, epoch: int,
            partitions: Partitions) -> dict[tuple[str, int], int] | Awaitable[dict[tuple[str, int], int]]:
        """Per partition: NONE or the error. At once when this broker hosts the transactional id, else an
        awaitable of the remote coordinator's answer."""
        node = self._coordinator_of(tid)
        if self.transactions.hosts(tid) or node == self.node_id:
            errors = self.transactions.add_partitions(tid, pid, epoch, partitions, TV2)
            return {tp: _translate(e) for tp, e in errors.items()}
        if node is None or node < 0:
            return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        return self._send(node, tid, pid, epoch, partitions)

    async def _send(self, node: int, tid: str, pid: int, epoch: int,
                    partitions: Partitions) -> dict[tuple[str, int], int]:
        topics: dict[str, list[int]] = {}
        for topic, index in partitions:
            topics.setdefault(topic, []).append(index)
        Q = API.AddPartitionsToTxnRequest
        request = Q(transactions=[Q.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, verify_only=False,
            topics=[Q.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics.items()])])
        endpoint = self._endpoint_of(node)
        if endpoint is None:
            return dict.fromkeys(partitions, ErrorCode.NETWORK_EXCEPTION)
        try:
            response = await self._nodes.send(node, endpoint, ADD_PARTITIONS_TO_TXN, request, BROKER_VERSION)
        except NodeUnreachable as e:
            log.debug("AddPartitionsToTxn failed: %s", e)
            return dict.fromkeys(partitions, ErrorCode.NETWORK_EXCEPTION)
        if response.error_code:
            code = (ErrorCode.INVALID_TXN_STATE if response.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                    else response.error_code)
            return dict.fromkeys(partitions, code)
        errors = dict.fromkeys(partitions, ErrorCode.UNKNOWN_SERVER_ERROR)
        for txn in response.results_by_transaction:
            for t in txn.topic_results:
                for p in t.results_by_partition:
                    errors[(t.name, p.partition_index)] = _translate(p.partition_error_code)
        return errors

    async def close(self) -> None:
        await self._nodes.close()
