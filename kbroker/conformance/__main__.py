"""``python -m kbroker.conformance``: record Kafka's answers, or score a broker against them.

    python -m kbroker.conformance record             start real Kafka, run every scenario, write recorded/
    python -m kbroker.conformance run HOST:PORT      the table for a broker against the recorded answers
    python -m kbroker.conformance live [HOST:PORT]   the same against a real Kafka started now
                                                     (without HOST:PORT: a kbroker started here)
"""

from __future__ import annotations

import argparse
import sys
import time


def record(args) -> int:
    from .realkafka import KAFKA_VERSION, KafkaUnavailable, RealKafka
    from .runner import run_all, save_recorded

    try:
        with RealKafka(secure=True) as k:
            t0 = time.perf_counter()
            answers = run_all(k.bootstrap, args.only, sasl_bootstrap=k.sasl_bootstrap)
            took = time.perf_counter() - t0
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    if args.only:
        from .runner import load_recorded

        merged = load_recorded()
        merged.update(answers)
        answers = merged
    path = save_recorded(answers)
    print(f"recorded {len(answers)} scenario runs of Kafka {KAFKA_VERSION} in {took:.1f} s into {path}")
    return 0


def score(bootstrap: str, theirs: dict, name: str, only: str | None, out: str | None, quiet: bool,
          sasl_bootstrap: str | None = None) -> int:
    from .runner import compare_runs, run_all, table

    ours = run_all(bootstrap, only, sasl_bootstrap=sasl_bootstrap)
    outcomes = compare_runs(ours, theirs)
    text = table(outcomes, name, "Kafka")
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    if not quiet:
        print(text)
    else:
        print(text.splitlines()[-1])
    return 1 if any(o.unknown for o in outcomes) else 0


def run(args) -> int:
    from .runner import load_recorded

    return score(args.bootstrap, load_recorded(), args.name, args.only, args.out, args.quiet, args.sasl)


def live(args) -> int:
    from .realkafka import KafkaUnavailable, RealKafka
    from .runner import run_all

    try:
        with RealKafka(secure=True) as k:
            theirs = run_all(k.bootstrap, args.only, sasl_bootstrap=k.sasl_bootstrap)
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    if args.bootstrap:
        return score(args.bootstrap, theirs, args.name, args.only, args.out, args.quiet, args.sasl)
    import tempfile

    from .runner import kbroker_for_conformance

    with tempfile.TemporaryDirectory(prefix="kbroker-conformance-") as data, kbroker_for_conformance(data) as b:
        return score(b.bootstrap_servers, theirs, "kbroker", args.only, args.out, args.quiet,
                     b.listeners["SASL_PLAINTEXT"])


def add_arguments(p: argparse.ArgumentParser, with_bootstrap: str = "required") -> None:
    if with_bootstrap == "required":
        p.add_argument("bootstrap", metavar="HOST:PORT")
    elif with_bootstrap == "optional":
        p.add_argument("bootstrap", metavar="HOST:PORT", nargs="?")
    p.add_argument("--only", default=None, help="scenarios matching this pattern (e.g. 'produce_*' or 'metadata*@v12')")
    p.add_argument("--name", default="broker", help="what the broker is called in the table")
    p.add_argument("--out", default=None, help="also write the table to this file")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    p.add_argument("--sasl", default=None, metavar="HOST:PORT",
                   help="the broker's SASL_PLAINTEXT listener, set up as realkafka.security_settings says "
                        "(user alice, ACLs on, User:ANONYMOUS a super user); without it the SASL and ACL "
                        "scenarios record that they could not run")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kbroker.conformance")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="start real Kafka and record its answers")
    p.add_argument("--only", default=None)
    add_arguments(sub.add_parser("run", help="score a broker against the recorded answers"))
    add_arguments(sub.add_parser("live", help="score a broker against a real Kafka started now"), "optional")
    args = ap.parse_args(argv)
    return {"record": record, "run": run, "live": live}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
