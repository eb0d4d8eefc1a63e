"""``scheduler`` command line: run, check, next, status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_CONFIG = "/etc/scheduler/config.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scheduler", description="A job-scheduler daemon.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")

    check = sub.add_parser("check", help="validate the config and show the next runs")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")
    check.add_argument("--state", default=None, help="also verify the state directory")

    nxt = sub.add_parser("next", help="preview the run times of a schedule")
    nxt.add_argument("spec", help="cron, '@every 1h', an RRULE, or a JSON schedule object")
    nxt.add_argument("--tz", default=None, help="IANA time zone (default Asia/Seoul)")
    nxt.add_argument("--after", default=None, help="start after TIME (local in --tz unless offset)")
    nxt.add_argument("-n", type=int, default=10, help="how many run times")
    nxt.add_argument("--json", action="store_true", help="print a JSON array of instants")

    status = sub.add_parser("status", help="show the status of a running daemon")
    status.add_argument("--url", default="http://127.0.0.1:8080", help="daemon base URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "next":
        from scheduler.preview import next_command

        return next_command(args.spec, tz=args.tz, after=args.after, n=args.n, as_json=args.json)
    if args.command == "check":
        from scheduler.check import check_command

        return check_command(args.config, state=args.state)
    if args.command == "run":
        from scheduler.daemon import run_command

        return run_command(args.config)
    if args.command == "status":
        from scheduler.status_cli import status_command

        return status_command(args.url)
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
