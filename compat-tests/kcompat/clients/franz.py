"""franz-go (Go, github.com/twmb/franz-go: kgo and kadm), through the driver in compat-tests/go/franz.

The driver's go.mod pins franz-go's current release; it is built in module mode from the Go module proxy
(``gomod.build``). franz-go negotiates request versions from ApiVersions. Its default partitioner for
keyed records is murmur2, Java's (kgo.StickyKeyPartitioner with the Kafka-compatible hasher).

Its group consumer speaks the classic protocol by default and KIP-848's consumer group protocol with
``kgo.ServerSideBalancer`` (since v1.21; the broker's ``uniform`` assignor for its default cooperative-sticky
balancer). franz-go stays classic without a word when the broker lacks ConsumerGroupHeartbeat v1; the
driver checks ApiVersions first and fails then, so that a KIP-848 scenario cannot pass on the classic protocol.
"""

from __future__ import annotations

from .driver import GoDriverAdapter


class Franz(GoDriverAdapter):
    name = "franz-go"
    partitioner = "murmur2"
    driver = "franz"
    module = "github.com/twmb/franz-go"
    kip848 = True
