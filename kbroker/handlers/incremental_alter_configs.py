"""IncrementalAlterConfigs (44): v0-1 (KIP-339). Per key: SET (0), DELETE (1, back to the default),
APPEND (2) and SUBTRACT (3) for list configs (``cleanup.policy``). Validated as a whole before anything
changes (INVALID_CONFIG); ``validate_only`` changes nothing. Broker resources: not supported.
Authorisation: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for the broker, on the cluster
(CLUSTER_AUTHORIZATION_FAILED), as KafkaApis.
"""

from __future__ import annotations

from ..errors import ErrorCode, KafkaError
from ..security import acl
from ..topic_config import TOPIC_CONFIGS, validate_topic_configs
from ..wire.messages import incremental_alter_configs as API

R = API.IncrementalAlterConfigsResponse
TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _apply(topic, configs) -> dict[str, str]:
    new = dict(topic.configs)
    for c in configs:
        d = TOPIC_CONFIGS.get(c.name)
        if d is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {c.name}")
        if c.config_operation == SET:
            if c.value is None:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Null value not supported for {c.name}")
            new[c.name] = c.value
        elif c.config_operation == DELETE:
            new.pop(c.name, None)
        elif c.config_operation in (APPEND, SUBTRACT):
            if d.type != "list":
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"Config value append is not allowed for config key: {c.name}")
            items = [x.strip() for x in topic.config(c.name).split(",") if x.strip()]
            given = [x.strip() for x in (c.value or "").split(",") if x.strip()]
            if c.config_operation == APPEND:
                items += [x for x in given if x not in items]
            else:
                items = [x for x in items if x not in given]
            new[c.name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {c.config_operation}")
    validate_topic_configs(new)
    return new


def handle(ctx, req: API.IncrementalAlterConfigsRequest) -> R:
    broker = ctx.broker
    out = []
    for res in req.resources:
        err, msg = 0, None
        try:
            if res.resource_type == TOPIC and not ctx.authorize(acl.ALTER_CONFIGS, acl.TOPIC, res.resource_name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, None)
            if res.resource_type == BROKER and not ctx.authorize_cluster(acl.ALTER_CONFIGS):
                raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
            if res.resource_type == TOPIC:
                topic = broker.topics.get(res.resource_name)
                if topic is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                     f"Topic {res.resource_name} does not exist")
                new = _apply(topic, res.configs)
                if not req.validate_only:
                    broker.set_topic_configs(topic, new)
            elif res.resource_type == BROKER:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "kbroker does not support dynamic broker configs")
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {res.resource_type}")
        except KafkaError as e:
            err, msg = e.code, e.message
        out.append(R.AlterConfigsResourceResponse(error_code=err, error_message=msg,
                                                  resource_type=res.resource_type, resource_name=res.resource_name))
    return R(throttle_time_ms=0, responses=out)
