"""CreateTopics (19): v2-7. Partition count (-1: ``num.partitions``), replication factor (-1:
``default.replication.factor``; more than the live brokers: INVALID_REPLICATION_FACTOR), manual assignments naming registered brokers (INVALID_REPLICA_ASSIGNMENT), the
controller placing the partitions over the brokers (controller.py), configs checked
against the topic config definitions (INVALID_CONFIG), ``validate_only``, Kafka's name rules
(INVALID_TOPIC_EXCEPTION) and TOPIC_ALREADY_EXISTS. From v5 the response lists the topic's configs.
Authorisation, as KafkaApis: CREATE on the cluster or on the topic, else TOPIC_AUTHORIZATION_FAILED
("Authorization failed."); the configs are only listed with DESCRIBE_CONFIGS on the topic (else
topic_config_error_code TOPIC_AUTHORIZATION_FAILED).

Bounds, as Kafka 4's controller (KAFKA-17870, made a setting by KAFKA-20976): a request whose topics
would have more than ``controller.max.records.per.batch`` (10,000) partitions in all is refused whole,
every topic POLICY_VIOLATION "Excessively large number of partitions per request.", before anything is
created. A request for many partitions gives the event loop a turn every few hundred partitions
(``topics.run_in_turns``); a topic whose logs cannot all be made is removed again (KAFKA_STORAGE_ERROR).
Every topic created is in the metadata store, in one append per turn, before the answer.

controller_mutation_rate (KIP-599, client_quotas.py): each topic to create takes its partition count from the
client's bucket before it is created; from v6 a topic that finds the bucket empty is refused with
THROTTLING_QUOTA_EXCEEDED, before v6 it is created and the answer only carries the throttle time.
"""

from __future__ import annotations

from ..broker_configs import broker_configs
from ..client_quotas import mutation_quota
from ..controller import check_new_topic
from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topic_config import TOPIC_CONFIGS, validate_topic_configs
from ..topics import PARTITIONS_PER_TURN, run_in_turns, run_steps
from ..wire.messages import create_topics as API

R = API.CreateTopicsResponse
SOURCE_DEFAULT, SOURCE_TOPIC = 5, 1
STRICT_QUOTA_SINCE = 6  # the first version answered THROTTLING_QUOTA_EXCEEDED (KIP-599)


def _broker_source(levels, key: str) -> int:
    """As DescribeConfigs reports a topic config the topic does not override: the broker level that supplies it."""
    broker_key = TOPIC_CONFIGS[key].broker_key
    synonyms = levels.synonyms(broker_key) if broker_key else []
    return synonyms[0][2] if synonyms else SOURCE_DEFAULT


class _ListedConfigs:
    """The configs a CreateTopics result lists, worked out once per request: the broker levels' sources do
    not change within one, and topics without overrides (the common case) share one list. Asking the
    broker levels for every key of every topic took a third of the time of creating 1,000 topics."""

    def __init__(self, broker):
        self.broker = broker
        self._levels = None
        self._sources: dict[str, int] = {}
        self._plain: list | None = None

    def _source(self, key: str) -> int:
        source = self._sources.get(key)
        if source is None:
            if self._levels is None:
                self._levels = broker_configs(self.broker)
            source = self._sources[key] = _broker_source(self._levels, key)
        return source

    def of(self, topic) -> list:
        if not topic.configs and self._plain is not None:
            return self._plain
        out = [
            R.CreatableTopicConfigs(
                name=key, value=topic.config(key), read_only=False,
                config_source=SOURCE_TOPIC if key in topic.configs else self._source(key), is_sensitive=False,
            )
            for key in sorted(TOPIC_CONFIGS) if TOPIC_CONFIGS[key].listed or key in topic.configs
        ]
        if not topic.configs:
            self._plain = out
        return out


TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."


def requested_partitions(ct, num_partitions_default: int) -> int:
    """What Kafka's validateTotalNumberOfPartitions counts for one topic."""
    if ct.assignments:
        return len(ct.assignments)
    if ct.num_partitions == -1:
        return num_partitions_default
    return max(ct.num_partitions, 0)


def _create(ctx, ct, validate_only: bool, quota=None):
    broker = ctx.broker
    assignments = None
    replication_factor = broker.config.default_replication_factor if ct.replication_factor == -1 \
        else ct.replication_factor
    if ct.assignments:
        if ct.num_partitions != -1 or ct.replication_factor != -1:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "Both numPartitions or replicationFactor and replicasAssignments were set.")
        assignments = [list(a.broker_ids) for a in sorted(ct.assignments, key=lambda a: a.partition_index)]
        if [a.partition_index for a in sorted(ct.assignments, key=lambda a: a.partition_index)] != \
                list(range(len(assignments))):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             "Partitions should be 0-based and consecutive in the replica assignment.")
        num_partitions = len(assignments)
    else:
        num_partitions = broker.config.num_partitions if ct.num_partitions == -1 else ct.num_partitions
        check_new_topic(num_partitions, replication_factor)
    configs = {c.name: c.value for c in ct.configs}
    validate_topic_configs(configs)
    if quota is not None and not validate_only:
        quota.record(num_partitions)
    return (yield from broker.topics.creation(ct.name, num_partitions,
                                              {k: v for k, v in configs.items() if v is not None},
                                              validate_only=validate_only, replication_factor=replication_factor,
                                              assignments=assignments))


def handle(ctx, req: API.CreateTopicsRequest):
    # By position in the request; None: a later mention of a duplicated name, answered once, at its first (as
    # Kafka's response, a map keyed by name).
    refused: dict[int, R.CreatableTopicResult | None] = {}
    seen: dict[str, int] = {}
    for ct in req.topics:
        seen[ct.name] = seen.get(ct.name, 0) + 1
    may_create_any = ctx.authorize_cluster(acl.CREATE, log_denied=False)
    first: set[str] = set()
    for i, ct in enumerate(req.topics):
        if seen[ct.name] > 1:
            refused[i] = None if ct.name in first else R.CreatableTopicResult(
                name=ct.name, error_code=ErrorCode.INVALID_REQUEST, error_message="Duplicate topic name.", configs=[])
            first.add(ct.name)
        elif not may_create_any and not ctx.authorize(acl.CREATE, acl.TOPIC, ct.name):
            refused[i] = R.CreatableTopicResult(name=ct.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                                error_message="Authorization failed.", configs=[])
    config = ctx.broker.config
    total = sum(requested_partitions(ct, config.num_partitions)
                for i, ct in enumerate(req.topics) if i not in refused)
    if total > config.controller_max_records_per_batch:
        return R(throttle_time_ms=0, topics=[refused[i] if i in refused else R.CreatableTopicResult(
            name=ct.name, error_code=ErrorCode.POLICY_VIOLATION, error_message=TOO_MANY_PARTITIONS, configs=[])
            for i, ct in enumerate(req.topics) if refused.get(i, True) is not None])
    steps = _create_all(ctx, req, refused)
    if (req.validate_only or total <= PARTITIONS_PER_TURN) and ctx.broker.controller.changes_complete_at_once:
        with ctx.broker.topics.batch():
            return run_steps(steps)
    return run_in_turns(ctx.broker.topics, steps)


def _create_all(ctx, req: API.CreateTopicsRequest, refused: dict):
    """The topics created one partition per step; returns the response."""
    results = []
    listed = _ListedConfigs(ctx.broker)
    quota = mutation_quota(ctx, STRICT_QUOTA_SINCE)
    for i, ct in enumerate(req.topics):
        if i in refused:
            if refused[i] is not None:
                results.append(refused[i])
            continue
        try:
            topic = yield from _create(ctx, ct, req.validate_only, quota)
        except KafkaError as e:
            results.append(R.CreatableTopicResult(name=ct.name, error_code=e.code, error_message=e.message,
                                                  configs=[]))
            continue
        configs = listed.of(topic)
        config_error = 0
        if not ctx.authorize(acl.DESCRIBE_CONFIGS, acl.TOPIC, ct.name, log_denied=False):
            configs, config_error = None, ErrorCode.TOPIC_AUTHORIZATION_FAILED
        results.append(R.CreatableTopicResult(
            name=ct.name, topic_id=topic.topic_id, error_code=0, error_message=None,
            num_partitions=len(topic.partitions) if not req.validate_only else
            (ct.num_partitions if ct.num_partitions > 0 else ctx.broker.config.num_partitions),
            replication_factor=len(topic.partitions[0].replicas) if topic.partitions else
            (ct.replication_factor if ct.replication_factor > 0 else ctx.broker.config.default_replication_factor),
            configs=configs, topic_config_error_code=config_error,
        ))
    return R(throttle_time_ms=ctx.throttle(quota.throttle_ms), topics=results)
