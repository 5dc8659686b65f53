"""franz-go (Go, github.com/twmb/franz-go: kgo and kadm), through the driver in compat-tests/go/franz.

The driver's go.mod pins franz-go's current release; it is built in module mode from the Go module proxy
(``gomod.build``). franz-go negotiates request versions from ApiVersions. Its default partitioner for
keyed records is murmur2, Java's (kgo.StickyKeyPartitioner with the Kafka-compatible hasher).
"""

from __future__ import annotations

from .driver import GoDriverAdapter


class Franz(GoDriverAdapter):
    name = "franz-go"
    partitioner = "murmur2"
    driver = "franz"
    module = "github.com/twmb/franz-go"
