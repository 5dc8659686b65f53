"""kbroker measured against Apache Kafka itself.

- realkafka.py: a real Kafka 4 from Maven Central's jars (KRaft, one node, free ports, no Docker), for the
  live comparison, ``make compat REAL_KAFKA=1`` and the benchmark's Kafka peer.
- realkafka.py also starts a Kafka cluster (RealKafkaCluster: three brokers, node ids 0-2, and a dedicated
  KRaft controller) whose brokers can be stopped, killed and started again.
- scenarios.py: one behaviour per scenario, as raw frames of kbroker's own codec, at several versions.
- cluster_scenarios.py: what clients see of a cluster of three (requests to non-leaders, brokers killed and
  stopped, min.insync.replicas, elections, reassignments), run on a ClusterSession against a
  RealKafkaCluster and a kbroker ``Broker(brokers=3)``; recorded/kafka-<version>-cluster.json.
- session.py: the registry, the socket and the Session that records each answer.
- normalize.py: the only rules that rewrite answers before comparing, each with its reason.
- known_differences.py: every difference from Kafka that is known, with its reason.
- runner.py: running, comparing, the per-API table, and recorded/kafka-<version>.json.

``kbroker conformance HOST:PORT`` scores any broker against the recorded answers (no Java);
``python -m kbroker.conformance record|run|live`` for the rest (``record --cluster``, ``live --cluster``: the
cluster scenarios).
"""
