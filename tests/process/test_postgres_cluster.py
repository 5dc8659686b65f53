"""Three ``kbroker serve --node-id N --cluster postgresql://...`` processes against one throwaway PostgreSQL,
with stock clients: topics created through any broker are spread over all three, records produced through one
are consumed through another, the controller is the broker holding the controller lock; kill -9 of the
controller's process while an idempotent acks=all producer runs hands the controller to another broker within
a few seconds, the killed broker leaves every ISR and its partitions get new leaders, and every acknowledged
record is read back once (a Jepsen-style history); with two of three down, acks=all is refused with
NOT_ENOUGH_REPLICAS until one is back; a cluster stopped and started again keeps its topics and records.

Topics are created with replication factor 3 and ``min.insync.replicas=2``; the brokers replicate with
replica_fetcher.py over real sockets, and the PostgreSQL controller elects as the in-process one
(``controller.leader_and_isr_for_live``)."""

from __future__ import annotations

import time

import pytest

from support.brokerproc import BrokerProcess
from support.clients import CLIENTS
from support.pgcluster import (NO_PARTITION, NODES, RF, TIMEOUT_S, TOPIC_CONFIGS, ProcessCluster, acks_after, broker_ids,
                               check_history, create_confluent, describe, new_topic_name, partition_isrs, producing,
                               running, sent_after, wait_full_isr)
from support.postgres import needs_postgres, pg  # noqa: F401  pg: a fixture
from support.txn_helpers import wait_until

pytestmark = needs_postgres


@pytest.fixture()
def cluster(pg, tmp_path):
    with running(pg.new_database(), tmp_path) as c:
        yield c


def _create_kafka_python(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, partitions, RF, topic_configs=TOPIC_CONFIGS)])
    finally:
        admin.close()


def _partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, replicas) as one broker's Metadata says."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: (p.leader, list(p.replicas)) for p in md.topics[topic].partitions.values()}


def _produce(bootstrap: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors = []
    for part, value in messages:
        p.produce(topic, value=value, partition=part, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(TIMEOUT_S) == 0
    assert errors == []


def _consume(bootstrap: str, topic: str, partitions: int, count: int) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of what kafka-python reads from the start of every partition."""
    got = CLIENTS["kafka-python"](bootstrap).consume_assigned(topic, partitions, count)
    return [(p, o, v) for p, o, _k, v, _h, _ts in got]


def _values(records, partition: int) -> list[bytes]:
    return [v for p, _o, v in sorted(records) if p == partition]


@pytest.mark.parametrize("create", [create_confluent, _create_kafka_python], ids=["confluent-kafka", "kafka-python"])
def test_three_processes_share_topics_and_records(cluster, create):
    procs = cluster.procs
    described = describe(procs[2].bootstrap_servers)
    assert sorted(n.id for n in described.nodes) == list(NODES)
    assert {n.id: n.port for n in described.nodes} == {n: procs[n].port for n in NODES}
    assert described.controller.id in NODES  # the broker holding the controller lock, the same for every broker
    assert all(describe(procs[n].bootstrap_servers).controller.id == described.controller.id for n in NODES)

    topic = new_topic_name("pg")
    create(procs[1].bootstrap_servers, topic, 6)  # through broker 1 ...
    layout = wait_until(lambda: (lambda got: got if len(got) == 6 else None)(
        _partitions(procs[3].bootstrap_servers, topic)), TIMEOUT_S, "broker 3 to know the topic")
    assert sorted(leader for leader, _r in layout.values()) == [1, 1, 2, 2, 3, 3]  # striped over the three
    assert all(len(replicas) == RF and leader in replicas for leader, replicas in layout.values())

    messages = [(i % 6, f"v{i}".encode()) for i in range(120)]
    _produce(procs[2].bootstrap_servers, topic, messages)  # ... produced through broker 2 ...
    got = _consume(procs[3].bootstrap_servers, topic, 6, 120)  # ... and consumed through broker 3
    for part in range(6):
        assert _values(got, part) == [f"v{i}".encode() for i in range(part, 120, 6)]


def test_a_second_process_with_a_live_node_id_is_refused(cluster, tmp_path):
    twin = BrokerProcess(tmp_path / "twin", "--node-id", "2", "--cluster", cluster.url)
    with pytest.raises(RuntimeError, match="already registered and alive"):
        twin.start()


def test_kill_9_of_the_controller_while_producing_loses_nothing(cluster, tmp_path):
    """Replication factor 3, min.insync.replicas 2: while an idempotent acks=all producer runs, kill -9 the
    controller's process (it leads two of the six partitions and follows the others). Another broker takes
    the controller within a few seconds, the killed broker leaves every ISR (leader or follower: acks=all
    does not wait for replica.lag.time.max.ms), its partitions get new leaders and the producer goes on; the
    broker restarts, catches up and rejoins the ISRs. The history (tests/support/history.py) is checked
    against a final read_committed read: every acknowledged record once, where it was acknowledged."""
    from support.history import History

    procs = cluster.procs
    history = History()
    topic, producer = producing(cluster, "failover", history)
    try:
        victim = describe(procs[1].bootstrap_servers).controller.id
        survivors = [n for n in NODES if n != victim]
        led_by_victim = sorted(p for p, (leader, _r, _i) in
                               partition_isrs(procs[victim].bootstrap_servers, topic).items() if leader == victim)
        assert len(led_by_victim) == 2
        history.nemesis(f"kill -9 {victim} (controller)")
        killed_at = time.monotonic()
        procs[victim].kill()  # kill -9: no goodbye, its sessions end with the process

        # Another broker takes the controller lock: it says so in its log, and every survivor names it.
        def new_controller():
            return next((n for n in survivors if any(" is the controller " in line
                                                     for line in list(procs[n].stderr_lines))), None)
        new = wait_until(new_controller, 10.0, "a surviving broker to become the controller")
        takeover_s = time.monotonic() - killed_at
        for n in survivors:
            wait_until(lambda n=n: describe(procs[n].bootstrap_servers).controller.id == new, TIMEOUT_S,
                       f"broker {n} to name the new controller")

        # The killed broker's partitions get a surviving leader; it leaves every ISR.
        def moved():
            layout = partition_isrs(procs[new].bootstrap_servers, topic)
            return layout if all(leader in survivors and victim not in isr
                                 for leader, _r, isr in layout.values()) else None
        wait_until(moved, TIMEOUT_S, "new leaders, and ISRs without the killed broker")
        elected_s = time.monotonic() - killed_at
        # The producer's next acknowledged record: the first ack after the kill (any partition), and per
        # partition the first ack of a record sent after the kill (the ISR without the killed broker, or
        # the new leader), worst over the six partitions.
        first_ack = wait_until(lambda: acks_after(history, killed_at), TIMEOUT_S, "an ack after the kill")
        first_ack_s = min(op.time for op in first_ack) - killed_at
        def acked_after_on_every_partition():
            sent = sent_after(history, killed_at)
            acks = [op for op in acks_after(history, killed_at) if op.value in sent]
            return acks if {op.partition for op in acks} == set(range(6)) else None
        acked_after = wait_until(acked_after_on_every_partition, TIMEOUT_S,
                                 "every partition to acknowledge a record sent after the kill")
        every_s = max(min(op.time for op in acked_after if op.partition == p) for p in range(6)) - killed_at
        print(f"controller kill -9: new controller after {takeover_s:.2f} s, leaders and ISRs after "
              f"{elected_s:.2f} s, next ack after {first_ack_s:.2f} s, every partition acknowledged a record "
              f"sent after the kill within {every_s:.2f} s")
        assert takeover_s < 5.0 and elected_s < 6.0, (takeover_s, elected_s)
        assert every_s < 10.0, every_s  # not replica.lag.time.max.ms (30 s)
        wait_until(lambda: len(acks_after(history, killed_at)) >= 300, TIMEOUT_S, "traffic after the kill")

        # The killed broker restarts with its data directory, catches up and is in sync again.
        history.nemesis(f"start {victim}")
        cluster.start(victim)
        wait_full_isr(procs[new].bootstrap_servers, topic)
        restarted_at = time.monotonic()
        wait_until(lambda: len(acks_after(history, restarted_at)) >= 300, TIMEOUT_S, "traffic after the restart")
    finally:
        producer.stop()
    check_history(cluster, topic, history, tmp_path / "history.jsonl")


def test_two_of_three_down_refuse_acks_all_until_one_is_back(cluster):
    """min.insync.replicas=2 of 3 as processes: one down, acks=all works; two down, the last broker leads
    every partition with itself as the ISR and refuses acks=all with NOT_ENOUGH_REPLICAS (before appending);
    one back, it catches up, rejoins the ISR and producing resumes, nothing lost."""
    from kafka import KafkaProducer
    from kafka.errors import NotEnoughReplicasError

    procs = cluster.procs
    topic = new_topic_name("minisr")
    create_confluent(procs[1].bootstrap_servers, topic, 1)
    wait_full_isr(procs[1].bootstrap_servers, topic)
    first, second, last = NODES
    procs[first].kill()
    wait_until(lambda: sorted(partition_isrs(procs[last].bootstrap_servers, topic).get(0, NO_PARTITION)[2]) == [second, last],
               TIMEOUT_S, f"broker {first} to leave the ISR")
    _produce(procs[last].bootstrap_servers, topic, [(0, f"one-down-{i}".encode()) for i in range(10)])

    procs[second].kill()
    wait_until(lambda: partition_isrs(procs[last].bootstrap_servers, topic).get(0, NO_PARTITION)[::2] == (last, [last]),
               TIMEOUT_S, f"broker {last} to lead alone")
    refused = KafkaProducer(bootstrap_servers=procs[last].bootstrap_servers, acks="all", retries=0)
    try:
        with pytest.raises(NotEnoughReplicasError):
            refused.send(topic, value=b"refused", partition=0).get(TIMEOUT_S)
    finally:
        refused.close()

    cluster.start(second)
    wait_until(lambda: sorted(partition_isrs(procs[last].bootstrap_servers, topic).get(0, NO_PARTITION)[2]) == [second, last],
               TIMEOUT_S, f"broker {second} to catch up and rejoin the ISR")
    _produce(cluster.bootstrap(), topic, [(0, f"resumed-{i}".encode()) for i in range(10)])
    got = _consume(cluster.bootstrap(), topic, 1, 20)
    assert _values(got, 0) == [f"one-down-{i}".encode() for i in range(10)] + \
        [f"resumed-{i}".encode() for i in range(10)]


def test_a_cluster_stopped_and_started_keeps_its_topics(cluster):
    procs = cluster.procs
    topic = new_topic_name("restart")
    _create_kafka_python(procs[3].bootstrap_servers, topic, 3)
    _produce(cluster.bootstrap(), topic, [(i % 3, f"r{i}".encode()) for i in range(30)])
    cluster.stop()
    cluster.start()
    wait_until(lambda: all(leader in NODES for leader, _r in _partitions(procs[1].bootstrap_servers, topic).values()),
               TIMEOUT_S, "every partition to have a leader after the restart")
    got = _consume(cluster.bootstrap(), topic, 3, 30)
    for part in range(3):
        assert _values(got, part) == [f"r{i}".encode() for i in range(part, 30, 3)]


def test_consumer_group_over_the_processes(cluster):
    """The group coordinator is one broker of the cluster (the first to start, in this slice): FindCoordinator
    names it through every broker, and a group of confluent-kafka consumers reads partitions led by all three."""
    from confluent_kafka import Consumer, TopicPartition

    procs = cluster.procs
    topic, group = new_topic_name("group"), new_topic_name("g")
    create_confluent(procs[2].bootstrap_servers, topic, 6)
    _produce(cluster.bootstrap(), topic, [(i % 6, f"g{i}".encode()) for i in range(60)])
    c = Consumer({"bootstrap.servers": procs[3].bootstrap_servers, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < 60 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.partition(), m.offset(), m.value()))
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, p) for p in range(6)], 10)
    finally:
        c.close()
    assert sorted(v for _p, _o, v in got) == sorted(f"g{i}".encode() for i in range(60))
    assert sorted(tp.offset for tp in committed) == [10] * 6


def test_a_broker_joins_by_its_settings_and_keeps_the_url_to_itself(cluster, tmp_path):
    """``node.id`` and ``kbroker.cluster.url`` as settings do what the flags do; DescribeConfigs does not show
    the URL (it may carry a password)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    fourth = BrokerProcess(tmp_path / "broker-4", "--set", "node.id=4", "--set", f"kbroker.cluster.url={cluster.url}")
    fourth.start()
    try:
        wait_until(lambda: sorted(broker_ids(cluster.procs[1].bootstrap_servers)) == [1, 2, 3, 4], TIMEOUT_S,
                   "broker 1 to list broker 4")
        admin = AdminClient({"bootstrap.servers": fourth.bootstrap_servers})
        resource = ConfigResource(ConfigResource.Type.BROKER, "4")
        configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
        assert configs["node.id"].value == "4"
        assert not [(n, c.value) for n, c in configs.items() if "cluster.url" in n]
    finally:
        fourth.stop()


def test_preferred_election_rebalance_and_reassignment_over_the_processes(pg, tmp_path):
    """The PostgreSQL controller elects and reassigns as the in-process one: after a restart of broker 1,
    confluent-kafka's elect_leaders gives it back its preferred partition (the automatic rebalance is off,
    so that nothing else does); kafka-python's
    reassignment of an RF 3 partition to {3, 1} (its leader 2 leaves at once, broker 2 deletes its copy),
    then back to {3, 1, 2} (broker 2 joins as a follower and catches up), with every record kept."""
    from confluent_kafka import ElectionType, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient

    cluster = ProcessCluster(pg.new_database(), tmp_path, "--set", "auto.leader.rebalance.enable=false")
    cluster.start()
    try:
        procs = cluster.procs
        topic = new_topic_name("pg-elect")
        admin = AdminClient({"bootstrap.servers": procs[1].bootstrap_servers})
        admin.create_topics([NewTopic(topic, num_partitions=3, replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]],
                                      config=TOPIC_CONFIGS)])[topic].result(TIMEOUT_S)
        wait_full_isr(procs[3].bootstrap_servers, topic)
        _produce(procs[2].bootstrap_servers, topic, [(i % 3, f"a{i}".encode()) for i in range(30)])
        procs[1].stop()
        cluster.start(1)
        wait_full_isr(procs[3].bootstrap_servers, topic)
        assert _partitions(procs[3].bootstrap_servers, topic)[0][0] == 2  # broker 1 is back but leads nothing
        result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0), TopicPartition(topic, 1)]
                                     ).result(TIMEOUT_S)
        assert {tp.partition: e.code() if e else 0 for tp, e in result.items()} == {0: 0, 1: 84}  # ELECTION_NOT_NEEDED
        wait_until(lambda: _partitions(procs[3].bootstrap_servers, topic)[0][0] == 1, TIMEOUT_S,
                   "broker 1 to lead partition 0 again")

        kadmin = KafkaAdminClient(bootstrap_servers=procs[3].bootstrap_servers, request_timeout_ms=10000)
        try:
            tp1 = KTopicPartition(topic, 1)
            copy = tmp_path / "broker-2" / f"{topic}-1"
            assert copy.is_dir()
            assert kadmin.alter_partition_reassignments({tp1: [3, 1]}) == {tp1: None}
            wait_until(lambda: _partitions(procs[1].bootstrap_servers, topic)[1] == (3, [3, 1]), TIMEOUT_S,
                       "partition 1 to move to {3, 1}, led by 3")
            wait_until(lambda: not copy.exists(), TIMEOUT_S, "broker 2 to delete its copy")
            _produce(procs[1].bootstrap_servers, topic, [(1, f"b{i}".encode()) for i in range(10)])
            assert kadmin.alter_partition_reassignments({tp1: [3, 1, 2]}) == {tp1: None}
            wait_until(lambda: kadmin.list_partition_reassignments() == {}, TIMEOUT_S, "the reassignment to end")
            wait_full_isr(procs[2].bootstrap_servers, topic)
            assert _partitions(procs[2].bootstrap_servers, topic)[1] == (3, [3, 1, 2])
        finally:
            kadmin.close()
        got = _consume(cluster.bootstrap(), topic, 3, 40)
        assert _values(got, 1) == [f"a{i}".encode() for i in range(1, 30, 3)] + [f"b{i}".encode() for i in range(10)]
    except BaseException:
        for n, proc in cluster.procs.items():
            print(n, "\n".join(proc.stderr_lines[-40:]))
        cluster.kill()
        raise
    else:
        cluster.stop()
