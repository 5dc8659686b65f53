"""Three ``kbroker serve --node-id N --cluster postgresql://...`` processes over one database, and what the
process-cluster tests ask them (tests/process/test_postgres_*.py): Metadata and DescribeCluster through
confluent-kafka's admin client, topic creation with replication factor 3 and ``min.insync.replicas=2``, and
the history's acknowledgements after a nemesis."""

from __future__ import annotations

import contextlib
import uuid

from support.brokerproc import BrokerProcess
from support.txn_helpers import wait_until

NODES = (1, 2, 3)
RF = 3
TOPIC_CONFIGS = {"min.insync.replicas": "2"}
TIMEOUT_S = 30


class ProcessCluster:
    """Three broker processes, each with its own node id, data directory and port, over one database."""

    def __init__(self, url: str, root, *extra_args: str):
        self.url = url
        self.procs = {n: BrokerProcess(root / f"broker-{n}", "--node-id", str(n), "--cluster", url, *extra_args)
                      for n in NODES}

    def start(self, node: int | None = None) -> None:
        """Start the brokers (or one), then wait until each one's Metadata lists every running broker: a
        broker learns of the others' registration through a notification, a moment after their ready line."""
        for n in [node] if node is not None else NODES:
            self.procs[n].start()
        running = self.running()
        for n, p in running.items():
            wait_until(lambda p=p: sorted(broker_ids(p.bootstrap_servers)) == sorted(running), TIMEOUT_S,
                       f"broker {n} to know every running broker")

    def running(self) -> dict[int, BrokerProcess]:
        return {n: p for n, p in self.procs.items() if p.proc is not None}

    def bootstrap(self) -> str:
        return ",".join(p.bootstrap_servers for p in self.running().values())

    def stop(self) -> None:
        for p in self.running().values():
            p.stop()

    def kill(self) -> None:
        for p in self.running().values():
            p.kill()


@contextlib.contextmanager
def logs_on_failure(cluster: ProcessCluster):
    """Run the block with ``cluster``; on a failure print each broker's last log lines and kill them all, else
    stop them."""
    try:
        yield cluster
    except BaseException:
        for n, proc in cluster.procs.items():
            print(n, "\n".join(proc.stderr_lines[-40:]))
        cluster.kill()
        raise
    cluster.stop()


def new_topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_confluent(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, RF, config=TOPIC_CONFIGS)])[topic].result(TIMEOUT_S)


def broker_ids(bootstrap: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    return list(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers)


def describe(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future is answered
    return admin.describe_cluster(request_timeout=10).result()


NO_PARTITION = (-1, [], [])  # (leader, replicas, ISR) of a partition a broker's Metadata does not list yet


def partition_isrs(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, ISR) as one broker's Metadata says (none while it answers the topic with
    an error, e.g. a broker that has just restarted and not yet caught up with the controller)."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in md.topics[topic].partitions.values()}


def acks_after(history, since: float, partitions=None) -> list:
    """The producers' acknowledgements after ``since`` (time.monotonic), on ``partitions`` if given."""
    return [op for op in history.snapshot() if op.f == "send" and op.type == "ok" and op.time > since
            and (partitions is None or op.partition in partitions)]


def sent_after(history, since: float) -> set[str]:
    """The values the producers started sending after ``since``."""
    return {op.value for op in history.snapshot() if op.f == "send" and op.type == "invoke" and op.time > since}


def wait_full_isr(bootstrap: str, topic: str) -> None:
    wait_until(lambda: all(leader in NODES and sorted(isr) == sorted(replicas)
                           for leader, replicas, isr in partition_isrs(bootstrap, topic).values()),
               TIMEOUT_S, "every partition to have a leader and a full ISR")


@contextlib.contextmanager
def running(url: str, root):
    """A started ProcessCluster over the database at ``url``, stopped afterwards (killed if starting failed)."""
    c = ProcessCluster(url, root)
    try:
        c.start()
    except BaseException:
        c.kill()
        raise
    try:
        yield c
    finally:
        c.stop()


def producing(cluster: ProcessCluster, prefix: str, history, partitions: int = 6, acks_first: int = 300):
    """A new topic (replication factor 3, ``min.insync.replicas=2``, a full ISR) and an idempotent acks=all
    ProducerWorker (support/workload.py) recording into ``history``, once it has ``acks_first``
    acknowledgements: (topic, producer)."""
    from support.workload import ProducerWorker

    procs = cluster.procs
    topic = new_topic_name(prefix)
    create_confluent(procs[NODES[0]].bootstrap_servers, topic, partitions)
    wait_full_isr(procs[NODES[0]].bootstrap_servers, topic)
    producer = ProducerWorker(history, cluster.bootstrap(), topic, partitions, 0).start()
    try:
        wait_until(lambda: producer.acknowledged() >= acks_first, TIMEOUT_S, "traffic before the nemesis")
    except BaseException:
        producer.stop()
        raise
    return topic, producer


def check_history(cluster: ProcessCluster, topic: str, history, saved_to, partitions: int = 6,
                  at_least: int = 900) -> None:
    """Read ``topic`` back with read_committed and check ``history`` against it (support/history.py): every
    acknowledged record once, where it was acknowledged, at least ``at_least`` of them, none in doubt. The
    history is saved to ``saved_to`` (JSON lines) for reading it back."""
    from support.history import check
    from support.workload import final_read, record_producers

    final = final_read(cluster.bootstrap(), topic, partitions)
    result = check(history, final, record_producers(cluster.bootstrap(), topic, partitions, final))
    history.save(saved_to)
    print(f"history: {result.summary()}")
    assert result.valid, result.summary()
    assert result.acknowledged >= at_least and result.in_doubt == 0, result.summary()
