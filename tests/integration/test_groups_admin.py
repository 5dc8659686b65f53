"""Consumer groups through each stock client's admin API (issue #3): list, describe, committed offsets (with their
metadata), delete (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for an unknown group), alter offsets;
and the `kbroker groups` command-line tool.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from support.clients import ConfluentClient
from support.groupclients import GROUP_CLIENTS, GROUP_CONSUMERS, consume_until, on_the_wire
from kbroker import Broker

TIMEOUT_S = 30
PARTITIONS = 3


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- one admin adapter per client --------------------------------------------------------------------------------
#
# list_groups(states=None) -> {group_id: state or None (the client does not say)}, by state (KIP-518) if given
# describe(group) -> (state, [(client_id, {partitions of the topic})])
# offsets(group, topic) -> {partition: (offset, metadata)}
# delete(groups) -> {group_id: None or Kafka's error name}          (None if the client has no such call)
# alter(group, topic, {partition: (offset, metadata)})               (None if the client has no such call)


class KafkaPythonAdmin:
    filters_states = True

    def __init__(self, bootstrap: str):
        from kafka.admin import KafkaAdminClient

        self.a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)

    def list_groups(self, states: list[str] | None = None) -> dict[str, str | None]:
        return {g["group_id"]: g.get("group_state") for g in self.a.list_groups(states_filter=states)}

    def describe(self, group: str, topic: str):
        d = self.a.describe_groups([group])[group]
        members = []
        for m in d["members"]:
            parts = set()
            for a in (m["member_assignment"] or {}).get("assigned_partitions", []):
                if a["topic"] == topic:
                    parts.update(a["partitions"])
            members.append((m["client_id"], parts))
        return d["group_state"], members

    def offsets(self, group: str, topic: str) -> dict[int, tuple[int, str]]:
        got = self.a.list_group_offsets(group)[group]
        return {tp.partition: (om.offset, om.metadata) for tp, om in got.items() if tp.topic == topic}

    def delete(self, groups: list[str]) -> dict[str, str | None]:
        from kafka import errors as Errors

        # kafka-python answers "OK" or the name of its error class ("NonEmptyGroupError").
        return {group: None if result == "OK" else getattr(Errors, result).message
                for group, result in self.a.delete_groups(groups).items()}

    def alter(self, group: str, topic: str, offsets: dict[int, tuple[int, str]]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import NoError

        res = self.a.alter_group_offsets(group, {TopicPartition(topic, p): OffsetAndMetadata(o, m, -1)
                                                 for p, (o, m) in offsets.items()})
        assert all(err is NoError for err in res.values()), res

    def close(self) -> None:
        self.a.close()


class ConfluentAdmin:
    filters_states = True

    def __init__(self, bootstrap: str):
        from confluent_kafka.admin import AdminClient

        self.a = AdminClient({"bootstrap.servers": bootstrap})

    def list_groups(self, states: list[str] | None = None) -> dict[str, str | None]:
        from confluent_kafka import ConsumerGroupState

        kw = {"states": {ConsumerGroupState[s.upper()] for s in states}} if states else {}
        res = self.a.list_consumer_groups(request_timeout=TIMEOUT_S, **kw).result(TIMEOUT_S)
        assert not res.errors, res.errors
        return {g.group_id: _confluent_state(g.state) for g in res.valid}

    def describe(self, group: str, topic: str):
        d = self.a.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
        members = [(m.client_id, {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic})
                   for m in d.members]
        return _confluent_state(d.state), members

    def offsets(self, group: str, topic: str) -> dict[int, tuple[int, str]]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        res = self.a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                 request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
        return {tp.partition: (tp.offset, tp.metadata) for tp in res.topic_partitions if tp.topic == topic}

    def delete(self, groups: list[str]) -> dict[str, str | None]:
        from confluent_kafka import KafkaException

        out = {}
        for group, fut in self.a.delete_consumer_groups(groups, request_timeout=TIMEOUT_S).items():
            try:
                fut.result(TIMEOUT_S)
                out[group] = None
            except KafkaException as e:
                out[group] = e.args[0].name()
        return out

    def alter(self, group: str, topic: str, offsets: dict[int, tuple[int, str]]) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o, metadata=m)
                                                   for p, (o, m) in offsets.items()])
        res = self.a.alter_consumer_group_offsets([req], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
        assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions

    def close(self) -> None:
        pass


def _confluent_state(state) -> str:
    """ConsumerGroupState.STABLE -> "Stable" (Kafka's spelling, as the other clients report it)."""
    return {"PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance"}.get(
        state.name, state.name.title())


class AioKafkaAdmin:
    """AIOKafkaAdminClient 0.14 has no delete_consumer_groups and no alter_consumer_group_offsets, and lists
    groups without their state."""

    filters_states = False
    delete = None
    alter = None

    def __init__(self, bootstrap: str):
        from aiokafka.admin import AIOKafkaAdminClient

        self.loop = asyncio.new_event_loop()

        async def make():  # aiokafka objects are made on the loop they run on
            a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
            await a.start()
            return a

        self.a = self._run(make())

    def _run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_S * 2))

    def list_groups(self, states: list[str] | None = None) -> dict[str, str | None]:
        assert states is None, "aiokafka cannot filter by state"
        return {group_id: None for group_id, _protocol_type in self._run(self.a.list_consumer_groups())}

    def describe(self, group: str, topic: str):
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

        (response,) = self._run(self.a.describe_consumer_groups([group]))
        (g,) = response.groups
        error_code, group_id, state, _ptype, _protocol, members = g[:6]
        assert error_code == 0 and group_id == group, g
        out = []
        for m in members:
            member_id, client_id, _host, _metadata, assignment = m[:5]
            parts = set()
            if assignment:
                for t, ps in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                    if t == topic:
                        parts.update(ps)
            out.append((client_id, parts))
        return state, out

    def offsets(self, group: str, topic: str) -> dict[int, tuple[int, str]]:
        got = self._run(self.a.list_consumer_group_offsets(group))
        return {tp.partition: (om.offset, om.metadata) for tp, om in got.items() if tp.topic == topic}

    def close(self) -> None:
        try:
            self._run(self.a.close())
        finally:
            self.loop.close()


ADMINS = {"kafka-python": KafkaPythonAdmin, "confluent-kafka": ConfluentAdmin, "aiokafka": AioKafkaAdmin}


@pytest.fixture
def gbroker():
    with Broker(port=0, storage="memory") as b:
        yield b


@pytest.fixture
def admin(request, gbroker):
    a = ADMINS[request.param](gbroker.bootstrap_servers)
    yield a
    a.close()


def _setup_group(client: str, bootstrap: str, topic: str, group: str):
    """A topic of three partitions with ten records each, and a member of `group` (the given client) that has
    consumed them all."""
    ConfluentClient(bootstrap).create_topic(topic, PARTITIONS)
    ConfluentClient(bootstrap).produce(topic, [(None, b"v", None, i % PARTITIONS, None) for i in range(30)])
    consumer = GROUP_CONSUMERS[client](bootstrap, topic, group, client_id=f"{client}-member")
    try:
        assert len(consume_until(consumer, 30)) == 30
    except BaseException:
        consumer.close()
        raise
    return consumer


@pytest.mark.parametrize("admin", GROUP_CLIENTS, indirect=True)
def test_list_describe_offsets_delete(admin, gbroker, request):
    client = request.node.callspec.params["admin"]
    topic, group, unknown = _name("t"), _name("g"), _name("never")
    control = gbroker.control
    consumer = _setup_group(client, gbroker.bootstrap_servers, topic, group)
    # OffsetCommit metadata round trip: what a member commits is what every reader gets back.
    commit = {0: (3, "zero"), 1: (7, "un été à 1€"), 2: (10, "")}
    try:
        consumer.commit(commit)
        back = consumer.committed(range(PARTITIONS))
        if client == "aiokafka":  # its committed() gives offsets only
            assert back == {p: (o, None) for p, (o, _m) in commit.items()}
        else:
            assert back == commit
        assert control.wait_for_group(group, "Stable", members=1, timeout_ms=TIMEOUT_S * 1000), control.group(group)

        listed = admin.list_groups()
        assert group in listed and unknown not in listed, listed
        assert listed[group] in ("Stable", None)  # None: the client does not report states
        if admin.filters_states:
            assert group in admin.list_groups(["Stable"]) and group not in admin.list_groups(["Empty"])
        assert admin.describe(group, topic) == ("Stable", [(f"{client}-member", set(range(PARTITIONS)))])
        # What the broker keeps is what the client sent (confluent-kafka sends a NUL after each metadata string,
        # and strips it when it reads it back).
        stored = {p: (o, on_the_wire(client, m)) for p, (o, m) in commit.items()}
        assert {o["partition"]: (o["offset"], o["metadata"]) for o in control.group(group)["offsets"]} == stored
        assert admin.offsets(group, topic) == commit

        if admin.delete is not None:
            # A group with a member cannot be deleted; an unknown group is not found.
            assert admin.delete([group, unknown]) == {group: "NON_EMPTY_GROUP", unknown: "GROUP_ID_NOT_FOUND"}
            assert admin.describe(group, topic)[0] == "Stable"
            assert admin.offsets(group, topic) == commit
    finally:
        consumer.close()

    assert control.wait_for_group(group, "Empty", members=0, timeout_ms=TIMEOUT_S * 1000), control.group(group)
    assert admin.describe(group, topic) == ("Empty", [])
    assert admin.list_groups()[group] in ("Empty", None)
    if admin.filters_states:
        assert group in admin.list_groups(["Empty"]) and group not in admin.list_groups(["Stable"])
    assert admin.offsets(group, topic) == commit  # offsets outlive the members

    if admin.alter is not None:
        admin.alter(group, topic, {0: (1, "rewound"), 2: (9, "")})
        commit.update({0: (1, "rewound"), 2: (9, "")})
        assert admin.offsets(group, topic) == commit
        stored = {p: (o, on_the_wire(client, m)) for p, (o, m) in commit.items()}
        assert {o["partition"]: (o["offset"], o["metadata"]) for o in control.group(group)["offsets"]} == stored

    if admin.delete is not None:
        assert admin.delete([group]) == {group: None}
        assert group not in admin.list_groups()
        assert admin.describe(group, topic) == ("Dead", [])  # as Kafka describes an unknown group
        assert admin.offsets(group, topic) == {}
        assert admin.delete([group]) == {group: "GROUP_ID_NOT_FOUND"}
        assert control.group(group)["offsets"] == []


# --- the command-line tool ---------------------------------------------------------------------------------------


def _kb(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbroker", *args, "--bootstrap", bootstrap],
                          capture_output=True, text=True, timeout=120)


def test_cli_groups_list_and_describe(gbroker):
    bootstrap, control = gbroker.bootstrap_servers, gbroker.control
    topic, idle, active = _name("t"), _name("idle"), _name("active")
    # One group whose member committed and left (Empty), one with a member that has committed (Stable).
    consumer = _setup_group("confluent-kafka", bootstrap, topic, idle)
    try:
        consumer.commit({0: (4, ""), 1: (10, ""), 2: (6, "")})
    finally:
        consumer.close()
    consumer = GROUP_CONSUMERS["kafka-python"](bootstrap, topic, active, client_id="cli-test-member")
    try:
        assert len(consume_until(consumer, 30)) == 30
        consumer.commit({1: (2, "")})
        assert control.wait_for_group(active, "Stable", members=1, timeout_ms=TIMEOUT_S * 1000)
        assert control.wait_for_group(idle, "Empty", members=0, timeout_ms=TIMEOUT_S * 1000)

        listed = _kb(bootstrap, "groups", "list")
        assert listed.returncode == 0, listed.stderr
        assert {idle, active} <= set(listed.stdout.split()), listed.stdout

        d = _kb(bootstrap, "groups", "describe", idle)
        assert d.returncode == 0, d.stderr
        lines = d.stdout.splitlines()
        assert lines[0].startswith(f"group {idle} state Empty"), d.stdout
        assert not any(line.strip().startswith("member ") for line in lines), d.stdout
        for p, o in ((0, 4), (1, 10), (2, 6)):
            assert f"{topic}-{p} committed {o}" in d.stdout, d.stdout

        d = _kb(bootstrap, "groups", "describe", active)
        assert d.returncode == 0, d.stderr
        assert d.stdout.startswith(f"group {active} state Stable protocol range"), d.stdout
        assert "client cli-test-member" in d.stdout, d.stdout
        assert f"{topic}-1 committed 2" in d.stdout and f"{topic}-0 committed" not in d.stdout, d.stdout
    finally:
        consumer.close()
