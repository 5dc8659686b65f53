"""Producer ids: unique in the cluster for the life of its metadata, handed out from blocks the controller
reserves (as Kafka's ProducerIdManager asks the controller with AllocateProducerIds), so that no two brokers
and no restart ever hand out an id that was already used, and only one controller write is needed per block.

Asking the controller is a change (a coroutine): ``reserve`` awaits a block when fewer ids than asked are at
hand, and asks for the next one ahead of time when the current one is nine tenths used (Kafka prefetches at
90% too), so InitProducerId rarely waits for the controller's database. ``next_id`` is synchronous: it takes
what ``reserve`` made sure of, or asks a controller whose changes complete at once (the in-process one)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from .controller import PRODUCER_ID_BLOCK_SIZE, run_now

log = logging.getLogger("kbroker.producer_ids")

PREFETCH_LEFT = PRODUCER_ID_BLOCK_SIZE // 10


class ProducerIdManager:
    def __init__(self, controller):
        self._controller = controller  # controller.Controller: allocate_producer_ids() -> [first, end)
        self._blocks: deque[list[int]] = deque()  # [next, end) of the blocks at hand, oldest first
        self._asking: asyncio.Future | None = None  # the block being asked for

    def available(self) -> int:
        return sum(end - nxt for nxt, end in self._blocks)

    def ready(self, count: int = 1) -> bool:
        """Whether ``next_id`` can be called ``count`` times without awaiting ``reserve``."""
        return self._controller.changes_complete_at_once or self.available() >= count

    async def reserve(self, count: int = 1) -> None:
        """At least ``count`` ids at hand for ``next_id``, awaiting the controller for a block if needed."""
        while self.available() < count:
            await asyncio.shield(self._ask())

    def _ask(self) -> asyncio.Future:
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._controller.allocate_producer_ids())
            self._asking.add_done_callback(self._got_block)
        return self._asking

    def _got_block(self, fut: asyncio.Future) -> None:
        self._asking = None
        if fut.cancelled():
            return
        if fut.exception() is not None:
            log.warning("asking the controller for producer ids failed: %s", fut.exception())
            return
        self._blocks.append(list(fut.result()))

    def next_id(self) -> int:
        while self._blocks and self._blocks[0][0] >= self._blocks[0][1]:
            self._blocks.popleft()
        if not self._blocks:
            if not self._controller.changes_complete_at_once:
                raise RuntimeError("no producer id at hand: await reserve() first")
            self._blocks.append(list(run_now(self._controller.allocate_producer_ids())))
        block = self._blocks[0]
        pid = block[0]
        block[0] += 1
        if not self._controller.changes_complete_at_once and self.available() <= PREFETCH_LEFT:
            try:
                self._ask()
            except RuntimeError:  # no running loop: the next reserve asks
                pass
        return pid
