"""ListOffsets (2): v1-11. Timestamps -1 (latest: the high watermark, or the last stable offset for
read_committed), -2 (earliest: the log start offset), -3 (the record with the largest timestamp, v7+,
KIP-734), -4 (earliest local, v8+, the log start offset on a broker without tiered storage), -5 (latest
tiered, v9+, KIP-1005: offset -1, as a broker without tiered storage answers); any other timestamp finds
the first record whose timestamp is at or after it, or offset -1 when there is none. v10 adds a timeout
for remote lookups (KIP-1075), which never happen here. v11 adds -6 (earliest pending upload, KIP-1023):
offset, timestamp and leader epoch -1, as Kafka 4.4 answers for a topic without tiered storage; before v11,
-6 is UNSUPPORTED_VERSION for that partition, as Kafka answers.
Authorisation: DESCRIBE on each topic, else TOPIC_AUTHORIZATION_FAILED (as KafkaApis).
A stored batch that cannot be decoded while searching by timestamp (a compressed payload that does not
decompress: kbroker checks a batch's header and CRC on append, not its compressed records) answers that
partition CORRUPT_MESSAGE, as Kafka maps a CorruptRecordException, with one log line.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode
from ..partition import get_partition_or_error, request_epoch
from ..records.errors import CorruptRecordError
from ..security import acl
from ..wire.messages import list_offsets as API

log = logging.getLogger(__name__)
R = API.ListOffsetsResponse
LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED, EARLIEST_PENDING_UPLOAD = -1, -2, -3, -4, -5, -6


def handle(ctx, req: API.ListOffsetsRequest) -> R:
    broker = ctx.broker
    read_committed = req.isolation_level == 1
    topics = []
    for lt in req.topics:
        topic = broker.topics.get(lt.name)
        parts = []
        topics.append(R.ListOffsetsTopicResponse(name=lt.name, partitions=parts))
        if not ctx.authorize(acl.DESCRIBE, acl.TOPIC, lt.name):
            parts.extend(R.ListOffsetsPartitionResponse(partition_index=lp.partition_index,
                                                        error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                         for lp in lt.partitions)
            continue
        for lp in lt.partitions:
            idx = lp.partition_index
            p = get_partition_or_error(topic, idx, request_epoch(lp.current_leader_epoch))
            if isinstance(p, int):
                parts.append(R.ListOffsetsPartitionResponse(partition_index=idx, error_code=p))
                continue
            ts = lp.timestamp
            if ts == EARLIEST_PENDING_UPLOAD:
                parts.append(R.ListOffsetsPartitionResponse(
                    partition_index=idx, error_code=0 if ctx.version >= 11 else ErrorCode.UNSUPPORTED_VERSION,
                    timestamp=-1, offset=-1, leader_epoch=-1))
                continue
            if ts == LATEST:
                offset, found_ts = (p.last_stable_offset if read_committed else p.high_watermark), -1
            elif ts in (EARLIEST, EARLIEST_LOCAL) and (ts != EARLIEST_LOCAL or ctx.version >= 8):
                offset, found_ts = p.log_start_offset, -1
            elif ts == LATEST_TIERED and ctx.version >= 9:
                offset, found_ts = -1, -1
            elif ts == MAX_TIMESTAMP and ctx.version >= 7:
                found_ts, offset = p.max_timestamp()
            else:
                try:
                    found_ts, offset = p.offset_for_timestamp(ts)
                except CorruptRecordError as e:
                    log.warning("ListOffsets %s-%d by timestamp: %s", lt.name, idx, e)
                    parts.append(R.ListOffsetsPartitionResponse(partition_index=idx,
                                                                error_code=ErrorCode.CORRUPT_MESSAGE))
                    continue
            # No such offset (no record at or after the time): no epoch either, as Kafka's empty answer.
            epoch = p.leader_epoch if offset >= 0 else -1
            parts.append(R.ListOffsetsPartitionResponse(partition_index=idx, error_code=0, timestamp=found_ts,
                                                        offset=offset, leader_epoch=epoch))
    return R(throttle_time_ms=0, topics=topics)
