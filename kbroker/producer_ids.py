"""Producer ids: unique in the cluster for the life of its metadata, handed out from blocks the controller
reserves (as Kafka's ProducerIdManager asks the controller with AllocateProducerIds), so that no two brokers
and no restart ever hand out an id that was already used, and only one controller write is needed per block."""

from __future__ import annotations


class ProducerIdManager:
    def __init__(self, controller):
        self._controller = controller  # controller.Controller: allocate_producer_ids() -> [first, end)
        self._next = self._end = 0

    def next_id(self) -> int:
        if self._next >= self._end:
            self._next, self._end = self._controller.allocate_producer_ids()
        pid = self._next
        self._next += 1
        return pid
