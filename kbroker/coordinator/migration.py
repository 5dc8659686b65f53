"""Moving a data directory of an earlier release onto the internal topics, once.

Earlier releases kept the coordinators' state in journals of the data directory (state_log.py):
``.kbroker/consumer-offsets.journal`` (groups, committed and pending transactional offsets) and
``.kbroker/transactions.journal`` (one state per transactional id). On the first start of this release the broker
reads each journal once and writes its state as records of ``__consumer_offsets`` / ``__transaction_state``
(created if need be), each key to the partition it hashes to, through the same stores the coordinators write
with; then the journal is renamed ``<name>.migrated`` and kept. A crash before the rename migrates it again at
the next start: the same records again, the latest of each key unchanged. A partition that this broker does
not lead cannot be written: the broker refuses to start (``MigrationError``) and the journal stays as it was,
never emptied. SCRAM credentials and ACLs stay in their journals (Kafka keeps them in the metadata log).

The transactional offsets a journal holds as pending stay pending; a transaction's groups become the
``__consumer_offsets`` partitions among its partitions, whose markers complete them (coordinator/transaction.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..state_log import keyed_state
from .offsets import FileOffsetStore
from .offsets_topic import TopicOffsetStore
from .runtime import OFFSETS_TOPIC, CoordinatorLog
from .transaction_log import TransactionStateLog

log = logging.getLogger("kbroker.coordinator.migration")

OFFSETS_JOURNAL = "consumer-offsets.journal"
TRANSACTIONS_JOURNAL = "transactions.journal"
TRANSACTIONS_MAGIC = b"KBTXNST\x00"
MIGRATED_SUFFIX = ".migrated"


class MigrationError(Exception):
    """The old journals cannot be moved onto the internal topics now; they are left as they were."""


def journals_to_migrate(state_dir: Path) -> list[str]:
    return [name for name in (OFFSETS_JOURNAL, TRANSACTIONS_JOURNAL) if (state_dir / name).exists()]


class _Writers:
    """One store per partition of an internal topic, made on first use; only partitions led here."""

    def __init__(self, topic, make) -> None:
        self.topic, self._make, self._stores = topic, make, {}

    def __getitem__(self, index: int):
        store = self._stores.get(index)
        if store is None:
            p = self.topic.partitions[index]
            if not p.is_leader:
                raise MigrationError(
                    f"cannot migrate the coordinator journals: {self.topic.name}-{index} is led by broker "
                    f"{p.leader_id}, not this one; start this broker first, on its own, to migrate them")
            store = self._stores[index] = self._make(CoordinatorLog(p))
        return store


def _migrate_offsets(path: Path, offsets_topic, partition_for_group) -> int:
    old = FileOffsetStore(path, fsync=False)
    try:
        snapshot = old.load()
    finally:
        old.close()
    stores = _Writers(offsets_topic, TopicOffsetStore)
    for group in snapshot.groups.values():
        stores[partition_for_group(group.group_id)].store_group(group)
    for group_id, offsets in snapshot.offsets.items():
        stores[partition_for_group(group_id)].commit_offsets(group_id, offsets)
    for (producer_id, group_id), offsets in snapshot.pending_txn_offsets.items():
        stores[partition_for_group(group_id)].prepare_txn_offsets(producer_id, group_id, offsets)
    return len(snapshot.groups.keys() | snapshot.offsets.keys())


def _migrate_transactions(path: Path, transactions_topic, partition_for_txn, partition_for_group) -> int:
    old = keyed_state(path, TRANSACTIONS_MAGIC, fsync=False)
    try:
        states = dict(old.state)
    finally:
        old.close()
    logs = _Writers(transactions_topic, TransactionStateLog)
    for tid, d in states.items():
        partitions = {tuple(tp) for tp in d["partitions"]}
        partitions |= {(OFFSETS_TOPIC, partition_for_group(g)) for g in d.get("groups", ())}
        logs[partition_for_txn(tid)].put(tid, {**d, "partitions": sorted(partitions), "groups": []})
    return len(states)


def migrate(state_dir: Path, offsets_topic, transactions_topic, partition_for_group, partition_for_txn) -> None:
    """Moves every journal still in ``state_dir`` onto the internal topics (see the module docstring). Raises
    MigrationError, or OSError / KafkaError from a write, with the journal left in place."""
    for name in journals_to_migrate(state_dir):
        path = state_dir / name
        if name == OFFSETS_JOURNAL:
            n = _migrate_offsets(path, offsets_topic, partition_for_group)
            what = f"{n} groups"
        else:
            n = _migrate_transactions(path, transactions_topic, partition_for_txn, partition_for_group)
            what = f"{n} transactional ids"
        os.replace(path, path.with_name(name + MIGRATED_SUFFIX))
        log.warning("migrated %s of %s onto the internal topics; the journal is kept as %s%s", what, path, name,
                    MIGRATED_SUFFIX)
