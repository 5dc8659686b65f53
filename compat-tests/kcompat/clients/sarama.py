"""sarama (Go, github.com/IBM/sarama), through the driver in compat-tests/go/sarama.

The driver's go.mod pins sarama's current release; it is built in module mode from the Go module proxy
(``gomod.build``). Sarama picks request versions from its configured protocol version, not from
ApiVersions; the driver sets V4_0_0_0, as a sarama user on Kafka 4 does. Sarama's default partitioner
is its own FNV-1a hash, not Java's murmur2.
"""

from __future__ import annotations

from .base import TIMEOUT_S
from .driver import GoDriverAdapter


class Sarama(GoDriverAdapter):
    name = "sarama"
    partitioner = "fnv1a"
    driver = "sarama"
    module = "github.com/IBM/sarama"

    @classmethod
    def version(cls):
        return super().version()[:-1] + ", protocol V4_0_0_0)"

    def produce_args(self, timeout_s):
        return {"retries": 0 if timeout_s >= TIMEOUT_S else 1}
