"""The cluster scenarios: what a client sees of a cluster of three brokers (node ids 0, 1, 2) when it asks a
broker that does not lead a partition, when brokers die or stop, and when leaders and replicas move.

Each runs on a ClusterSession (session.py): its calls go to the lowest running broker unless it names one
(``conn=s.to(n)``); ``s.kill(n)`` (kill -9: Kafka's controller notices when the broker's session times out),
``s.stop(n)`` (a clean stop: Kafka's controlled shutdown) and ``s.start(n)`` act on one broker, and whatever
a scenario leaves down is started again before the next. Topics get explicit replica assignments, so that
both clusters place the replicas alike (each controller's own placement starts at a random broker). Between
steps a scenario waits for the state it needs by asking Metadata (``s.wait_until``): the answers recorded
are the ones given once the cluster has settled, not the moment after a change.

The versions are few where a scenario restarts brokers (a Kafka broker takes seconds to start again).
"""

from __future__ import annotations

from ..wire.messages import (alter_partition_reassignments as apr, describe_cluster as dcl,
                             describe_topic_partitions as dtp, elect_leaders as el,
                             list_offsets as lo, list_partition_reassignments as lpr)
from .scenarios import batch, fetch_request, metadata_request, produce_request, produce_topic_id
from .session import ClusterSession, ScenarioError, scenario

Produce, Fetch, ListOffsets, Metadata = 0, 1, 2, 3
ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments = 43, 45, 46
DescribeCluster, DescribeTopicPartitions = 60, 75


def _produce(s: ClusterSession, label: str, v: int, topic: str, node: int, values=(b"a", b"b", b"c"),
             acks: int = -1, partition: int = 0, record: bool = True):
    tid = produce_topic_id(s, v, topic)
    return s.call(label, Produce, v, produce_request(topic, batch(*values), partition=partition, acks=acks,
                                                     topic_id=tid), conn=s.to(node), record=record)


def _seed(s: ClusterSession, topic: str, node: int, partition: int = 0) -> None:
    r = _produce(s, "seed", 9, topic, node, partition=partition, record=False)
    code = r.responses[0].partition_responses[0].error_code
    if code:
        raise ScenarioError(f"seeding {topic}-{partition} on broker {node}: error {code}")


def _leader_is(s: ClusterSession, topic: str, via: int, leaders: dict[int, int], isr: dict[int, list[int]]):
    """A condition: ``via``'s Metadata has these leaders and these ISRs (as sets)."""
    def holds() -> bool:
        ps = s.partitions(topic, via)
        return all(i in ps and ps[i].leader_id == n for i, n in leaders.items()) and all(
            i in ps and sorted(ps[i].isr_nodes) == sorted(nodes) for i, nodes in isr.items())
    return holds


def _describe_partitions(topic: str) -> dtp.DescribeTopicPartitionsRequest:
    return dtp.DescribeTopicPartitionsRequest(topics=[dtp.DescribeTopicPartitionsRequest.TopicRequest(name=topic)])


def _describe_cluster(fenced: bool = False) -> dcl.DescribeClusterRequest:
    return dcl.DescribeClusterRequest(include_cluster_authorized_operations=False, endpoint_type=1,
                                      include_fenced_brokers=fenced)


def _elect(election_type: int, *topics: tuple[str, list[int]]) -> el.ElectLeadersRequest:
    return el.ElectLeadersRequest(election_type=election_type, timeout_ms=10000, topic_partitions=[
        el.ElectLeadersRequest.TopicPartitions(topic=n, partitions=ps) for n, ps in topics])


# -- the brokers and the controller --------------------------------------------------------------------------

@scenario(Metadata, (1, 9, 12, 13), cluster=True)
def cluster_metadata_brokers(s: ClusterSession, v: int):
    """Metadata of a topic spread over the three brokers, asked of each: every broker with its endpoint, the
    controller id, each partition's leader, replicas and ISR as assigned."""
    topic = s.name("spread")
    s.create_assigned(topic, [[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    for node in s.nodes.node_ids:
        s.call(f"via_{node}", Metadata, v, metadata_request(topic), conn=s.to(node))


@scenario(DescribeCluster, (0, 1, 2), cluster=True)
def cluster_describe(s: ClusterSession, v: int):
    """DescribeCluster of three brokers, asked of two of them; v2 with the fenced brokers included (none)."""
    for node in (0, 2):
        s.call(f"via_{node}", DescribeCluster, v, _describe_cluster(), conn=s.to(node))
    if v >= 2:
        s.call("include_fenced", DescribeCluster, v, _describe_cluster(fenced=True))


# -- a request to a broker that does not lead the partition ----------------------------------------------------

@scenario(Produce, (3, 9, 10, 12, 13), cluster=True)
def cluster_produce_to_follower(s: ClusterSession, v: int):
    """Produce to a follower and to a broker that is no replica: NOT_LEADER_OR_FOLLOWER, from v10 with the
    current leader and its endpoint (KIP-951); then to the leader."""
    topic = s.name("nl")
    s.create_assigned(topic, [[0, 1]])
    _produce(s, "to_follower", v, topic, 1)
    _produce(s, "to_non_replica", v, topic, 2)
    _produce(s, "to_leader", v, topic, 0)


@scenario(Fetch, (4, 10, 11, 12, 13, 16, 17), cluster=True)
def cluster_fetch_from_follower(s: ClusterSession, v: int):
    """A consumer's Fetch from a follower (once the follower knows the high watermark) and from a broker that
    is no replica. Kafka serves consumers from followers from v11 (KIP-392's client metadata) and answers
    NOT_LEADER_OR_FOLLOWER before; from v16 an error names the current leader (KIP-951)."""
    topic = s.name("fl")
    s.create_assigned(topic, [[0, 1]])
    _seed(s, topic, 0)
    tid = s.topic_id(topic) if v >= 13 else None

    def follower_knows() -> bool:  # the follower learns the high watermark in its next fetch from the leader
        r = s.to(1).call(Fetch, v, fetch_request(topic, 0, topic_id=tid))
        p = r.responses[0].partitions[0]
        return p.error_code != 0 or p.high_watermark == 3
    s.wait_until("the follower's high watermark is 3", follower_knows)
    s.call("from_follower", Fetch, v, fetch_request(topic, 0, topic_id=tid), conn=s.to(1))
    s.call("from_non_replica", Fetch, v, fetch_request(topic, 0, topic_id=tid), conn=s.to(2))
    s.call("from_leader", Fetch, v, fetch_request(topic, 0, topic_id=tid), conn=s.to(0))


@scenario(ListOffsets, (1, 7, 9), cluster=True)
def cluster_list_offsets_from_follower(s: ClusterSession, v: int):
    """ListOffsets (latest) from a follower and a broker that is no replica: only the leader answers."""
    topic = s.name("lof")
    s.create_assigned(topic, [[0, 1]])
    _seed(s, topic, 0)
    req = lo.ListOffsetsRequest(replica_id=-1, topics=[lo.ListOffsetsRequest.ListOffsetsTopic(
        name=topic, partitions=[lo.ListOffsetsRequest.ListOffsetsPartition(partition_index=0, timestamp=-1)])])
    for label, node in (("from_follower", 1), ("from_non_replica", 2), ("from_leader", 0)):
        s.call(label, ListOffsets, v, req, conn=s.to(node))


# -- brokers going down --------------------------------------------------------------------------------------

@scenario(Metadata, (12,), cluster=True)
def cluster_leader_killed(s: ClusterSession, v: int):
    """kill -9 of the leader of one partition (and follower of another): once the controller has noticed,
    the partition has a new leader at the next leader epoch, the ISRs have shrunk and the dead broker is an
    offline replica (Metadata, DescribeTopicPartitions), DescribeCluster no longer lists it unfenced, a
    produce to the old leader's follower names the new leader, and every acknowledged record is there.
    Started again, it rejoins the ISRs without leading (auto.leader.rebalance.enable is off); a preferred
    election moves the leadership back (the partition it already leads: ELECTION_NOT_NEEDED)."""
    topic = s.name("kill")
    s.create_assigned(topic, [[0, 1, 2], [1, 2, 0]])
    _seed(s, topic, 0)
    s.kill(0)
    s.wait_until("broker 0 is out of both ISRs", _leader_is(s, topic, 1, {0: 1, 1: 1}, {0: [1, 2], 1: [1, 2]}))
    s.wait_until("broker 2 agrees", _leader_is(s, topic, 2, {0: 1, 1: 1}, {0: [1, 2], 1: [1, 2]}))
    s.call("metadata_after_kill", Metadata, v, metadata_request(topic), conn=s.to(1))
    s.call("describe_partitions_after_kill", DescribeTopicPartitions, 0, _describe_partitions(topic), conn=s.to(1))
    s.call("describe_cluster_after_kill", DescribeCluster, 2, _describe_cluster(fenced=True), conn=s.to(1))
    _produce(s, "produce_to_follower_after_kill", 12, topic, 2, values=(b"d",))

    def new_leader_has_all() -> bool:  # Kafka's new leader moves its high watermark once broker 2 fetches
        p = s.to(1).call(Fetch, 12, fetch_request(topic, 0)).responses[0].partitions[0]
        return p.error_code != 0 or p.high_watermark >= 3
    s.wait_until("the new leader's high watermark is 3", new_leader_has_all)
    s.call("fetch_from_new_leader", Fetch, 12, fetch_request(topic, 0), conn=s.to(1))
    s.start(0)
    s.wait_until("broker 0 is back in both ISRs",
                 _leader_is(s, topic, 1, {0: 1, 1: 1}, {0: [0, 1, 2], 1: [0, 1, 2]}))
    s.wait_until("broker 0 agrees", _leader_is(s, topic, 0, {0: 1, 1: 1}, {0: [0, 1, 2], 1: [0, 1, 2]}))
    s.call("metadata_after_restart", Metadata, v, metadata_request(topic), conn=s.to(0))
    s.call("elect_preferred", ElectLeaders, 2, _elect(0, (topic, [0, 1]), (s.name("none"), [0])), conn=s.to(1))
    s.wait_until("broker 0 leads partition 0 again", _leader_is(s, topic, 2, {0: 0, 1: 1}, {}))
    s.call("metadata_after_election", Metadata, v, metadata_request(topic), conn=s.to(2))


@scenario(Produce, (12,), cluster=True)
def cluster_min_insync_replicas(s: ClusterSession, v: int):
    """min.insync.replicas=2 with replication factor 3: acks=all works with one broker down (stopped
    cleanly); with two down (the second killed) acks=all gets NOT_ENOUGH_REPLICAS and acks=1 is appended;
    once one is back in the ISR acks=all works again. Metadata with two down: the ISR and offline replicas."""
    topic = s.name("minisr")
    s.create_assigned(topic, [[0, 1, 2]], {"min.insync.replicas": "2"})
    _produce(s, "all_up", v, topic, 0)
    s.stop(2)
    s.wait_until("broker 2 is out of the ISR", _leader_is(s, topic, 0, {0: 0}, {0: [0, 1]}))
    _produce(s, "one_down", v, topic, 0)
    s.kill(1)
    s.wait_until("broker 1 is out of the ISR", _leader_is(s, topic, 0, {0: 0}, {0: [0]}))
    # Kafka's broker updates its Metadata cache a moment before its partition's own ISR, which the produce
    # check reads: wait until the leader refuses acks=all. The probe is a batch whose CRC does not match,
    # refused before anything is appended (NOT_ENOUGH_REPLICAS comes first, then CORRUPT_MESSAGE).
    corrupt = batch(b"probe")
    corrupt[-1] ^= 0xFF

    def refuses() -> bool:
        r = s.to(0).call(Produce, 9, produce_request(topic, corrupt, acks=-1))
        return r.responses[0].partition_responses[0].error_code == 19
    s.wait_until("the leader refuses acks=all", refuses)
    s.call("metadata_two_down", Metadata, 12, metadata_request(topic), conn=s.to(0))
    _produce(s, "two_down", v, topic, 0)
    _produce(s, "two_down_again", v, topic, 0)
    _produce(s, "two_down_acks_1", v, topic, 0, acks=1)
    s.call("fetch_two_down", Fetch, 12, fetch_request(topic, 0), conn=s.to(0))
    s.call("describe_partitions_two_down", DescribeTopicPartitions, 0, _describe_partitions(topic), conn=s.to(0))
    s.start(1)
    s.wait_until("broker 1 is back in the ISR", _leader_is(s, topic, 0, {0: 0}, {0: [0, 1]}))
    _produce(s, "one_back", v, topic, 0)
    s.call("fetch_after", Fetch, 12, fetch_request(topic, 0), conn=s.to(0))


# -- leadership and replicas moved ---------------------------------------------------------------------------

@scenario(ElectLeaders, (0, 1, 2), cluster=True)
def cluster_elect_leaders_not_needed(s: ClusterSession, v: int):
    """Preferred elections where every preferred replica already leads, asked of a broker that leads neither
    partition: ELECTION_NOT_NEEDED each; v1+: an unclean election with a leader in place, the same."""
    topic = s.name("enn")
    s.create_assigned(topic, [[0, 1, 2], [1, 2, 0]])
    s.call("preferred", ElectLeaders, v, _elect(0, (topic, [0, 1])), conn=s.to(2))
    if v >= 1:
        s.call("unclean", ElectLeaders, v, _elect(1, (topic, [0])), conn=s.to(2))


def _reassign(topic: str, *partitions: tuple[int, list[int] | None]):
    Req = apr.AlterPartitionReassignmentsRequest
    return Req(timeout_ms=10000, topics=[Req.ReassignableTopic(name=topic, partitions=[
        Req.ReassignablePartition(partition_index=i, replicas=r) for i, r in partitions])])


def _list_reassignments(*topics: tuple[str, list[int]]):
    Req = lpr.ListPartitionReassignmentsRequest
    return Req(timeout_ms=10000, topics=[Req.ListPartitionReassignmentsTopics(name=n, partition_indexes=ps)
                                         for n, ps in topics] or None)


@scenario(AlterPartitionReassignments, (0,), cluster=True)
def cluster_reassignment(s: ClusterSession, v: int):
    """A partition on {0, 1} reassigned to {0, 2} while broker 2 is stopped: accepted, listed as in progress
    (replicas, adding, removing), Metadata meanwhile; a second partition reassigned to live brokers only;
    a reassignment naming a broker that never was (INVALID_REPLICA_ASSIGNMENT) and a cancel of none; once
    broker 2 is back the reassignment completes (broker 1 leaves) and nothing is listed."""
    topic = s.name("reassign")
    s.create_assigned(topic, [[0, 1], [0, 1]])
    s.stop(2)

    def fenced() -> bool:
        r = s.to(0).call(Metadata, 12, metadata_request(topic))
        return sorted(b.node_id for b in r.brokers) == [0, 1]
    s.wait_until("broker 2 is not listed", fenced)
    r = s.call("to_stopped_broker", AlterPartitionReassignments, v, _reassign(topic, (0, [0, 2])))
    accepted = r is not None and not r.error_code and not r.responses[0].partitions[0].error_code
    s.call("listed_in_progress", ListPartitionReassignments, 0, _list_reassignments())
    s.call("listed_by_topic", ListPartitionReassignments, 0, _list_reassignments((topic, [0, 1])))
    s.call("metadata_in_progress", Metadata, 12, metadata_request(topic), conn=s.to(0))
    s.call("unknown_broker", AlterPartitionReassignments, v, _reassign(topic, (1, [0, 7])))
    s.call("cancel_none", AlterPartitionReassignments, v, _reassign(topic, (1, None)))
    s.start(2)
    if not accepted:
        return

    def done() -> bool:
        ps = s.partitions(topic, 0)
        return 0 in ps and list(ps[0].replica_nodes) == [0, 2] and sorted(ps[0].isr_nodes) == [0, 2]
    s.wait_until("the reassignment completed", done)
    s.call("listed_after", ListPartitionReassignments, 0, _list_reassignments())
    s.call("metadata_after", Metadata, 12, metadata_request(topic), conn=s.to(0))

