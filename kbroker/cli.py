"""The ``kbroker`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import BrokerConfig


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run a broker in the foreground")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9092, help="port to bind; 0 takes a free port (default 9092)")
    p.add_argument("--data-dir", default="./data", help="where logs and metadata live (default ./data)")
    p.add_argument("--storage", choices=["segment", "memory"], default="segment",
                   help="segment files on disk (default) or memory only")
    p.add_argument("--advertised-host", default=None, help="host name clients are told to connect to")
    p.add_argument("--num-partitions", type=int, default=1, help="partitions of auto-created topics (num.partitions)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kbroker", description="A Kafka-compatible broker for tests and laptops")
    sub = ap.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    args = ap.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


def _serve(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("kbroker").warning(
            "listening on %s without authentication: anyone who can reach it can read and write", args.host)
    config = BrokerConfig(
        host=args.host, port=args.port, data_dir=args.data_dir, storage=args.storage,
        advertised_host=args.advertised_host, num_partitions=args.num_partitions,
    )
    from .broker import serve

    try:
        import uvloop  # optional extra: kbroker[fast]
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
