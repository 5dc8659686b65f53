"""The transaction coordinator's state over one partition of ``__transaction_state`` (Kafka's
TransactionStateManager's log): the latest TransactionLogValue per transactional id.

`TransactionStateLog` offers what the coordinator uses of a `KeyedState` (state_log.py): ``state`` (the live
map, transactional id -> the coordinator's JSON form of its metadata) and ``put`` (append, then change). Each
``put`` is one record, TransactionLogKey(transactional id) -> TransactionLogValue (coordinator/records.py);
None writes a tombstone. Kafka keeps neither the last producer epoch (KIP-360's retry window) nor the groups of
a transaction in the log: a reloaded transaction has the first as -1, and its groups are there as the
``__consumer_offsets`` partitions among its partitions (AddOffsetsToTxn adds the group's partition, whose
transaction marker completes the group's offsets). ``state`` holds what the log holds, so that what the
coordinator answers after a failed write is what a new leader would load.
"""

from __future__ import annotations

import logging

from . import records as R
from .runtime import CoordinatorLog

log = logging.getLogger("kbroker.coordinator.transaction_log")


def _to_value(d: dict) -> R.TxnValue:
    return R.TxnValue(d["pid"], d["epoch"], d["timeout_ms"], d["state"], tuple((t, p) for t, p in d["partitions"]),
                      d["last_update_ms"], d["start_ms"], d.get("prev_pid", -1), d.get("next_pid", -1), d.get("tv", 0))


def _from_value(v: R.TxnValue) -> dict:
    return {"pid": v.producer_id, "epoch": v.producer_epoch, "last_epoch": -1, "timeout_ms": v.timeout_ms,
            "state": v.status, "partitions": sorted([t, p] for t, p in v.partitions), "groups": [],
            "start_ms": v.start_ms, "last_update_ms": v.last_update_ms, "prev_pid": v.previous_producer_id,
            "next_pid": v.next_producer_id, "tv": v.client_transaction_version}


class TransactionStateLog:
    def __init__(self, coordinator_log: CoordinatorLog) -> None:
        self.log = coordinator_log
        self.state: dict[str, dict] = {}
        coordinator_log.replay(self._replay)

    def _replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        try:
            tid = R.decode_transaction_log_key(key)
            decoded = None if value is None else R.decode_transaction_log_value(value)
        except R.UnknownRecordType as e:
            log.warning("__transaction_state offset %d skipped: %s", offset, e)
            return
        if decoded is None:
            self.state.pop(tid, None)
        else:
            self.state[tid] = _from_value(decoded)

    def put(self, transactional_id: str, value: dict | None) -> None:
        """Records the latest state of the transactional id (None deletes it), then changes ``state``; raises
        KafkaError or OSError and changes nothing when the write fails."""
        encoded = None if value is None else R.transaction_log_value(_to_value(value))
        self.log.append([(R.transaction_log_key(transactional_id), encoded)])
        if encoded is None:
            self.state.pop(transactional_id, None)
        else:
            self.state[transactional_id] = _from_value(R.decode_transaction_log_value(encoded))

    def close(self) -> None:
        pass  # the partition is the topic's
