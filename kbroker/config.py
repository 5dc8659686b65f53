"""Broker settings, under Kafka's own names and with Kafka's defaults unless a comment says why not.

``BrokerConfig`` is what the rest of the broker reads. It is built from keyword arguments (embedding), the
command line, and later a server.properties file and KAFKA_* environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    data_dir: str | None = None
    storage: str = "segment"  # segment | memory
    node_id: int = 0  # node.id
    cluster_id: str | None = None  # generated on first start and kept in the data directory
    num_partitions: int = 1  # num.partitions
    auto_create_topics_enable: bool = True  # auto.create.topics.enable
    message_max_bytes: int = 1048588  # message.max.bytes
    socket_request_max_bytes: int = 104857600  # socket.request.max.bytes
    default_replication_factor: int = 1
    log_segment_bytes: int = 1073741824  # log.segment.bytes
    log_message_timestamp_type: str = "CreateTime"  # log.message.timestamp.type
    # Consumer groups. Kafka's group.initial.rebalance.delay.ms default is 3000; a broker for tests wants
    # the first consumer to get its partitions at once, so kbroker's is 0.
    group_initial_rebalance_delay_ms: int = 0
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    group_max_size: int = 2147483647
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600000
    transaction_max_timeout_ms: int = 900000
    fsync: str = "never"  # always | interval | never: see the README for what each risks
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def advertised(self) -> str:
        return self.advertised_host or self.host
