"""Command-line tools that work against any Kafka-compatible broker, real Kafka included:

    kbroker topics list | create NAME [--partitions N] [--config K=V ...] | describe NAME | delete NAME
    kbroker produce TOPIC [--keyed]              one record per stdin line, KEY<TAB>VALUE with --keyed
    kbroker consume TOPIC [--from-beginning] [--group G] [--max N] [--print-key] [--timeout-ms MS]
    kbroker groups list | describe G

They are built on kafka-python, a pure-Python client that speaks to every broker version, so that kbroker's
own code is not the only thing vouching for kbroker.
"""

from __future__ import annotations

import sys
import time

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def add_parsers(sub) -> None:
    def common(p):
        p.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help=f"HOST:PORT (default {DEFAULT_BOOTSTRAP})")

    t = sub.add_parser("topics", help="list, create, describe or delete topics")
    tsub = t.add_subparsers(dest="action", required=True)
    common(tsub.add_parser("list", help="topic names, one per line"))
    c = tsub.add_parser("create", help="create a topic")
    c.add_argument("name")
    c.add_argument("--partitions", type=int, default=1)
    c.add_argument("--replication-factor", type=int, default=1)
    c.add_argument("--config", action="append", default=[], metavar="K=V")
    common(c)
    d = tsub.add_parser("describe", help="partitions and configs of a topic")
    d.add_argument("name")
    common(d)
    x = tsub.add_parser("delete", help="delete a topic")
    x.add_argument("name")
    common(x)

    p = sub.add_parser("produce", help="produce stdin lines as records")
    p.add_argument("topic")
    p.add_argument("--keyed", action="store_true", help="lines are KEY<TAB>VALUE")
    common(p)

    q = sub.add_parser("consume", help="print records, one per line")
    q.add_argument("topic")
    q.add_argument("--from-beginning", action="store_true")
    q.add_argument("--group", default=None, help="consume as a member of this group (commits offsets)")
    q.add_argument("--max", type=int, default=None, help="stop after this many records")
    q.add_argument("--print-key", action="store_true", help="print KEY<TAB>VALUE")
    q.add_argument("--timeout-ms", type=int, default=None, help="stop after this long without a record")
    common(q)

    g = sub.add_parser("groups", help="list or describe consumer groups")
    gsub = g.add_subparsers(dest="action", required=True)
    common(gsub.add_parser("list", help="group ids, one per line"))
    gd = gsub.add_parser("describe", help="state, members and committed offsets of a group")
    gd.add_argument("group")
    common(gd)


def run(args) -> int:
    try:
        if args.command == "topics":
            return _topics(args)
        if args.command == "produce":
            return _produce(args)
        if args.command == "consume":
            return _consume(args)
        if args.command == "groups":
            return _groups(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a tool reports, it does not dump a traceback
        print(f"kbroker {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 2


def _admin(args):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="kbroker-cli")


def _topics(args) -> int:
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    admin = _admin(args)
    try:
        if args.action == "list":
            for name in sorted(admin.list_topics()):
                print(name)
        elif args.action == "create":
            configs = dict(kv.split("=", 1) for kv in args.config)
            admin.create_topics([NewTopic(args.name, args.partitions, args.replication_factor, topic_configs=configs)])
            print(f"created {args.name}", file=sys.stderr)
        elif args.action == "delete":
            admin.delete_topics([args.name])
            print(f"deleted {args.name}", file=sys.stderr)
        elif args.action == "describe":
            (desc,) = admin.describe_topics([args.name])
            if desc.get("error_code"):
                print(f"kbroker topics: {args.name}: error {desc['error_code']}", file=sys.stderr)
                return 1
            print(f"topic {args.name} partitions {len(desc['partitions'])}")
            for p in sorted(desc["partitions"], key=lambda p: _first(p, "partition_index", "partition")):
                print(f"  partition {_first(p, 'partition_index', 'partition')} leader {_first(p, 'leader_id', 'leader')}"
                      f" replicas {_first(p, 'replica_nodes', 'replicas')} isr {_first(p, 'isr_nodes', 'isr')}")
            res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, args.name)])
            configs = _config_entries(res, args.name)
            for name in sorted(configs):
                print(f"  {name}={configs[name]}")
    finally:
        admin.close()
    return 0


def _first(d: dict, *keys):
    """kafka-python 2 and 3 name the partition fields differently."""
    for k in keys:
        if k in d:
            return d[k]
    return None


def _config_entries(res, name) -> dict[str, str]:
    """kafka-python's describe_configs result, across its versions' shapes."""
    out: dict[str, str] = {}
    items = res if isinstance(res, list) else [res]
    for r in items:
        if isinstance(r, dict):
            for _type, by_name in r.items():
                for entries in by_name.values():
                    for k, v in entries.items():
                        out[k] = v["value"] if isinstance(v, dict) else v
        elif hasattr(r, "resources"):
            for resource in r.resources:
                for entry in resource[4]:
                    out[entry[0]] = entry[1]
    return out


def _produce(args) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, client_id="kbroker-cli", linger_ms=5, acks="all")
    futures = []
    count = 0
    last_report = time.monotonic()
    try:
        for line in sys.stdin:
            line = line.rstrip("\n")
            if args.keyed:
                key, sep, value = line.partition("\t")
                if not sep:
                    print(f"kbroker produce: line {count + 1} has no TAB; sent with a null key", file=sys.stderr)
                    key, value = None, line
                futures.append(producer.send(args.topic, key=None if key is None else key.encode(),
                                             value=value.encode()))
            else:
                futures.append(producer.send(args.topic, value=line.encode()))
            count += 1
            if len(futures) >= 10000:
                for f in futures:
                    f.get(30)
                futures.clear()
            if time.monotonic() - last_report > 2 and sys.stderr.isatty():
                print(f"\r{count} records sent", end="", file=sys.stderr)
                last_report = time.monotonic()
        producer.flush(30)
        for f in futures:
            f.get(30)
    finally:
        producer.close()
    print(f"{count} records produced to {args.topic}", file=sys.stderr)
    return 0


def _consume(args) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, client_id="kbroker-cli", group_id=args.group,
                             enable_auto_commit=args.group is not None,
                             auto_offset_reset="earliest" if args.from_beginning else "latest")
    seen = 0
    try:
        if args.group:
            consumer.subscribe([args.topic])
        else:
            parts = consumer.partitions_for_topic(args.topic) or set()
            deadline = time.monotonic() + 10
            while not parts and time.monotonic() < deadline:
                consumer.topics()  # refreshes metadata; auto-creation may be under way
                parts = consumer.partitions_for_topic(args.topic) or set()
            tps = [TopicPartition(args.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            if args.from_beginning:
                consumer.seek_to_beginning(*tps)
            else:
                consumer.seek_to_end(*tps)
        idle_since = time.monotonic()
        while args.max is None or seen < args.max:
            batch = consumer.poll(timeout_ms=200)
            if not batch:
                if args.timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= args.timeout_ms:
                    break
                continue
            idle_since = time.monotonic()
            for _tp, records in sorted(batch.items(), key=lambda kv: kv[0].partition):
                for r in records:
                    value = "" if r.value is None else r.value.decode("utf-8", "replace")
                    if args.print_key:
                        key = "" if r.key is None else r.key.decode("utf-8", "replace")
                        print(f"{key}\t{value}", flush=False)
                    else:
                        print(value, flush=False)
                    seen += 1
                    if args.max is not None and seen >= args.max:
                        break
                if args.max is not None and seen >= args.max:
                    break
            sys.stdout.flush()
        if args.group:
            consumer.commit()
    finally:
        consumer.close()
    return 0


def _groups(args) -> int:
    admin = _admin(args)
    try:
        if args.action == "list":
            for group_id in sorted(_list_group_ids(admin)):
                print(group_id)
        else:
            state, protocol, members = _describe_group(admin, args.group)
            print(f"group {args.group} state {state} protocol {protocol}")
            for member_id, client_id, client_host in members:
                print(f"  member {member_id} client {client_id} host {client_host}")
            for tp, om in sorted(_group_offsets(admin, args.group).items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
                print(f"  {tp.topic}-{tp.partition} committed {om.offset}")
    finally:
        admin.close()
    return 0


# kafka-python 3 renamed its group admin calls and returns dicts; 2.x returns tuples and namedtuples.

def _list_group_ids(admin) -> list[str]:
    if hasattr(admin, "list_groups"):
        return [g["group_id"] for g in admin.list_groups()]
    return [group_id for group_id, _ptype in admin.list_consumer_groups()]


def _describe_group(admin, group_id: str):
    if hasattr(admin, "describe_groups"):
        d = admin.describe_groups([group_id])[group_id]
        members = [(m["member_id"], m["client_id"], m["client_host"]) for m in d.get("members", [])]
        return d.get("group_state"), d.get("protocol_data"), members
    (d,) = admin.describe_consumer_groups([group_id])
    return d.state, d.protocol, [(m.member_id, m.client_id, m.client_host) for m in d.members]


def _group_offsets(admin, group_id: str) -> dict:
    if hasattr(admin, "list_group_offsets"):
        return admin.list_group_offsets({group_id: None}).get(group_id, {})
    return admin.list_consumer_group_offsets(group_id)
