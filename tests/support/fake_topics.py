"""The group coordinator's view of the cluster's topics in unit tests: topics.TopicManager's ``version`` and
``by_name``, changed by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class FakeTopic:
    topic_id: uuid.UUID
    partitions: list


@dataclass
class FakeTopics:
    """The coordinator's view of the cluster's topics (topics.TopicManager's `version` and `by_name`)."""

    version: int = 0
    by_name: dict = field(default_factory=dict)

    def create(self, name, partitions):
        self.by_name[name] = FakeTopic(uuid.uuid4(), [None] * partitions)
        self.version += 1
        return self.by_name[name].topic_id

    def grow(self, name, partitions):
        self.by_name[name].partitions = [None] * partitions
        self.version += 1

    def delete(self, name):
        del self.by_name[name]
        self.version += 1
