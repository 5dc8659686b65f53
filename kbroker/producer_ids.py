"""Producer ids: unique for the life of the data directory, handed out from blocks reserved in the metadata
store (as Kafka's ProducerIdManager reserves blocks from the controller), so that a restart never hands out
an id that was already used, and only one write is needed per block."""

from __future__ import annotations

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, topics):
        self._topics = topics  # the TopicManager's metadata document holds the reserved block end
        self._next = self._end = topics.doc.get("producer_id_block_end", 0)

    def next_id(self) -> int:
        if self._next >= self._end:
            self._end = self._next + BLOCK_SIZE
            self._topics.doc["producer_id_block_end"] = self._end
            self._topics.save_doc()
        pid = self._next
        self._next += 1
        return pid
