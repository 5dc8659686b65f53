"""The ``kbroker`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import cli_tools
from .releases import RELEASES
from .config import BrokerConfig, apply_settings, read_properties, settings_from_env


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run a broker in the foreground")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to bind; 0 takes a free port (default 9092)")
    p.add_argument("--data-dir", default=None, help="where logs and metadata live (default ./data)")
    p.add_argument("--storage", choices=["segment", "memory"], default=None,
                   help="segment files on disk (default) or memory only")
    p.add_argument("--advertised-host", default=None, help="host name clients are told to connect to")
    p.add_argument("--num-partitions", type=int, default=None,
                   help="partitions of auto-created topics (num.partitions, default 1)")
    p.add_argument("--fsync", choices=["always", "interval", "never"], default=None,
                   help="when appended records are fsynced (default never; see the README)")
    p.add_argument("--emulate-kafka", metavar="VERSION", default=None, choices=sorted(RELEASES),
                   help="advertise the API versions of this Apache Kafka release (" + ", ".join(RELEASES) + ")")
    p.add_argument("--config", metavar="FILE", default=None, help="a server.properties-style file of Kafka settings")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="a Kafka setting, e.g. --set log.retention.ms=60000 (repeatable)")
    p.add_argument("--control-port", type=int, default=None,
                   help="serve the HTTP control plane (faults, inspection) on this port; 0 takes a free one")
    p.add_argument("--control-host", default=None,
                   help="address of the control plane (default 127.0.0.1; beyond loopback a token is required)")
    p.add_argument("--control-token", metavar="file:PATH|env:NAME", default=None,
                   help="require this bearer token on every control-plane request, read from a file or an "
                        "environment variable (never given on the command line)")
    p.add_argument("--control-allow-host", metavar="NAME", action="append", default=[],
                   help="another name the control plane answers to in the Host header (repeatable)")
    p.add_argument("--schema-registry-port", type=int, default=None,
                   help="serve a Confluent-compatible Schema Registry on this port; 0 takes a free one")
    p.add_argument("--schema-registry-host", default=None, help="address of the Schema Registry (default 127.0.0.1)")
    p.add_argument("--sasl-user", metavar="NAME:PASSWORD", action="append", default=[],
                   help="a user who may log in with SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (repeatable; "
                        "stored salted in the data directory)")
    p.add_argument("--acl", action="store_true",
                   help="switch ACL authorisation on (as authorizer.class.name does); see super.users and "
                        "allow.everyone.if.no.acl.found")
    p.add_argument("--brokers", type=int, default=1,
                   help="run a cluster of this many brokers in this process (node ids from node.id, ports from "
                        "--port up, data in <data dir>/broker-<node id>; default 1)")
    p.add_argument("--node-id", type=int, default=None, help="this broker's node id (node.id / broker.id)")
    p.add_argument("--rack", default=None,
                   help="this broker's rack (broker.rack); with --brokers N, one rack per broker, comma-separated "
                        "in node-id order (e.g. --rack a,b,c), or one for all")
    p.add_argument("--cluster", metavar="postgresql://...", default=None,
                   help="join the cluster whose metadata is in this PostgreSQL database, as a broker in its own "
                        "process (kbroker.cluster.url); each broker its own --node-id, --data-dir and port")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _certs_parser(sub) -> None:
    p = sub.add_parser("certs", help="write a throwaway CA, server and client certificate for TLS tests")
    p.add_argument("dir", help="directory to write ca.pem, server.pem, client.pem (and split key/cert files)")
    p.add_argument("--host", action="append", default=[],
                   help="another name or address the server certificate is valid for (repeatable; "
                        "localhost, 127.0.0.1 and ::1 are always in)")


def _conformance_parser(sub) -> None:
    from .conformance.__main__ import add_arguments

    p = sub.add_parser("conformance", help="score a Kafka-compatible broker against Apache Kafka's recorded answers")
    add_arguments(p)


def build_config(args, environ=None) -> BrokerConfig:
    """Settings, later ones winning: the config file, KAFKA_* environment variables, --set, then flags."""
    config = BrokerConfig(data_dir="./data")
    settings: dict[str, str] = {}
    if args.config:
        settings.update(read_properties(args.config))
    settings.update(settings_from_env(environ))
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"kbroker: --set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        settings[k.strip()] = v
    try:
        apply_settings(config, settings)
    except ValueError as e:
        raise SystemExit(f"kbroker: {e}") from None
    flags = {"host": args.host, "port": args.port, "data_dir": args.data_dir, "storage": args.storage,
             "advertised_host": args.advertised_host, "num_partitions": args.num_partitions, "fsync": args.fsync,
             "control_port": args.control_port, "control_host": args.control_host,
             "emulate_kafka": args.emulate_kafka,
             "node_id": getattr(args, "node_id", None), "cluster_url": getattr(args, "cluster", None),
             "rack": getattr(args, "rack", None),
             "schema_registry_port": getattr(args, "schema_registry_port", None),
             "schema_registry_host": getattr(args, "schema_registry_host", None)}
    for attr, value in flags.items():
        if value is not None:
            setattr(config, attr, value)
    for item in getattr(args, "sasl_user", None) or []:
        name, sep, password = item.partition(":")
        if not sep or not name or not password:
            raise SystemExit("kbroker: --sasl-user expects NAME:PASSWORD")
        config.sasl_users.append((name, password))
    if getattr(args, "acl", False):
        config.authorizer_enabled = True
    from .control_http import is_loopback, read_token

    try:
        config.control_token = read_token(getattr(args, "control_token", None), environ)
    except (OSError, ValueError) as e:
        raise SystemExit(f"kbroker: {e}") from None
    config.control_allow_hosts = list(getattr(args, "control_allow_host", None) or [])
    if config.control_port is not None and not is_loopback(config.control_host) and config.control_token is None:
        raise SystemExit(f"kbroker: the control plane may listen on {config.control_host} (beyond loopback) only "
                         f"with a token: --control-token file:PATH or env:NAME")
    from .security import SecurityConfigError
    from .security.listeners import resolve_listeners

    try:
        resolve_listeners(config)  # says what is wrong with the listeners now, not at start
    except (SecurityConfigError, ValueError) as e:
        raise SystemExit(f"kbroker: {e}") from None
    return config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kbroker", description="A Kafka-compatible broker for tests and laptops")
    sub = ap.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _certs_parser(sub)
    cli_tools.add_parsers(sub)
    _conformance_parser(sub)
    args = ap.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "certs":
        return _certs(args)
    if args.command == "conformance":
        from .conformance.__main__ import run

        return run(args)
    return cli_tools.run(args)


def _certs(args) -> int:
    from .security.certs import write_certs

    paths = write_certs(args.dir, hosts=("localhost", "127.0.0.1", "::1", *args.host))
    for name in ("ca.pem", "server.pem", "client.pem"):
        print(paths[name])
    return 0


def _serve(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = build_config(args)  # binding beyond loopback without authentication is warned about in serve()
    from .serve import serve
    from .security import SecurityConfigError

    try:
        try:
            import uvloop  # optional extra: kbroker[fast]
        except ImportError:
            asyncio.run(serve(config, brokers=args.brokers))
        else:
            uvloop.run(serve(config, brokers=args.brokers))
    except SecurityConfigError as e:  # a key file that cannot be read, a truststore missing, ...
        raise SystemExit(f"kbroker: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
