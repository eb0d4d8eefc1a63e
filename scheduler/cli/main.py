"""``scheduler`` command line: run, check, next, status, jobs, cluster."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scheduler.cli.jobs import add_parser as add_jobs_parser
from scheduler.cli.status import WAIT_TIMEOUT
from scheduler.i18n import _, localize_argparse

DEFAULT_CONFIG = "/etc/scheduler/config.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scheduler", description=_("A job-scheduler daemon."))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help=_("run the daemon in the foreground"))
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=_("config file"))

    check = sub.add_parser("check", help=_("validate the config and show the next runs"))
    check.add_argument(
        "-c",
        "--config",
        default=None,
        help=_("config file (default {path}, unless --state)").format(path=DEFAULT_CONFIG),
    )
    check.add_argument("--state", default=None, help=_("verify this state directory (read only)"))
    check.add_argument(
        "--connect",
        action="store_true",
        help=_("also connect to the [cluster] database and check its schema version"),
    )

    nxt = sub.add_parser("next", help=_("preview the run times of a schedule"))
    nxt.add_argument("spec", help=_("cron, '@every 1h', an RRULE, or a JSON schedule object"))
    nxt.add_argument("--tz", default=None, help=_("IANA time zone (default Asia/Seoul)"))
    nxt.add_argument(
        "--after", default=None, help=_("start after TIME (local in --tz unless offset)")
    )
    nxt.add_argument("-n", type=int, default=10, help=_("how many run times"))
    nxt.add_argument("--json", action="store_true", help=_("print a JSON array of instants"))

    status = sub.add_parser("status", help=_("show the status of a running daemon"))
    status.add_argument("--url", default="http://127.0.0.1:8080", help=_("daemon base URL"))
    status.add_argument(
        "--wait", action="store_true", help=_("first wait until the daemon is ready (/healthz)")
    )
    status.add_argument(
        "--timeout",
        type=_seconds,
        default=WAIT_TIMEOUT,
        help=_("with --wait: give up after this long (default {seconds}s; 90s, 2m...)").format(
            seconds=f"{WAIT_TIMEOUT:g}"
        ),
    )
    add_jobs_parser(sub, duration=_seconds)
    _cluster_parser(sub)
    return parser


def _cluster_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser("cluster", help=_("manage cluster mode's PostgreSQL schema"))
    actions = cluster.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help=_("create or migrate the schema (idempotent)"))
    status = actions.add_parser("status", help=_("nodes, heartbeats, runs in flight, job counts"))
    status.add_argument("--json", action="store_true", help=_("print one JSON document"))
    move = actions.add_parser("import", help=_("move a single box's state into an empty schema"))
    move.add_argument("--state", required=True, help=_("the single box's state directory"))
    for action in (init, status, move):
        action.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=_("config file"))


def _cluster(args: argparse.Namespace) -> int:
    """``scheduler cluster ...``; without the optional PostgreSQL driver, say how to get it."""
    from scheduler.cluster import CLUSTER_MODULES, NO_CLUSTER_EXTRA

    try:
        from scheduler.cluster.cli import cluster_command
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in CLUSTER_MODULES:
            raise
        print(f"scheduler cluster: {NO_CLUSTER_EXTRA}", file=sys.stderr)
        return 1
    from scheduler.cli.problems import problem_text

    return cluster_command(
        args.action,
        args.config,
        as_json=getattr(args, "json", False),
        state=getattr(args, "state", None),
        problem_text=problem_text,
    )


def _seconds(text: str) -> float:
    """A duration argument (``30``, ``90s``, ``2m``) as seconds; argparse reports errors."""
    from scheduler.durations import parse_duration
    from scheduler.errors import InvalidInput

    try:
        return parse_duration(text, field="--timeout")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix("--timeout: ")) from None


def main(argv: Sequence[str] | None = None) -> int:
    localize_argparse()
    args = _parser().parse_args(argv)
    if args.command == "next":
        from scheduler.cli.next import next_command

        return next_command(args.spec, tz=args.tz, after=args.after, n=args.n, as_json=args.json)
    if args.command == "check":
        from scheduler.cli.check import check_command

        config = args.config
        if config is None and (args.state is None or args.connect):
            config = DEFAULT_CONFIG  # `check --state DIR` alone checks only the directory
        return check_command(config, state=args.state, connect=args.connect)
    if args.command == "run":
        from scheduler.daemon.process import run_command

        return run_command(args.config)
    if args.command == "status":
        from scheduler.cli.status import status_command

        return status_command(args.url, wait=args.timeout if args.wait else None)
    if args.command == "jobs":
        from scheduler.cli.jobs import jobs_command

        return jobs_command(args, default_config=DEFAULT_CONFIG)
    if args.command == "cluster":
        return _cluster(args)
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
