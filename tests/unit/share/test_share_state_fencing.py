"""A share-partition whose state write is fenced by the share coordinator (FENCED_STATE_EPOCH: its offsets were
altered; FENCED_LEADER_EPOCH: a newer leader wrote) is stale: the manager drops it so that the next fetch reads
the state again, as Kafka fences its SharePartition. Other failures keep it, to be written again."""

import asyncio
import uuid

from kbroker.clock import ManualClock
from kbroker.errors import ErrorCode, KafkaError
from kbroker.share.manager import SharePartitionManager
from kbroker.share.share_partition import SharePartition

TOPIC = uuid.uuid4()


class _CoordinatorElsewhere:
    def route(self, key):
        raise KafkaError(ErrorCode.NOT_COORDINATOR)


class _FailingPersister:
    def __init__(self, code: int) -> None:
        self.code = code

    async def write(self, key, state) -> None:
        raise KafkaError(self.code, "refused")


def test_a_fenced_write_drops_the_stale_share_partition_and_other_failures_keep_it():
    key = ("g", TOPIC, 0)
    for code, kept in ((ErrorCode.FENCED_STATE_EPOCH, False), (ErrorCode.FENCED_LEADER_EPOCH, False),
                       (ErrorCode.COORDINATOR_NOT_AVAILABLE, True)):
        manager = SharePartitionManager(ManualClock(), _CoordinatorElsewhere(), lambda g: None, lambda: None,
                                        _FailingPersister(code))
        manager.partitions[key] = SharePartition(ManualClock(), "g", TOPIC, 0, on_change=lambda p: None)
        manager._dirty.add(key)
        assert asyncio.run(manager.persist([key])) == {key: code}
        assert (key in manager.partitions, key in manager._dirty) == (kept, kept)
