"""The consumer group protocol (KIP-848) with a stock client over real sockets: librdkafka's
`group.protocol=consumer` (confluent-kafka), its admin API, and kbroker's coordinator.

Members that must be killed run as subprocesses (tests/support/group_member.py, `--group-protocol consumer`); the
group is read back through confluent-kafka's AdminClient (ConsumerGroupDescribe), as an operator would, and every
wait is for a condition with a deadline. The broker's consumer session is short (group.consumer.session.timeout.ms,
with its lower bound lowered), so a killed member is noticed in seconds.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, Producer
from confluent_kafka.admin import AdminClient

from support.clients import ConfluentClient
from support.groupclients import MemberProcess, wait_until
from kbroker import Broker

SESSION_MS = 3000
INTERVAL_MS = 300
PARTITIONS = 6


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cbroker():
    with Broker(port=0, storage="memory", group_consumer_session_timeout_ms=SESSION_MS,
                group_consumer_min_session_timeout_ms=1000, group_consumer_heartbeat_interval_ms=INTERVAL_MS,
                group_consumer_min_heartbeat_interval_ms=100) as b:
        yield b


@pytest.fixture
def spawn():
    started: list[MemberProcess] = []

    def start(*args, **kw) -> MemberProcess:
        m = MemberProcess(*args, **kw)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


def _describe(admin: AdminClient, group: str):
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result()


def _assignment_of(description, topic: str) -> dict[str, set[int]]:
    """client id -> partitions of `topic`, as ConsumerGroupDescribe tells it."""
    return {m.client_id: {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            for m in description.members}


def _settled(admin: AdminClient, group: str, topic: str, members: list[MemberProcess], sizes: list[int],
             timeout: float = 20.0) -> dict[str, set[int]]:
    """The assignment once the group is Stable with these members, every partition owned once in shares of these
    sizes, and each member process owning (from its callbacks) what the broker says it has."""
    def check():
        d = _describe(admin, group)
        if d.state != ConsumerGroupState.STABLE or d.type != ConsumerGroupType.CONSUMER:
            return None
        asg = _assignment_of(d, topic)
        if set(asg) != {m.client_id for m in members}:
            return None
        every = sorted(p for parts in asg.values() for p in parts)
        if every != list(range(PARTITIONS)) or sorted(map(len, asg.values())) != sorted(sizes):
            return None
        if not all(m.owned() == asg[m.client_id] for m in members):
            return None
        return asg

    return wait_until(check, timeout, lambda: f"{sizes} over {[m.client_id for m in members]}: "
                                              f"{_describe(admin, group)} {[(m.client_id, m.owned()) for m in members]}")


class _BackgroundProducer:
    """Produces one record to each partition in turn until stopped; `produced[p]` counts the acknowledged ones."""

    def __init__(self, bootstrap: str, topic: str):
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.topic = topic
        self.produced = [0] * PARTITIONS
        self._sent = [0] * PARTITIONS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in range(PARTITIONS):
                self.producer.produce(self.topic, value=f"{p}:{self._sent[p]}".encode(), partition=p)
                self._sent[p] += 1
            assert self.producer.flush(30) == 0
            self.produced = list(self._sent)
            self._stop.wait(0.02)  # pacing: a steady trickle, not synchronisation

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(30)
        assert self.producer.flush(30) == 0
        return list(self.produced)


def test_members_leave_are_killed_and_join_with_a_producer_running_and_no_record_lost_or_consumed_twice(
        cbroker, spawn):
    topic, group = _name("t"), _name("g")
    bootstrap = cbroker.bootstrap_servers
    ConfluentClient(bootstrap).create_topic(topic, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = _BackgroundProducer(bootstrap, topic)

    def member(tag: str) -> MemberProcess:
        return spawn("confluent-kafka", bootstrap, topic, group, f"kip848-{tag}", "--group-protocol", "consumer",
                     "--commit-each")

    a, b, c = member("a"), member("b"), member("c")
    try:
        _settled(admin, group, topic, [a, b, c], [2, 2, 2])

        # a closes: it leaves (epoch -1) and the other two take its partitions over.
        assert a.terminate() == 0
        a.wait_for(lambda e: e["ev"] == "closed", what="closed")
        _settled(admin, group, topic, [b, c], [3, 3])

        d = member("d")
        _settled(admin, group, topic, [b, c, d], [2, 2, 2])

        # b is killed: no word to the broker; its partitions move once its session has expired.
        killed_at = time.monotonic()
        b.kill()
        _settled(admin, group, topic, [c, d], [3, 3], timeout=SESSION_MS / 1000 + 20)
        assert time.monotonic() - killed_at >= SESSION_MS / 1000 * 0.9
    finally:
        produced = producer.stop()
    members = [a, b, c, d]
    everything = {(p, o) for p in range(PARTITIONS) for o in range(produced[p])}

    def committed() -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for m in members for e in list(m.events) if e["ev"] == "committed"]

    # b was killed between reading a record and reporting its commit: whether that commit reached the broker is
    # not known from b's side (at most one record per partition it owned); its next owner reads it again or not.
    killed_in_flight = {(e["p"], e["o"]) for e in b.events if e["ev"] == "record"} - \
        {(e["p"], e["o"]) for e in b.events if e["ev"] == "committed"}
    assert len(killed_in_flight) <= PARTITIONS, killed_in_flight
    wait_until(lambda: set(committed()) | killed_in_flight >= everything, 30,
               lambda: f"every record committed: missing {sorted(everything - set(committed()))[:10]}")
    c.terminate()
    d.terminate()
    done = committed()
    # Each record's processing was acknowledged (its offset committed) exactly once, across four members and
    # three rebalances; a record read again was one whose first reading never got its commit acknowledged.
    assert len(done) == len(set(done)), sorted({x for x in done if done.count(x) > 1})[:20]
    assert everything - killed_in_flight <= set(done) <= everything
    read = [(e["p"], e["o"]) for m in members for e in m.events if e["ev"] == "record"]
    again = {x for x in read if read.count(x) > 1}
    uncommitted_reads = [(e["p"], e["o"]) for m in members for e in m.events if e["ev"] == "commit_failed"]
    assert again <= set(uncommitted_reads) | killed_in_flight, sorted(again)[:20]
    print(f"{len(everything)} records; read twice: {len(again)} (commits refused: {len(uncommitted_reads)}, "
          f"in flight when killed: {len(killed_in_flight)})")
    for m in members:
        assert not m.errors(), (m.client_id, m.errors())


def test_regex_subscription_picks_up_a_topic_created_later(cbroker):
    prefix = _name("rx")
    bootstrap = cbroker.bootstrap_servers
    client = ConfluentClient(bootstrap)
    client.create_topic(f"{prefix}-a", 2)
    client.create_topic(_name("other"), 1)
    producer = Producer({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": _name("g"), "group.protocol": "consumer",
                         "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 500})
    seen: set[tuple[str, bytes]] = set()

    def consume_until(want: set) -> None:
        deadline = time.monotonic() + 30
        while not want <= seen:
            assert time.monotonic() < deadline, (want - seen, consumer.assignment())
            m = consumer.poll(0.2)
            if m is not None and not m.error():
                seen.add((m.topic(), m.value()))

    try:
        consumer.subscribe([f"^{prefix}-.*"])
        producer.produce(f"{prefix}-a", b"a0", partition=1)
        producer.flush(10)
        consume_until({(f"{prefix}-a", b"a0")})
        client.create_topic(f"{prefix}-b", 3)
        for p in range(3):
            producer.produce(f"{prefix}-b", f"b{p}".encode(), partition=p)
        producer.flush(10)
        consume_until({(f"{prefix}-b", f"b{p}".encode()) for p in range(3)})
        assert {tp.topic for tp in consumer.assignment()} == {f"{prefix}-a", f"{prefix}-b"}
        assert all(not t.startswith("other") for t, _ in seen)
    finally:
        consumer.close()


def test_static_member_restarts_without_moving_partitions(cbroker, spawn):
    topic, group = _name("t"), _name("g")
    bootstrap = cbroker.bootstrap_servers
    ConfluentClient(bootstrap).create_topic(topic, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def member(tag: str) -> MemberProcess:
        return spawn("confluent-kafka", bootstrap, topic, group, f"static-{tag}", "--group-protocol", "consumer",
                     "--instance-id", f"instance-{tag}")

    members = {tag: member(tag) for tag in "abc"}
    asg0 = _settled(admin, group, topic, list(members.values()), [2, 2, 2])
    ids0 = {m.group_instance_id: m.member_id for m in _describe(admin, group).members}
    epoch0 = _describe(admin, group)  # noqa: F841 - the description before; epochs are compared below

    for tag in "ab":
        old = members[tag]
        others = [m for t, m in members.items() if t != tag]
        seen = {m.client_id: len(m.rebalance_events()) for m in others}
        assert old.terminate() == 0  # a static member's close leaves for now (epoch -2) and keeps its partitions
        old.wait_for(lambda e: e["ev"] == "closed", what="closed")
        members[tag] = member(tag)
        asg = _settled(admin, group, topic, list(members.values()), [2, 2, 2])
        assert asg == asg0, (tag, asg, asg0)
        ids = {m.group_instance_id: m.member_id for m in _describe(admin, group).members}
        assert ids[f"instance-{tag}"] != ids0[f"instance-{tag}"], "the new incarnation has its own member id"
        assert {i: m for i, m in ids.items() if i != f"instance-{tag}"} == \
            {i: m for i, m in ids0.items() if i != f"instance-{tag}"}
        ids0 = ids
        for m in others:
            assert len(m.rebalance_events()) == seen[m.client_id], (m.client_id, m.rebalance_events())
    for m in members.values():
        assert not m.errors(), (m.client_id, m.errors())


def test_admin_lists_describes_and_deletes_consumer_and_classic_groups(cbroker):
    topic = _name("t")
    bootstrap = cbroker.bootstrap_servers
    ConfluentClient(bootstrap).create_topic(topic, 2)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_group, classic_group = _name("new"), _name("classic")
    new = Consumer({"bootstrap.servers": bootstrap, "group.id": new_group, "group.protocol": "consumer",
                    "group.remote.assignor": "range", "client.id": "new-one"})
    classic = Consumer({"bootstrap.servers": bootstrap, "group.id": classic_group, "client.id": "classic-one",
                        "session.timeout.ms": 6000})
    try:
        new.subscribe([topic])
        classic.subscribe([topic])
        wait_until(lambda: (new.poll(0.1), classic.poll(0.1)) and len(new.assignment()) == 2
                   and len(classic.assignment()) == 2, 30, "both consumers to get both partitions")

        listed = {g.group_id: g for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        assert listed[new_group].type == ConsumerGroupType.CONSUMER
        assert listed[new_group].state == ConsumerGroupState.STABLE
        assert listed[classic_group].type == ConsumerGroupType.CLASSIC
        only_new = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}, request_timeout=10).result().valid
        assert new_group in {g.group_id for g in only_new} and classic_group not in {g.group_id for g in only_new}

        d = admin.describe_consumer_groups([new_group, classic_group], request_timeout=10)
        dn, dc = d[new_group].result(), d[classic_group].result()
        assert (dn.type, dn.state, dn.partition_assignor) == (ConsumerGroupType.CONSUMER,
                                                               ConsumerGroupState.STABLE, "range")
        assert [(m.client_id, sorted(tp.partition for tp in m.assignment.topic_partitions)) for m in dn.members] == \
            [("new-one", [0, 1])]
        assert (dc.type, dc.state) == (ConsumerGroupType.CLASSIC, ConsumerGroupState.STABLE)

        # Neither can be deleted while it has members; both can once they are empty.
        res = admin.delete_consumer_groups([new_group], request_timeout=10)
        with pytest.raises(Exception, match="NON_EMPTY_GROUP"):
            res[new_group].result()
    finally:
        new.close()
        classic.close()
    res = admin.delete_consumer_groups([new_group, classic_group], request_timeout=10)
    for g in (new_group, classic_group):
        res[g].result()
    assert not {new_group, classic_group} & {
        g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}


def test_control_plane_shows_waits_for_and_resets_a_consumer_group(cbroker):
    topic, group = _name("t"), _name("g")
    bootstrap = cbroker.bootstrap_servers
    ConfluentClient(bootstrap).create_topic(topic, 3)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                         "client.id": "watched"})
    try:
        consumer.subscribe([topic])
        consumer.poll(0.1)
        assert cbroker.control.wait_for_group(group, "Stable", members=1, timeout_ms=20000), cbroker.control.group(group)
        g = cbroker.control.group(group)
        assert (g["group_type"], g["protocol_type"], g["protocol"]) == ("consumer", "consumer", "uniform")
        [m] = g["members"]
        assert m["client_id"] == "watched" and m["member_epoch"] == g["generation_id"]
        assert m["assignment"] == [{"topic": topic, "partitions": [0, 1, 2]}]
        # A reset (between tests, say) removes the member and the group.
        cbroker.control.reset()
        assert cbroker.control.group(group)["state"] == "Dead"
    finally:
        consumer.close()


def test_a_consumer_group_survives_a_broker_restart_with_its_members_at_their_epochs(tmp_path):
    from support.brokerproc import BrokerProcess
    from support.groupclients import http_control_of

    topic, group = _name("t"), _name("g")
    proc = BrokerProcess(tmp_path / "data", "--control-port", "0", "--set", "group.consumer.heartbeat.interval.ms=300",
                         "--set", "group.consumer.min.heartbeat.interval.ms=100")
    proc.start()
    consumers: list[Consumer] = []
    try:
        bootstrap = proc.bootstrap_servers
        ConfluentClient(bootstrap).create_topic(topic, 4)

        def consumer(name: str) -> Consumer:
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                          "client.id": name, "reconnect.backoff.max.ms": 200})
            c.subscribe([topic])
            consumers.append(c)
            return c

        def settled(control, members: int) -> dict:
            def check():
                for c in consumers:
                    c.poll(0.05)
                g = control.group(group)
                if g["state"] != "Stable" or len(g["members"]) != members:
                    return None
                sizes = [len(c.assignment()) for c in consumers]
                if sum(sizes) != 4 or not all(sizes):
                    return None
                return g
            return wait_until(check, 30, lambda: f"{members} members settled: {control.group(group)}")

        control = http_control_of(proc)
        consumer("a")
        consumer("b")
        third = consumer("c")
        settled(control, 3)
        third.close()  # leaves: the group epoch is past its first values
        consumers.remove(third)
        before = settled(control, 2)
        assert before["generation_id"] >= 4, before

        assert proc.stop() == 0
        proc.extra_args += ["--port", str(proc.port)]  # the clients know it by its address
        proc.start()
        control = http_control_of(proc)
        loaded = control.group(group)
        assert (loaded["state"], loaded["generation_id"]) == ("Stable", before["generation_id"])

        # Both members heartbeat to the new process, and carry on in the same epochs: nobody was fenced and
        # nobody rejoined, so nothing rebalanced.
        def seen_requests() -> list[dict]:
            status, seen = control._call("GET", "/requests?limit=1000")
            assert status == 200, (status, seen)
            return seen

        def heartbeats_from_both():
            for c in consumers:
                c.poll(0.05)
            return {r["client_id"] for r in seen_requests() if r["api"] == "ConsumerGroupHeartbeat"} >= {"a", "b"}
        wait_until(heartbeats_from_both, 60, lambda: "heartbeats from both members after the restart; requests "
                   f"seen: {sorted({(r['client_id'], r['api']) for r in seen_requests()})}")
        after = control.group(group)
        assert after["generation_id"] == before["generation_id"], (before, after)
        assert sorted((m["member_id"], m["member_epoch"], str(m["assignment"])) for m in after["members"]) == \
            sorted((m["member_id"], m["member_epoch"], str(m["assignment"])) for m in before["members"])
    finally:
        for c in consumers:
            c.close()
        proc.kill()


def test_online_upgrade_and_downgrade_between_a_classic_and_a_consumer_protocol_member(cbroker):
    """A classic kafka-python member and a consumer-protocol confluent-kafka member in one group
    (group.consumer.migration.policy=bidirectional, Kafka's default): the classic group becomes a consumer group
    when the new member joins, they share the partitions, and it becomes a classic group again when the new member
    leaves; every record is consumed and committed exactly once throughout."""
    from support.groupclients import ConfluentCommitEachMember, KafkaPythonCommitEachMember

    topic, group = _name("t"), _name("g")
    bootstrap = cbroker.bootstrap_servers
    ConfluentClient(bootstrap).create_topic(topic, 4)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    produced = [0] * 4

    def produce_round(rounds: int = 5) -> None:
        for _ in range(rounds):
            for p in range(4):
                producer.produce(topic, value=f"{p}:{produced[p]}".encode(), partition=p)
                produced[p] += 1
        assert producer.flush(30) == 0

    def everything():
        return {(p, o) for p in range(4) for o in range(produced[p])}

    def group_type():
        listed = {g.group_id: g for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        return listed[group].type if group in listed else None

    classic = KafkaPythonCommitEachMember("classic-a", bootstrap, topic, group, session_timeout_ms=6000,
                                          heartbeat_interval_ms=200, max_poll_interval_ms=30000).start()
    modern = None
    try:
        produce_round()
        wait_until(lambda: set(classic.consumed) == everything() or classic.failure, 30, "the classic member alone")
        assert classic.owned() == {0, 1, 2, 3} and group_type() == ConsumerGroupType.CLASSIC

        # Upgrade: a consumer-protocol member joins the classic group.
        modern = ConfluentCommitEachMember("modern-b", bootstrap, topic, group, **{"group.protocol": "consumer"}).start()
        wait_until(lambda: len(classic.owned()) == 2 and len(modern.owned()) == 2 and not classic.failure
                   and not modern.failure, 30, lambda: f"a 2/2 split: {classic.events} {modern.events}")
        assert classic.owned() | modern.owned() == {0, 1, 2, 3}
        d = _describe(admin, group)
        assert d.type == ConsumerGroupType.CONSUMER
        assert sorted(m.client_id for m in d.members) == ["classic-a", "modern-b"]
        produce_round()
        wait_until(lambda: set(classic.consumed + modern.consumed) >= everything(), 30, "the mixed group to consume")

        # Downgrade: the consumer-protocol member leaves; the group is classic again, its member takes all.
        modern.stop()
        wait_until(lambda: classic.owned() == {0, 1, 2, 3} and group_type() == ConsumerGroupType.CLASSIC, 30,
                   lambda: f"the classic member alone again: {classic.events}, {group_type()}")
        produce_round()
        wait_until(lambda: set(classic.consumed + modern.consumed) >= everything(), 30, "the classic group to consume")
    finally:
        classic.stop()
        if modern is not None:
            modern.stop()
    both = classic.consumed + modern.consumed
    assert len(both) == len(set(both)), sorted({x for x in both if both.count(x) > 1})[:20]
    assert set(both) == everything()
