"""Fault injection: answer chosen requests with an error, late, or not at all.

A rule names an API (by Kafka name or key), optionally a topic and partition, and what to do to the next
``count`` matching requests: answer them with ``error_code`` (every partition, or the top-level error, in
the shape of that API's response), delay them by ``delay_ms`` before handling them normally, close the
connection instead of handling them (``disconnect``), or handle them and then close the connection instead
of answering (``drop_response``: the request took effect but the client never hears so, as when a
connection breaks at the wrong moment; what makes a producer retry a batch the broker already has). Rules are checked in the order they were added; a rule is
used up after ``count`` matches. Everything runs on the broker's event loop.

A rule only decides (a ``FaultDecision``); the connection carries the decision out (server.py), so a faulted
answer is encoded, and a faulted connection closed, the way every other one is.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from .wire.message import Message
from .wire.messages import BY_KEY, NAMES

_BY_NAME = {name.lower(): k for k, name in NAMES.items()}
_ids = itertools.count(1)


def api_key_of(api) -> int:
    """An API given as a key (0, "0") or a Kafka name ("Produce", "produce")."""
    if isinstance(api, int):
        key = api
    elif isinstance(api, str) and api.strip().lstrip("-").isdigit():
        key = int(api)
    else:
        key = _BY_NAME.get(str(api).replace("_", "").replace(" ", "").lower(), None)
        if key is None:
            key = {n.replace("_", ""): k for n, k in _BY_NAME.items()}.get(str(api).lower())
    if key is None or key not in BY_KEY:
        raise ValueError(f"unknown API {api!r}")
    return key


class FaultAction(enum.Enum):
    ANSWER_ERROR = "error_code"  # answer with the decision's response instead of handling the request
    DELAY = "delay_ms"  # handle the request after the decision's delay_s
    DISCONNECT = "disconnect"  # close the connection instead of handling the request
    DROP_RESPONSE = "drop_response"  # handle the request, then close the connection instead of answering


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """A rule's decision for one request. Deciding is this module's; doing (encoding, sleeping, closing)
    is the server's, so a faulted answer leaves through the same encode path as every other."""

    action: FaultAction
    response: Message | None = None  # ANSWER_ERROR: the error response, in the shape of the API's
    delay_s: float = 0.0  # DELAY


@dataclass
class FaultRule:
    api_key: int
    count: int = 1
    error_code: int | None = None
    delay_ms: int | None = None
    disconnect: bool = False
    drop_response: bool = False
    topic: str | None = None
    partition: int | None = None
    id: int = field(default_factory=lambda: next(_ids))

    def to_dict(self) -> dict:
        return {"id": self.id, "api": NAMES[self.api_key], "api_key": self.api_key, "count": self.count,
                "error_code": self.error_code, "delay_ms": self.delay_ms, "disconnect": self.disconnect,
                "drop_response": self.drop_response,
                "topic": self.topic, "partition": self.partition}

    @classmethod
    def from_dict(cls, d: dict) -> "FaultRule":
        if "api" not in d:
            raise ValueError("a fault needs an api")
        actions = [d.get("error_code") is not None, d.get("delay_ms") is not None, bool(d.get("disconnect")),
                   bool(d.get("drop_response"))]
        if sum(actions) != 1:
            raise ValueError("a fault has exactly one of error_code, delay_ms, disconnect, drop_response")
        count = int(d.get("count", 1))
        if count < 1:
            raise ValueError("count must be at least 1")
        return cls(api_key=api_key_of(d["api"]), count=count,
                   error_code=None if d.get("error_code") is None else int(d["error_code"]),
                   delay_ms=None if d.get("delay_ms") is None else int(d["delay_ms"]),
                   disconnect=bool(d.get("disconnect")), drop_response=bool(d.get("drop_response")),
                   topic=d.get("topic"),
                   partition=None if d.get("partition") is None else int(d["partition"]))

    # -- what happens to a matched request ----------------------------------------

    def decide(self, handler, version: int, request: Message) -> FaultDecision:
        """What to do to a matched request; the server carries it out (server.py)."""
        if self.disconnect:
            return FaultDecision(FaultAction.DISCONNECT)
        if self.delay_ms is not None:
            return FaultDecision(FaultAction.DELAY, delay_s=self.delay_ms / 1000.0)
        if self.drop_response:
            return FaultDecision(FaultAction.DROP_RESPONSE)
        return FaultDecision(FaultAction.ANSWER_ERROR,
                             response=error_response(handler, version, request, self.error_code))


class Faults:
    def __init__(self):
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, ctx, request) -> FaultRule | None:
        for rule in self.rules:
            if rule.api_key != ctx.api_key:
                continue
            if rule.topic is not None and not mentions(request, rule.topic, rule.partition):
                continue
            rule.count -= 1
            if rule.count <= 0:
                self.rules.remove(rule)
            return rule
        return None

    def decide(self, ctx, handler, request) -> FaultDecision | None:
        """The decision of the first rule ``request`` matches (using up one of its count), or None."""
        rule = self.match(ctx, request)
        return None if rule is None else rule.decide(handler, ctx.version, request)


# -- which topics a request names ---------------------------------------------------

_TOPIC_FIELDS = ("topic", "name")
_PARTITION_FIELDS = ("partition", "index", "partition_index")


def mentions(request: Message, topic: str, partition: int | None) -> bool:
    """True if some struct in the request names ``topic`` (and, if given, that partition within it)."""
    for node in _walk(request):
        if any(getattr(node, f, None) == topic for f in _TOPIC_FIELDS if f in node.__slots__):
            if partition is None:
                return True
            for sub in _walk(node):
                if sub is node:
                    continue
                for f in _PARTITION_FIELDS:
                    if f in sub.__slots__ and getattr(sub, f) == partition:
                        return True
                for f in ("partitions", "partition_indexes"):
                    v = getattr(sub, f, None) if f in sub.__slots__ else None
                    if isinstance(v, list) and partition in v:
                        return True
    return False


def _walk(obj):
    if isinstance(obj, Message):
        yield obj
        for n in obj.__slots__:
            v = getattr(obj, n)
            if isinstance(v, list):
                for x in v:
                    yield from _walk(x)
            elif isinstance(v, Message):
                yield from _walk(v)


# -- error responses in the shape of each API ----------------------------------------

def error_response(handler, version: int, request: Message, code: int) -> Message:
    """A response to ``request`` with ``code`` wherever the API carries an error code, as Kafka's
    ``getErrorResponse`` builds one."""
    api = handler.codec
    R = getattr(api, api.NAME + "Response")
    resp = R()
    if "error_code" in R.__slots__:
        resp.error_code = code
    builder = _PARTITIONED.get(handler.api_key)
    if builder is not None:
        builder(R, request, resp, code)
    return resp


def _produce(R, req, resp, code):
    resp.responses = [R.TopicProduceResponse(name=t.name, partition_responses=[
        R.PartitionProduceResponse(index=p.index, error_code=code, base_offset=-1) for p in t.partition_data])
        for t in req.topic_data]


def _fetch(R, req, resp, code):
    resp.error_code = 0
    resp.responses = [R.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=[
        R.PartitionData(partition_index=p.partition, error_code=code, high_watermark=-1, records=b"")
        for p in t.partitions]) for t in req.topics]


def _list_offsets(R, req, resp, code):
    resp.topics = [R.ListOffsetsTopicResponse(name=t.name, partitions=[
        R.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code) for p in t.partitions])
        for t in req.topics]


def _metadata(R, req, resp, code):
    resp.topics = [R.MetadataResponseTopic(error_code=code, name=t.name, topic_id=t.topic_id)
                   for t in (req.topics or [])]


def _offset_commit(R, req, resp, code):
    resp.topics = [R.OffsetCommitResponseTopic(name=t.name, partitions=[
        R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code) for p in t.partitions])
        for t in req.topics]


def _offset_for_leader_epoch(R, req, resp, code):
    resp.topics = [R.OffsetForLeaderTopicResult(topic=t.topic, partitions=[
        R.EpochEndOffset(partition=p.partition, error_code=code) for p in t.partitions]) for t in req.topics]


def _delete_records(R, req, resp, code):
    resp.topics = [R.DeleteRecordsTopicResult(name=t.name, partitions=[
        R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1, error_code=code)
        for p in t.partitions]) for t in req.topics]


def _create_topics(R, req, resp, code):
    resp.topics = [R.CreatableTopicResult(name=t.name, error_code=code, error_message=None, configs=None)
                   for t in req.topics]


def _delete_topics(R, req, resp, code):
    names = [t.name for t in req.topics] if req.topics else list(req.topic_names)
    resp.responses = [R.DeletableTopicResult(name=n, error_code=code) for n in names]


def _share_group_state(R, req, resp, code):
    """The share coordinator's APIs (83-87): results per topic id, each partition with the error."""
    topic_result = next(c for n, c in vars(R).items() if isinstance(c, type) and n.endswith("Result")
                        and n != "PartitionResult")
    resp.results = [topic_result(topic_id=t.topic_id, partitions=[
        R.PartitionResult(partition=p.partition, error_code=code) for p in t.partitions]) for t in req.topics]


_PARTITIONED = {
    0: _produce, 1: _fetch, 2: _list_offsets, 3: _metadata, 8: _offset_commit, 19: _create_topics,
    20: _delete_topics, 21: _delete_records, 23: _offset_for_leader_epoch,
    **dict.fromkeys((83, 84, 85, 86, 87), _share_group_state),
}
