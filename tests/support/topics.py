"""Topics for tests that speak raw Produce: Kafka (and kbroker) create a topic only from Metadata, never
from Produce, so such a test asks Metadata first, as every client does before it produces."""

from __future__ import annotations

from kbroker.wire.messages import metadata

M = metadata.MetadataRequest


def auto_create(conn, *names: str) -> None:
    """Metadata v9 with allow_auto_topic_creation for ``names`` on ``conn`` (a kbroker.client
    BlockingConnection); every one must then exist."""
    r = conn.request(3, 9, M(topics=[M.MetadataRequestTopic(name=n) for n in names],
                             allow_auto_topic_creation=True))
    errors = {t.name: t.error_code for t in r.topics if t.error_code}
    assert not errors, f"auto-creating {names}: {errors}"
