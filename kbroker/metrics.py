"""One broker's Prometheus metrics: ``GET /metrics`` on the control listener (control_http.py).

Names are Kafka's JMX metrics as the Prometheus JMX exporter's common Kafka rules translate them
(``kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=t><>Count`` becomes
``kafka_server_brokertopicmetrics_messagesin_total{topic="t"}``), so dashboards built on that exporter mostly
work; consumer group lag takes kafka_exporter's names (Kafka brokers export no lag). README.md lists them.

Theory of operation. Each broker has its own ``CollectorRegistry`` (several brokers can live in one process)
holding one custom collector, which builds every family when scraped. Most values are read from the
broker's state at that moment (offsets, sizes, groups, connections, waiting fetches). What cannot be read
afterwards -- requests, their latency and errors, records and bytes in and out -- is counted on the request
path by ``request_done`` into plain dicts and lists: one event loop writes them, no lock, no
prometheus_client object touched per request (a labelled Counter's ``inc`` takes a lock and a lookup).
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING

from .histogram import BOUNDS_MS, LOG_FLUSH, LatencyHistogram
from .loop_lag import LoopLag
from .storage.file_region import FileRegion
from .wire.error_codes import ErrorCode
from .wire.message import Message
from .wire.messages import NAMES

if TYPE_CHECKING:
    from prometheus_client.core import HistogramMetricFamily

# prometheus_client (with the http.server, urllib, wsgiref and email modules it imports: about 8 MB of RSS) is
# imported at the first scrape, not at start: a broker nobody scrapes never loads it.

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PRODUCE, FETCH, API_VERSIONS, JOIN_GROUP = 0, 1, 18, 11
# Kafka's RequestMetrics name a consumer's Fetch "FetchConsumer" (a follower's is "FetchFollower").
REQUEST_NAMES = {k: ("FetchConsumer" if k == FETCH else v) for k, v in NAMES.items()}
# Kafka's purgatories (DelayedOperationPurgatory's delayedOperation label) for the requests that wait.
DELAYED_OPERATIONS = {FETCH: "Fetch", PRODUCE: "Produce", JOIN_GROUP: "Rebalance"}

_I32 = struct.Struct(">i")
_BATCH_LENGTH_AT, _RECORDS_COUNT_AT, _BATCH_HEADER = 8, 57, 61
_ERROR_NAMES: dict[int, str] = {}


def _error_name(code: int) -> str:
    name = _ERROR_NAMES.get(code)
    if name is None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"UNKNOWN_{code}"
        _ERROR_NAMES[code] = name
    return name


def _record_count(records) -> int:
    """Records in a Produce partition's batches (each batch header says how many it holds)."""
    n, pos, end = 0, 0, len(records)
    while pos + _BATCH_HEADER <= end:
        n += _I32.unpack_from(records, pos + _RECORDS_COUNT_AT)[0]
        pos += 12 + _I32.unpack_from(records, pos + _BATCH_LENGTH_AT)[0]
    return n


def _records_bytes(records) -> int:
    if records is None:
        return 0
    if type(records) is list:  # a Fetch answer in pieces: bytes, views, file regions (sendfile)
        return sum(p.size if type(p) is FileRegion else len(p) for p in records)
    return len(records)


_PLANS: dict[type, tuple[bool, tuple[str, ...]]] = {}


def _plan(obj) -> tuple[bool, tuple[str, ...]]:
    """Per message class: whether it has an error code, and the fields that may hold messages. Learnt from
    the first instance: a field holding a number, a string or bytes never holds a list of messages (the
    schema fixes its type); one that is None (a nullable array) stays a candidate."""
    cls = type(obj)
    fields = tuple(s for s in cls.__slots__ if s not in ("error_code", "records")
                   and (getattr(obj, s, None) is None or type(getattr(obj, s)) is list))
    plan = _PLANS[cls] = ("error_code" in cls.__slots__, fields)
    return plan


def _count_errors(obj, out: dict) -> None:
    """Every ``error_code`` in a response, nested ones included, as Kafka's ``AbstractResponse.errorCounts``."""
    has_error, fields = _PLANS.get(type(obj)) or _plan(obj)
    if has_error:
        code = obj.error_code
        out[code] = out.get(code, 0) + 1
    for f in fields:
        v = getattr(obj, f, None)
        if v and type(v) is list and isinstance(v[0], Message):
            for item in v:
                _count_errors(item, out)


class TopicCounters:
    __slots__ = ("messages_in", "bytes_in", "bytes_out", "produce_requests", "failed_produce_requests",
                 "fetch_requests", "failed_fetch_requests")

    def __init__(self):
        self.messages_in = self.bytes_in = self.bytes_out = 0
        self.produce_requests = self.failed_produce_requests = 0
        self.fetch_requests = self.failed_fetch_requests = 0


class BrokerMetrics:
    """The counters kept on the request path, and the registry a scrape reads."""

    def __init__(self, broker_server):
        self.broker_server = broker_server
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = {}  # (request name, version) -> count
        self.latency: dict[str, LatencyHistogram] = {}  # request name -> total time
        self.errors: dict[tuple[str, int], int] = {}  # (request name, error code) -> count
        self.topics: dict[str, TopicCounters] = {}
        self.delayed: dict[str, int] = {}  # purgatory -> requests waiting in it now
        self.loop_lag = LoopLag()  # sampled while the broker runs (BrokerServer.start / _shut_down)
        self.registry = None  # prometheus_client's CollectorRegistry, built at the first scrape

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self.registry is None:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(_Collector(self))
        return generate_latest(self.registry)

    # -- the request path ----------------------------------------------------------------------

    def request_done(self, conn, header, start_ns: int, request, response) -> None:
        """A request's answer is ready (``response`` None: none is sent, acks=0)."""
        api_key = header.api_key
        name = REQUEST_NAMES.get(api_key, "Unknown")
        key = (name, header.api_version)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        h = self.latency.get(name)
        if h is None:
            h = self.latency[name] = LatencyHistogram()
        h.observe_ms((time.perf_counter_ns() - start_ns) / 1e6)
        # Produce and Fetch, the requests of every record, count their errors as they walk their partitions.
        if api_key == PRODUCE:
            self._produced(name, request, response)
            return
        if api_key == FETCH:
            self._fetched(name, response)
            return
        if response is not None:
            counts: dict[int, int] = {}
            _count_errors(response, counts)
            self._count(name, counts)
        if api_key == API_VERSIONS:
            conn.client_software = (request.client_software_name or "unknown",
                                    request.client_software_version or "unknown")
            conn.client_id = header.client_id

    def _count(self, name: str, counts: dict[int, int]) -> None:
        errors = self.errors
        for code, n in counts.items():
            k = (name, code)
            errors[k] = errors.get(k, 0) + n

    def wait_started(self, api_key: int) -> None:
        op = DELAYED_OPERATIONS.get(api_key)
        if op is not None:
            self.delayed[op] = self.delayed.get(op, 0) + 1

    def wait_ended(self, api_key: int) -> None:
        op = DELAYED_OPERATIONS.get(api_key)
        if op is not None:
            self.delayed[op] -= 1

    def _topic(self, name: str) -> TopicCounters:
        t = self.topics.get(name)
        if t is None:
            t = self.topics[name] = TopicCounters()
        return t

    def _topic_name(self, name, topic_id) -> str:
        if name:
            return name
        t = self.broker_server.state.topics.by_id.get(topic_id)
        return t.name if t is not None else str(topic_id)

    def _produced(self, name: str, request, response) -> None:
        """Records and bytes in, and the answer's error codes (a Produce answer's are its partitions')."""
        answers = response.responses if response is not None else None
        counts: dict[int, int] = {}
        for i, td in enumerate(request.topic_data):
            t = self._topic(self._topic_name(td.name, td.topic_id))
            parts = answers[i].partition_responses if answers is not None else None
            for j, pd in enumerate(td.partition_data):
                t.produce_requests += 1
                code = parts[j].error_code if parts is not None else 0
                if parts is not None:
                    counts[code] = counts.get(code, 0) + 1
                if code:
                    t.failed_produce_requests += 1
                elif pd.records is not None:
                    t.messages_in += _record_count(pd.records)
                    t.bytes_in += len(pd.records)
        if counts:
            self._count(name, counts)

    def _fetched(self, name: str, response) -> None:
        """Bytes out, and the answer's error codes (a Fetch answer's own and its partitions')."""
        if response is None:
            return
        counts = {response.error_code: 1}
        for td in response.responses:
            t = self._topic(self._topic_name(td.topic, td.topic_id))
            for pd in td.partitions:
                t.fetch_requests += 1
                code = pd.error_code
                counts[code] = counts.get(code, 0) + 1
                if code:
                    t.failed_fetch_requests += 1
                else:
                    t.bytes_out += _records_bytes(pd.records)
        self._count(name, counts)

    # -- read at scrape time -------------------------------------------------------------------

    def totals(self) -> dict:
        """What the console's charts plot: totals since start (the page takes differences)."""
        t = list(self.topics.values())
        return {
            "time": time.time(),
            "messages_in": sum(x.messages_in for x in t),
            "bytes_in": sum(x.bytes_in for x in t),
            "bytes_out": sum(x.bytes_out for x in t),
            "requests": {name: n for name, n in self._requests_by_name().items()},
            "latency_ms": {name: {"count": h.count, "sum": h.sum_ms, "buckets": list(h.counts)}
                           for name, h in self.latency.items()},
            "latency_bounds_ms": BOUNDS_MS,
        }

    def _requests_by_name(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (name, _v), n in self.requests.items():
            out[name] = out.get(name, 0) + n
        return out


def _histogram(name: str, doc: str, labels: list[str], series) -> HistogramMetricFamily:
    from prometheus_client.core import HistogramMetricFamily

    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in series:
        fam.add_metric(values, h.cumulative(), sum_value=h.sum_ms)
    return fam


class _Collector:
    """Builds every family from the counters and the broker's state when scraped."""

    def __init__(self, metrics: BrokerMetrics):
        self.m = metrics

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        m = self.m
        yield from self._requests(m)
        yield from self._topics(m)
        bs = m.broker_server
        state = bs.state
        if state is not None:
            yield from self._logs(state)
            yield from self._groups(state)
            yield from self._purgatory(m, state)
            yield from self._client_quotas(state)
        yield from self._connections(bs)
        yield _histogram("kafka_log_logflushstats_logflushrateandtimems",
                         "fsync latency of log segments in ms, for the whole process (LogFlushRateAndTimeMs)",
                         [], [([], LOG_FLUSH)])
        yield from self._loop_lag(m.loop_lag)
        yield from self._gc()
        up = GaugeMetricFamily("kbroker_start_time_seconds", "when the broker started (Unix time)")
        up.add_metric([], m.started)
        yield up

    def _loop_lag(self, lag):
        """The event loop's lag (loop_lag.py): all of it, and ``held``: the part the loop's thread was running
        (the broker's own work, not waiting for a core)."""
        from prometheus_client.core import GaugeMetricFamily

        for suffix, what, histogram, longest, recent in (
                ("", "how late the event loop ran a timer armed every 20 ms", lag.histogram, lag.max_ms,
                 lag.recent_max_ms),
                ("_held", "the part of the event loop's lag its thread was running (not waiting for a core)",
                 lag.held_histogram, lag.held_max_ms, lag.recent_held_max_ms)):
            yield _histogram(f"kbroker_event_loop_lag{suffix}_ms", f"{what}, in ms", [], [([], histogram)])
            g = GaugeMetricFamily(f"kbroker_event_loop_lag{suffix}_max_ms", f"the longest since start: {what}")
            g.add_metric([], longest)
            yield g
            g = GaugeMetricFamily(f"kbroker_event_loop_lag{suffix}_recent_max_ms",
                                  f"the longest in the last 5 to 10 seconds: {what}")
            g.add_metric([], recent)
            yield g

    def _gc(self):
        """The interpreter's garbage collector, for the whole process (gc_settings.py): collections per
        generation (prometheus_client's names) and the objects ``kbroker serve`` froze at start-up."""
        import gc

        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = [CounterMetricFamily(f"python_gc_{name}", what, labels=["generation"]) for name, what in (
            ("collections", "collections of each generation since the process started"),
            ("objects_collected", "objects the collections of each generation found unreachable and freed"),
            ("objects_uncollectable", "unreachable objects the collections of each generation could not free"))]
        for generation, stats in enumerate(gc.get_stats()):
            for family, key in zip(families, ("collections", "collected", "uncollectable")):
                family.add_metric([str(generation)], stats[key])
        yield from families
        frozen = GaugeMetricFamily("kbroker_python_gc_frozen_objects",
                                   "objects in the permanent generation, which no collection examines")
        frozen.add_metric([], gc.get_freeze_count())
        yield frozen

    def _requests(self, m):
        from prometheus_client.core import CounterMetricFamily

        c = CounterMetricFamily("kafka_network_requestmetrics_requests", "requests answered (RequestsPerSec)",
                                labels=["request", "version"])
        for (name, version), n in sorted(m.requests.items()):
            c.add_metric([name, str(version)], n)
        yield c
        e = CounterMetricFamily("kafka_network_requestmetrics_errors",
                                "error codes in answers, NONE included (ErrorsPerSec)", labels=["request", "error"])
        for (name, code), n in sorted(m.errors.items()):
            e.add_metric([name, _error_name(code)], n)
        yield e
        yield _histogram("kafka_network_requestmetrics_totaltimems",
                         "time from a request's arrival to its answer being ready, in ms (TotalTimeMs)",
                         ["request"], [([name], h) for name, h in sorted(m.latency.items())])

    def _topics(self, m):
        from prometheus_client.core import CounterMetricFamily

        fields = [("messagesin", "messages_in", "records appended (MessagesInPerSec)"),
                  ("bytesin", "bytes_in", "record batch bytes appended (BytesInPerSec)"),
                  ("bytesout", "bytes_out", "record batch bytes fetched by consumers (BytesOutPerSec)"),
                  ("totalproducerequests", "produce_requests", "partitions produced to (TotalProduceRequestsPerSec)"),
                  ("failedproducerequests", "failed_produce_requests",
                   "partitions whose produce failed (FailedProduceRequestsPerSec)"),
                  ("totalfetchrequests", "fetch_requests", "partitions fetched (TotalFetchRequestsPerSec)"),
                  ("failedfetchrequests", "failed_fetch_requests",
                   "partitions whose fetch failed (FailedFetchRequestsPerSec)")]
        for metric, attr, doc in fields:
            c = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{metric}", doc, labels=["topic"])
            total = 0
            for topic, t in sorted(m.topics.items()):
                n = getattr(t, attr)
                total += n
                c.add_metric([topic], n)
            # Kafka's all-topics meter has no topic tag: the exporter gives it the same name, unlabelled.
            c.add_sample(c.name + "_total", {}, total)
            yield c

    def _logs(self, state):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {
            "logstartoffset": GaugeMetricFamily("kafka_log_log_logstartoffset", "first offset kept (LogStartOffset)",
                                                labels=["topic", "partition"]),
            "logendoffset": GaugeMetricFamily("kafka_log_log_logendoffset", "next offset to be written (LogEndOffset)",
                                              labels=["topic", "partition"]),
            "size": GaugeMetricFamily("kafka_log_log_size", "bytes stored (Size)", labels=["topic", "partition"]),
            "numlogsegments": GaugeMetricFamily("kafka_log_log_numlogsegments", "segments (NumLogSegments)",
                                                labels=["topic", "partition"]),
        }
        hw = GaugeMetricFamily("kafka_cluster_partition_highwatermark", "high watermark",
                               labels=["topic", "partition"])
        count = GaugeMetricFamily("kafka_controller_kafkacontroller_globaltopiccount", "topics (GlobalTopicCount)")
        parts = GaugeMetricFamily("kafka_controller_kafkacontroller_globalpartitioncount",
                                  "partitions (GlobalPartitionCount)")
        under = GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                                  "partitions led here whose ISR lacks a replica (UnderReplicatedPartitions)")
        offline = GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                                    "partitions without a live leader, on the controller (OfflinePartitionsCount)")
        shrinks = CounterMetricFamily("kafka_server_replicamanager_isrshrinks",
                                      "ISR shrinks by this broker as leader (IsrShrinksPerSec)")
        expands = CounterMetricFamily("kafka_server_replicamanager_isrexpands",
                                      "ISR expansions by this broker as leader (IsrExpandsPerSec)")
        n_parts = n_under = n_offline = n_shrinks = n_expands = 0
        live = set(state.controller.live_broker_ids())
        for name, topic in sorted(state.topics.by_name.items()):
            for p in topic.partitions:
                n_parts += 1
                if p.leader_id not in live:
                    n_offline += 1
                if p.log is None:
                    continue  # not a replica here
                if p.is_leader and len(p.isr) < len(p.replicas):
                    n_under += 1
                n_shrinks += p.isr_shrinks
                n_expands += p.isr_expands
                labels = [name, str(p.index)]
                families["logstartoffset"].add_metric(labels, p.log_start_offset)
                families["logendoffset"].add_metric(labels, p.log_end_offset)
                families["size"].add_metric(labels, p.log.size_bytes())
                families["numlogsegments"].add_metric(labels, len(p.log.segment_infos()))
                hw.add_metric(labels, p.high_watermark)
        count.add_metric([], len(state.topics.by_name))
        parts.add_metric([], n_parts)
        under.add_metric([], n_under)
        offline.add_metric([], n_offline if state.controller.controller_id == state.node_id else 0)
        shrinks.add_metric([], n_shrinks)
        expands.add_metric([], n_expands)
        yield from families.values()
        yield from (hw, count, parts, under, offline, shrinks, expands)

    def _groups(self, state):
        from prometheus_client.core import GaugeMetricFamily

        coordinator = state.groups
        listed = coordinator.list_groups(None, None)
        by_state: dict[str, int] = {}
        st = GaugeMetricFamily("kbroker_consumergroup_state", "1 for the group's current state",
                               labels=["consumergroup", "state"])
        members = GaugeMetricFamily("kafka_consumergroup_members", "members of the group", labels=["consumergroup"])
        current = GaugeMetricFamily("kafka_consumergroup_current_offset", "committed offset",
                                    labels=["consumergroup", "topic", "partition"])
        lag = GaugeMetricFamily("kafka_consumergroup_lag", "high watermark minus committed offset",
                                labels=["consumergroup", "topic", "partition"])
        lag_sum = GaugeMetricFamily("kafka_consumergroup_lag_sum", "lag over the topic's partitions",
                                    labels=["consumergroup", "topic"])
        for g in sorted(listed.groups, key=lambda g: g.group_id):
            by_state[g.state] = by_state.get(g.state, 0) + 1
            st.add_metric([g.group_id, g.state], 1)
            members.add_metric([g.group_id], coordinator.member_count(g.group_id))
            sums: dict[str, int] = {}
            for row in group_lag(state, g.group_id):
                labels = [g.group_id, row["topic"], str(row["partition"])]
                current.add_metric(labels, row["offset"])
                if row["lag"] is not None:
                    lag.add_metric(labels, row["lag"])
                    sums[row["topic"]] = sums.get(row["topic"], 0) + row["lag"]
            for topic, n in sorted(sums.items()):
                lag_sum.add_metric([g.group_id, topic], n)
        yield from (st, members, current, lag, lag_sum)
        prefix = "kafka_coordinator_group_groupmetadatamanager_"
        total = GaugeMetricFamily(prefix + "numgroups", "groups (NumGroups)")
        total.add_metric([], len(listed.groups))
        yield total
        for state_name in ("PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"):
            f = GaugeMetricFamily(prefix + "numgroups" + state_name.lower(), f"groups {state_name}")
            f.add_metric([], by_state.get(state_name, 0))
            yield f

    def _purgatory(self, m, state):
        from prometheus_client.core import GaugeMetricFamily

        size = GaugeMetricFamily("kafka_server_delayedoperationpurgatory_purgatorysize",
                                 "watchers of waiting requests: a long-polling fetch watches each partition it asked "
                                 "for (PurgatorySize)", labels=["delayedOperation"])
        size.add_metric(["Fetch"], sum(len(p._waiters) for t in state.topics.by_name.values()
                                       for p in t.partitions))
        yield size
        ops = GaugeMetricFamily("kafka_server_delayedoperationpurgatory_numdelayedoperations",
                                "requests waiting now (NumDelayedOperations)", labels=["delayedOperation"])
        for op in sorted(set(DELAYED_OPERATIONS.values()) | set(m.delayed)):
            ops.add_metric([op], m.delayed.get(op, 0))
        yield ops

    def _client_quotas(self, state):
        """Per quota type and sensor (user, client id), as Kafka's quota sensors (type=Produce|Fetch|Request|
        ControllerMutation): the measured rate (bytes/s, percent of a thread, partitions/s) and the throttle time
        handed out; and the connections an address's connection_creation_rate refused."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rate = GaugeMetricFamily("kbroker_client_quota_rate", "rate measured by a client quota sensor (byte-rate, "
                                 "request-time, mutation-rate)", labels=["quota_type", "user", "client_id"])
        throttle = CounterMetricFamily("kbroker_client_quota_throttle_time_ms", "throttle time given to clients "
                                       "(throttle-time)", labels=["quota_type", "user", "client_id"])
        for quota_type, manager in state.client_quotas.managers().items():
            for (user, client_id), value in manager.rates().items():
                rate.add_metric([quota_type, user, client_id], value)
            for (user, client_id), sensor in manager.sensors.items():
                throttle.add_metric([quota_type, user, client_id], sensor.throttle_ms_total)
        yield rate
        yield throttle
        refused = CounterMetricFamily("kbroker_connection_quota_ip_throttled", "connections refused by their "
                                      "address's connection_creation_rate")
        quotas = getattr(state, "connection_quotas", None)
        refused.add_metric([], quotas.ip_throttled if quotas is not None else 0)
        yield refused

    def _connections(self, bs):
        from prometheus_client.core import GaugeMetricFamily

        count = GaugeMetricFamily("kafka_server_socket_server_metrics_connection_count", "open connections",
                                  labels=["listener", "networkProcessor"])
        software = GaugeMetricFamily("kafka_server_socket_server_metrics_connections_software",
                                     "open connections by the client software they named in ApiVersions (KIP-511)",
                                     labels=["clientSoftwareName", "clientSoftwareVersion", "listener",
                                             "networkProcessor"])
        for server in bs.servers:
            listener = server.listener.name if server.listener is not None else "PLAINTEXT"
            count.add_metric([listener, "0"], len(server.connections))
            by_software: dict[tuple[str, str], int] = {}
            for conn in list(server.connections):
                sw = getattr(conn, "client_software", None) or ("unknown", "unknown")
                by_software[sw] = by_software.get(sw, 0) + 1
            for (name, version), n in sorted(by_software.items()):
                software.add_metric([name, version, listener, "0"], n)
        yield count
        yield software


def group_lag(state, group_id: str, leader_partition=None) -> list[dict]:
    """A group's committed offsets with each partition's high watermark and lag (None: the partition is
    gone, or has no leader here). ``leader_partition(topic, index)``: where a cluster in one process finds a
    partition's leader (the control plane's); by default this broker's partitions that it leads."""
    offsets = state.groups.fetch_offsets(group_id, None)
    out = []
    for (topic, partition), om in sorted(offsets.offsets.items()):
        if leader_partition is not None:
            p = leader_partition(topic, partition)
        else:
            t = state.topics.get(topic)
            p = t.partitions[partition] if t is not None and partition < len(t.partitions) else None
            p = p if p is not None and p.is_leader else None
        end = p.high_watermark if p is not None else None
        out.append({"topic": topic, "partition": partition, "offset": om.offset, "high_watermark": end,
                    "lag": None if end is None or om.offset < 0 else max(0, end - om.offset)})
    return out
