"""ShareFetch and ShareAcknowledge as frames over a socket (kbroker.client's BlockingConnection): share sessions
and their epochs, acquisition with delivery counts, acknowledgements and their errors, acquire modes, long
polling, and a restart that keeps acknowledgements (KIP-932, KIP-1206, KIP-1222)."""

import threading
import uuid

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from kbroker import Broker
from kbroker.client import BlockingConnection
from kbroker.errors import ErrorCode
from kbroker.wire.messages import share_acknowledge as SA
from kbroker.wire.messages import share_fetch as SF
from support.clients import ConfluentClient

ACCEPT, RELEASE, REJECT, RENEW = 1, 2, 3, 4
Q = SF.ShareFetchRequest


def _produce(b, topic, n, start=0):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0})
    for i in range(start, start + n):
        p.produce(topic, value=b"v%d" % i)
        p.flush()  # one batch per record: batch boundaries at every offset
    return n


class Member:
    def __init__(self, b, topic_id, member_id, group="g", address=None):
        """``address``: the broker to fetch from (host, port); the first broker's by default."""
        self.c = BlockingConnection(*(address or (b.host, b.port)))
        self.topic_id, self.member_id, self.group, self.epoch = topic_id, member_id, group, 0

    def fetch(self, acks=(), wait_ms=0, max_records=100, version=2, mode=0, epoch=None, renew_only=False,
              partitions=(0,)):
        ep = self.epoch if epoch is None else epoch
        parts = [Q.FetchPartition(partition_index=i, acknowledgement_batches=[
            Q.AcknowledgementBatch(first_offset=f, last_offset=l, acknowledge_types=list(t)) for f, l, t in acks])
            for i in partitions]
        r = self.c.request(78, version, Q(group_id=self.group, member_id=self.member_id, share_session_epoch=ep,
                                          max_wait_ms=wait_ms, min_bytes=1, max_bytes=1 << 20,
                                          max_records=max_records, batch_size=max_records, share_acquire_mode=mode,
                                          is_renew_ack=renew_only,
                                          topics=[Q.FetchTopic(topic_id=self.topic_id, partitions=parts)],
                                          forgotten_topics_data=[]))
        if r.error_code == 0 and epoch is None:
            self.epoch = -1 if ep == -1 else ep + 1
        return r

    def ack(self, acks, version=2, epoch=None):
        ep = self.epoch if epoch is None else epoch
        A = SA.ShareAcknowledgeRequest
        r = self.c.request(79, version, A(group_id=self.group, member_id=self.member_id, share_session_epoch=ep,
                                          topics=[A.AcknowledgeTopic(topic_id=self.topic_id, partitions=[
                                              A.AcknowledgePartition(partition_index=0, acknowledgement_batches=[
                                                  A.AcknowledgementBatch(first_offset=f, last_offset=l,
                                                                         acknowledge_types=list(t))
                                                  for f, l, t in acks])])]))
        if r.error_code == 0 and epoch is None and ep != -1:
            self.epoch = ep + 1
        return r


def acquired(r):
    return [(a.first_offset, a.last_offset, a.delivery_count) for t in r.responses for p in t.partitions
            for a in p.acquired_records]


def part(r, index=0):
    return next(p for t in r.responses for p in t.partitions if p.partition_index == index)


def _group_configs(b, configs: dict, group: str = "g") -> None:
    """Sets the share group's configs (IncrementalAlterConfigs on its GROUP resource)."""
    admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
    r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
    admin.incremental_alter_configs([r])[r].result(10)


EARLIEST = {"share.auto.offset.reset": "earliest"}


def _open(b, topic, member_id="m1", group="g"):
    """A member with its session open and the share-partition initialised (the first fetch may find the share
    state topic being created: it then answers nothing)."""
    tid = b.call(lambda: b.state.topics.get(topic).topic_id)
    m = Member(b, tid, member_id, group)
    assert m.fetch().error_code == 0
    b.call(lambda: None)
    return m


@pytest.fixture
def b(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data") as broker:
        # What the clients' FindCoordinator and first fetch do: the internal topics, loaded by the next request.
        broker.call(lambda: broker.state.coordinator_topic("__share_group_state"))
        broker.call(lambda: broker.state.coordinator_topic("__consumer_offsets"))
        yield broker


def test_a_closed_connection_ends_its_share_sessions_and_releases_what_they_hold(b):
    """Kafka 4.1+ ties a share session to the connection that opened it: when the connection closes the session
    ends and its member's records are available again at once (not after the 30 s lock)."""
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, EARLIEST)
    m1, m2 = _open(b, "q", "m1"), _open(b, "q", "m2")
    _produce(b, "q", 3)
    assert acquired(m1.fetch(wait_ms=5000)) == [(0, 2, 1)]
    m1.c.close()
    # m2's long poll is answered when the broker has seen the close and released m1's records.
    assert acquired(m2.fetch(wait_ms=15000)) == [(0, 2, 2)]
    m1.c = BlockingConnection(b.host, b.port)
    assert m1.fetch().error_code == ErrorCode.SHARE_SESSION_NOT_FOUND  # the session went with its connection


def test_records_are_shared_between_members_and_acknowledged(b):
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, EARLIEST)
    m1, m2 = _open(b, "q", "m1"), _open(b, "q", "m2")
    _produce(b, "q", 6)
    r1 = m1.fetch(max_records=2, mode=1)
    assert acquired(r1) == [(0, 1, 1)] and r1.acquisition_lock_timeout_ms == 30000
    assert len(part(r1).records) > 0
    r2 = m2.fetch(max_records=100)
    assert acquired(r2) == [(2, 5, 1)]
    assert acquired(m1.fetch()) == []  # everything is held
    # m1 accepts 0 and releases 1: offset 1 comes back with a higher delivery count; the window moves past 0.
    r = m1.ack([(0, 0, [ACCEPT]), (1, 1, [RELEASE])])
    assert (r.error_code, part(r).error_code) == (0, 0)
    assert acquired(m1.fetch()) == [(1, 1, 2)]
    # m2 acknowledges what m1 holds: INVALID_RECORD_STATE, and nothing of its request is applied.
    r = m2.fetch(acks=[(1, 1, [ACCEPT])])
    assert part(r).acknowledge_error_code == ErrorCode.INVALID_RECORD_STATE
    r = m2.fetch(acks=[(2, 5, [ACCEPT, REJECT, ACCEPT, ACCEPT])])
    assert part(r).acknowledge_error_code == 0
    state = b.call(lambda: b.state.share.partitions[("g", m1.topic_id, 0)].in_flight_summary())
    assert state["start_offset"] == 1 and state["acquired_by_member"] == {"m1": 1}


def test_session_epochs_as_kafka_validates_them(b):
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    m = _open(b, "q")
    assert m.fetch(epoch=5).error_code == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert m.ack([], epoch=0).error_code == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    other = Member(b, m.topic_id, "nobody")
    assert other.fetch(epoch=1).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND
    assert other.ack([(0, 0, [ACCEPT])], epoch=1).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND
    assert other.fetch(epoch=-1).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND
    # Acknowledgements in the request that opens a session are INVALID_REQUEST.
    assert other.fetch(acks=[(0, 0, [ACCEPT])], epoch=0).error_code == ErrorCode.INVALID_REQUEST
    assert m.fetch().error_code == 0  # the expected epoch still works
    assert m.fetch(epoch=-1).error_code == 0  # closes it
    assert m.fetch(epoch=m.epoch).error_code == ErrorCode.SHARE_SESSION_NOT_FOUND


def test_malformed_acknowledgements_are_invalid_request(b):
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, EARLIEST)
    m = _open(b, "q")
    _produce(b, "q", 3)
    assert acquired(m.fetch()) == [(0, 2, 1)]
    for bad in ([(2, 1, [ACCEPT])], [(0, 1, [ACCEPT]), (1, 2, [ACCEPT])], [(0, 2, [ACCEPT, ACCEPT])],
                [(0, 0, [9])]):
        assert part(m.ack(bad)).error_code == ErrorCode.INVALID_REQUEST, bad
    assert part(m.ack([(0, 0, [RENEW])], version=1)).error_code == ErrorCode.INVALID_REQUEST  # RENEW is v2
    assert part(m.ack([(0, 0, [RENEW])])).error_code == 0
    _group_configs(b, {"share.renew.acknowledge.enable": "false"})
    r = m.ack([(0, 0, [RENEW])])
    assert (part(r).error_code, part(r).error_message) == (
        ErrorCode.INVALID_RECORD_STATE, "Renewing acquisition locks is not enabled for the group.")
    r = m.ack([(0, 2, [ACCEPT])], epoch=-1)
    assert (r.error_code, part(r).error_code) == (0, 0)


def test_an_expired_lock_redelivers_and_the_delivery_limit_archives(tmp_path):
    with Broker(port=0, data_dir=tmp_path / "data", settings={"group.share.min.record.lock.duration.ms": "1000"}) as b:
        _expiry_and_limit(b)


def _expiry_and_limit(b):
    b.call(lambda: b.state.coordinator_topic("__share_group_state"))
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, {"share.record.lock.duration.ms": "1000", "share.delivery.count.limit": "2"})
    m1, m2 = _open(b, "q", "m1"), _open(b, "q", "m2")
    _produce(b, "q", 1)
    assert acquired(m1.fetch()) == [(0, 0, 1)]
    # m2 long-polls: woken when m1's lock expires (1 s), it gets the record on its second delivery.
    r = m2.fetch(wait_ms=10000)
    assert acquired(r) == [(0, 0, 2)]
    assert part(m1.ack([(0, 0, [ACCEPT])])).error_code == ErrorCode.INVALID_RECORD_STATE
    # The second lock expires too: the limit (2) is reached and the record is archived, never delivered again.
    assert acquired(m1.fetch(wait_ms=2500)) == []
    summary = b.call(lambda: b.state.share.partitions[("g", m1.topic_id, 0)].in_flight_summary())
    assert summary["start_offset"] == 1


def test_a_long_poll_is_answered_by_an_append(b):
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    m = _open(b, "q")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", m.fetch(wait_ms=20000)))
    t.start()
    b.call(lambda: None)
    _produce(b, "q", 1)
    t.join(15)
    assert not t.is_alive() and acquired(out["r"]) == [(0, 0, 1)]


def test_renew_only_fetch_acquires_nothing_new(b):
    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, EARLIEST)
    m = _open(b, "q")
    _produce(b, "q", 3)
    assert acquired(m.fetch(max_records=1, mode=1)) == [(0, 0, 1)]
    r = m.fetch(acks=[(0, 0, [RENEW])], renew_only=True)
    assert part(r).acknowledge_error_code == 0 and acquired(r) == []


def test_a_restart_keeps_acknowledgements_and_frees_what_was_acquired(tmp_path):
    data = tmp_path / "data"
    with Broker(port=0, data_dir=data) as b:
        b.call(lambda: b.state.coordinator_topic("__share_group_state"))
        ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
        _group_configs(b, EARLIEST)
        m = _open(b, "q")
        _produce(b, "q", 5)
        assert acquired(m.fetch()) == [(0, 4, 1)]
        assert part(m.ack([(0, 1, [ACCEPT]), (3, 3, [ACCEPT])])).error_code == 0
        topic_id = m.topic_id
    with Broker(port=0, data_dir=data) as b:
        m = Member(b, topic_id, "m9")
        r = m.fetch()
        while not acquired(r):  # the share coordinator's shard loads on the first turns
            r = m.fetch(wait_ms=200)
        assert acquired(r) == [(2, 2, 2), (4, 4, 2)]


def test_offsets_described_altered_and_deleted_through_the_admin_apis(b):
    from kbroker.wire.messages import alter_share_group_offsets as ALT
    from kbroker.wire.messages import delete_share_group_offsets as DEL
    from kbroker.wire.messages import describe_share_group_offsets as DESC

    ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
    _group_configs(b, EARLIEST)
    m = _open(b, "q")
    _produce(b, "q", 5)
    assert acquired(m.fetch()) == [(0, 4, 1)]
    m.ack([(0, 1, [ACCEPT]), (3, 3, [REJECT])])
    admin = BlockingConnection(b.host, b.port)
    D = DESC.DescribeShareGroupOffsetsRequest

    def describe(topics, version=1):
        r = admin.request(90, version, D(groups=[D.DescribeShareGroupOffsetsRequestGroup(group_id="g", topics=topics)]))
        [g] = r.groups
        return g.error_code, [(t.topic_name, p.partition_index, p.start_offset, p.lag, p.error_code)
                              for t in g.topics for p in t.partitions]

    # 5 records, 2 accepted below the start, offset 3 rejected in flight: 2 to go.
    assert describe(None) == (0, [("q", 0, 2, 2, 0)])
    assert describe([D.DescribeShareGroupOffsetsRequestTopic(topic_name="q", partitions=[0])], version=0) == (
        0, [("q", 0, 2, -1, 0)])  # v0 has no lag: the decoder's default
    assert describe([D.DescribeShareGroupOffsetsRequestTopic(topic_name="nope", partitions=[0])])[1] == [
        ("nope", 0, -1, -1, 0)]  # as Kafka 4.4: no state, no error
    A = ALT.AlterShareGroupOffsetsRequest
    alter = A(group_id="g", topics=[A.AlterShareGroupOffsetsRequestTopic(topic_name="q", partitions=[
        A.AlterShareGroupOffsetsRequestPartition(partition_index=0, start_offset=4)])])
    from kbroker.wire.messages import share_group_heartbeat as HB
    H = HB.ShareGroupHeartbeatRequest
    assert admin.request(76, 1, H(group_id="g", member_id="m1", member_epoch=0,
                                  subscribed_topic_names=["q"])).error_code == 0  # m joins the group
    assert admin.request(91, 0, alter).error_code == ErrorCode.NON_EMPTY_GROUP  # the group has a member
    X = DEL.DeleteShareGroupOffsetsRequest
    delete = X(group_id="g", topics=[X.DeleteShareGroupOffsetsRequestTopic(topic_name="q")])
    assert admin.request(92, 0, delete).error_code == ErrorCode.NON_EMPTY_GROUP
    r = admin.request(76, 1, H(group_id="g", member_id="m1", member_epoch=-1))  # m leaves the group ...
    assert r.error_code == 0
    m.fetch(epoch=-1)  # ... and closes its share session: what it held is released
    r = admin.request(91, 0, alter)
    assert (r.error_code, [p.error_code for t in r.responses for p in t.partitions]) == (0, [0])
    assert describe(None) == (0, [("q", 0, 4, 1, 0)])
    m2 = Member(b, m.topic_id, "m2")
    assert acquired(m2.fetch()) == [(4, 4, 1)]
    m2.fetch(epoch=-1)
    r = admin.request(92, 0, delete)
    assert (r.error_code, [(t.topic_name, t.error_code) for t in r.responses]) == (0, [("q", 0)])
    assert describe([D.DescribeShareGroupOffsetsRequestTopic(topic_name="q", partitions=[0])]) == (
        0, [("q", 0, -1, -1, 0)])
    m3 = Member(b, m.topic_id, "m3")  # starts afresh where share.auto.offset.reset says: earliest
    assert acquired(m3.fetch()) == [(0, 4, 1)]


def test_the_share_coordinator_apis_between_brokers(b):
    """InitializeShareGroupState, WriteShareGroupState, ReadShareGroupState, ReadShareGroupStateSummary and
    DeleteShareGroupState as another broker sends them (share/persister.py)."""
    from kbroker.wire.messages import delete_share_group_state as DEL
    from kbroker.wire.messages import initialize_share_group_state as INIT
    from kbroker.wire.messages import read_share_group_state as READ
    from kbroker.wire.messages import read_share_group_state_summary as SUM
    from kbroker.wire.messages import write_share_group_state as WRITE

    c = BlockingConnection(b.host, b.port)
    tid = uuid.uuid4()

    def one(r):
        [t] = r.results
        [p] = t.partitions
        assert t.topic_id == tid and p.partition == 3
        return p

    def read():
        Q = READ.ReadShareGroupStateRequest
        return one(c.request(84, 0, Q(group_id="sg", topics=[Q.ReadStateData(topic_id=tid, partitions=[
            Q.PartitionData(partition=3, leader_epoch=0)])])))

    def summary():
        Q = SUM.ReadShareGroupStateSummaryRequest
        return one(c.request(87, 1, Q(group_id="sg", topics=[Q.ReadStateSummaryData(topic_id=tid, partitions=[
            Q.PartitionData(partition=3, leader_epoch=0)])])))

    p = read()
    assert (p.error_code, p.start_offset, p.state_epoch, p.state_batches) == (0, -1, 0, [])
    Q = INIT.InitializeShareGroupStateRequest
    assert one(c.request(83, 0, Q(group_id="sg", topics=[Q.InitializeStateData(topic_id=tid, partitions=[
        Q.PartitionData(partition=3, state_epoch=1, start_offset=10)])]))).error_code == 0
    assert (read().start_offset, read().state_epoch) == (10, 1)
    W = WRITE.WriteShareGroupStateRequest
    assert one(c.request(85, 1, W(group_id="sg", topics=[W.WriteStateData(topic_id=tid, partitions=[
        W.PartitionData(partition=3, state_epoch=1, leader_epoch=2, start_offset=12, state_batches=[
            W.StateBatch(first_offset=12, last_offset=13, delivery_state=0, delivery_count=1),
            W.StateBatch(first_offset=14, last_offset=16, delivery_state=2, delivery_count=1)])])]))).error_code == 0
    p = read()
    assert p.start_offset == 12 and [(x.first_offset, x.last_offset, x.delivery_state, x.delivery_count)
                                     for x in p.state_batches] == [(12, 13, 0, 1), (14, 16, 2, 1)]

    def write(state_epoch, leader_epoch, start):
        return one(c.request(85, 1, W(group_id="sg", topics=[W.WriteStateData(topic_id=tid, partitions=[
            W.PartitionData(partition=3, state_epoch=state_epoch, leader_epoch=leader_epoch, start_offset=start,
                            state_batches=[])])]))).error_code

    # Writes older than the written state are fenced and change nothing: a former leader, an old state epoch.
    assert write(1, 1, 20) == ErrorCode.FENCED_LEADER_EPOCH
    assert write(0, 2, 20) == ErrorCode.FENCED_STATE_EPOCH
    assert read().start_offset == 12
    s = summary()
    assert (s.start_offset, s.leader_epoch, s.state_epoch, s.delivery_complete_count) == (12, 2, 1, 3)
    D = DEL.DeleteShareGroupStateRequest
    assert one(c.request(86, 0, D(group_id="sg", topics=[D.DeleteStateData(topic_id=tid, partitions=[
        D.PartitionData(partition=3)])]))).error_code == 0
    assert read().start_offset == -1


def test_a_leader_change_hands_the_share_partition_to_the_new_leader_and_back(tmp_path):
    """The share-partition follows leadership: the new leader reads the written state (acknowledged records
    stay done, acquired ones come back), and the old leader, leading again, does not serve its stale copy."""
    with Broker(port=0, data_dir=tmp_path / "data", brokers=2) as b:
        for s in b.cluster.states():
            b.call(lambda s=s: s.coordinator_topic("__share_group_state"))
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.create_topics([NewTopic("q", 1, 2)])["q"].result(10)
        assert b.wait_for_leaders(full_isr=True)
        _group_configs(b, EARLIEST)
        tid = b.call(lambda: b.state.topics.get("q").topic_id)

        def leader():
            return b.call(lambda: b.state.topics.get("q").partitions[0].leader_id)

        def member(name):
            node = leader()
            return Member(b, tid, name, address=b.call(lambda: b.state.live_endpoint(node, b.state.listeners[0].name)))

        def acquire_all(m, offsets):
            """Fetches until ``offsets`` are acquired: a new leader's high watermark may trail a moment."""
            got = []
            for _ in range(100):
                got += acquired(m.fetch(wait_ms=200))
                if {o for f, l, _d in got for o in range(f, l + 1)} >= set(offsets):
                    break
            return sorted((o, d) for f, l, d in got for o in range(f, l + 1))

        _produce(b, "q", 4)
        first = leader()
        m = member("m1")
        assert acquire_all(m, range(4)) == [(0, 1), (1, 1), (2, 1), (3, 1)]
        assert part(m.ack([(0, 1, [ACCEPT])])).error_code == 0
        other = next(n for n in b.call(lambda: b.state.topics.get("q").partitions[0].replicas) if n != first)
        b.move_leader("q", 0, other)
        m2 = member("m2")
        assert acquire_all(m2, [2, 3]) == [(2, 2), (3, 2)]
        assert part(m2.ack([(2, 2, [ACCEPT]), (3, 3, [RELEASE])])).error_code == 0
        b.move_leader("q", 0, first)
        _produce(b, "q", 1, start=4)
        m3 = member("m3")
        # Not the first leader's copy, where m1 still held 2-3: offset 3 on its third delivery.
        assert acquire_all(m3, [3, 4]) == [(3, 3), (4, 1)]


def test_find_coordinator_of_a_share_partition_key(b):
    """FindCoordinator key type 2 (v6, KIP-932): the leader of the key's __share_group_state partition."""
    from kbroker.share.share_coordinator import topic_id_string
    from kbroker.wire.messages import find_coordinator as FC

    c = BlockingConnection(b.host, b.port)
    good = f"g:{topic_id_string(uuid.uuid4())}:0"
    r = c.request(10, 6, FC.FindCoordinatorRequest(key_type=2, coordinator_keys=[good, "g:nope:0", "nokey"]))
    ok, bad, worse = r.coordinators
    assert (ok.error_code, ok.node_id, ok.port) == (0, b.state.node_id, b.port)
    assert bad.error_code == worse.error_code == ErrorCode.INVALID_REQUEST


def test_the_share_session_limit_refuses_a_new_session_until_one_ends(tmp_path):
    """group.share.max.share.sessions: a full share session cache refuses a new session with
    SHARE_SESSION_LIMIT_REACHED (Kafka does not evict); a member re-opening its own session is not new."""
    with Broker(port=0, data_dir=tmp_path / "data", settings={"group.share.max.share.sessions": "1"}) as b:
        ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
        m1 = _open(b, "q", "m1")
        m2 = Member(b, m1.topic_id, "m2")
        r = m2.fetch()
        assert (r.error_code, r.acquisition_lock_timeout_ms) == (ErrorCode.SHARE_SESSION_LIMIT_REACHED, 0)
        assert m1.fetch(epoch=0).error_code == 0  # m1's own session again
        assert m1.fetch(epoch=-1).error_code == 0  # m1 ends its session: there is room
        assert m2.fetch().error_code == 0


def test_a_deleted_topics_share_state_is_removed_from_the_share_coordinator(tmp_path):
    """Deleting a topic tombstones its share-partitions' state in __share_group_state: gone at once and after a
    restart (replayed from the log)."""
    data = tmp_path / "data"

    def states(b, topic_id):
        return b.call(lambda: [k for k, _ in b.state.share_coordinator.all_states() if k[1] == topic_id])

    with Broker(port=0, data_dir=data) as b:
        b.call(lambda: b.state.coordinator_topic("__share_group_state"))
        client = ConfluentClient(b.bootstrap_servers)
        client.create_topic("q", 1)
        client.create_topic("kept", 1)
        _group_configs(b, EARLIEST)
        m, k = _open(b, "q"), _open(b, "kept", "m2")
        _produce(b, "q", 2)
        assert acquired(m.fetch()) == [(0, 1, 1)]
        assert part(m.ack([(0, 1, [ACCEPT])])).error_code == 0
        assert states(b, m.topic_id) == [("g", m.topic_id, 0)] and states(b, k.topic_id) != []
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.delete_topics(["q"])["q"].result(timeout=10)
        assert states(b, m.topic_id) == [] and states(b, k.topic_id) != []
    with Broker(port=0, data_dir=data) as b:
        b.call(lambda: b.state.coordinator_topic("__share_group_state"))
        b.call(lambda: None)
        assert states(b, m.topic_id) == [] and states(b, k.topic_id) != []


def test_a_fenced_member_keeps_its_locks_until_they_run_out(tmp_path):
    """A member whose heartbeats stop is fenced by the group coordinator, but its share session (its connection
    is open) and its acquisition locks stay: Kafka's share-partition leaders hear of departures only from their
    share sessions (ShareSessionCache), never from the group coordinator. Another member gets the record once
    the lock has run out, not when the member was fenced."""
    from kbroker.wire.messages import share_group_heartbeat as HB

    settings = {"group.share.min.session.timeout.ms": "1000", "group.share.session.timeout.ms": "1000",
                "group.share.min.heartbeat.interval.ms": "500", "group.share.heartbeat.interval.ms": "500",
                "group.share.min.record.lock.duration.ms": "1000", "group.share.record.lock.duration.ms": "10000"}
    with Broker(port=0, data_dir=tmp_path / "data", settings=settings) as b:
        b.call(lambda: b.state.coordinator_topic("__share_group_state"))
        b.call(lambda: b.state.coordinator_topic("__consumer_offsets"))
        ConfluentClient(b.bootstrap_servers).create_topic("q", 1)
        _group_configs(b, EARLIEST)
        member_id = "fenced-member-1"
        hb = BlockingConnection(b.host, b.port)
        r = hb.request(76, 1, HB.ShareGroupHeartbeatRequest(group_id="g", member_id=member_id, member_epoch=0,
                                                            subscribed_topic_names=["q"]))
        assert r.error_code == 0
        m1 = _open(b, "q", member_id)
        _produce(b, "q", 1)
        assert acquired(m1.fetch(wait_ms=5000)) == [(0, 0, 1)]
        assert b.control.wait_for_group("g", "Empty", members=0, timeout_ms=20_000)  # fenced: no heartbeat
        m2 = Member(b, m1.topic_id, "m2")
        assert acquired(m2.fetch()) == []  # still m1's: its lock holds
        assert acquired(m2.fetch(wait_ms=20_000)) == [(0, 0, 2)]  # the lock ran out
