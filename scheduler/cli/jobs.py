"""``scheduler jobs list|show|runs|explain|run|pause|resume|cancel|retry|delete``: the jobs of a
running daemon from a terminal or a script.

Each subcommand is one request to the HTTP API (``run --wait`` follows the run on the event
stream too: :mod:`.jobs_wait`). Which daemon and which token: :mod:`.target`. Tables fit the
terminal (80 columns when the output is not one), long names cut with ``…``; ``--json`` prints
the API's JSON document as it came (``delete``, which the API answers with no body:
``{"id": ID, "deleted": true}``). The exit code says what happened (:mod:`.exits`): 3 no such
job, 4 a conflict, 5 unauthorised, 6 a run that did not succeed.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from scheduler.cli.exits import EXIT_CODES, INTERRUPTED, NOT_FOUND, OK, Failure, exit_table
from scheduler.cli.explain_ko import own_words
from scheduler.cli.http import Client, job_path
from scheduler.cli.jobs_view import (
    deleted_line,
    done_line,
    explanation,
    job_card,
    job_list,
    run_table,
)
from scheduler.cli.jobs_wait import Progress, run_and_wait
from scheduler.cli.tables import safe
from scheduler.cli.target import resolve
from scheduler.errors import JobNotFound
from scheduler.i18n import N_, _
from scheduler.ids import decode
from scheduler.model import JobStatus, JobType

#: How long ``run --wait`` waits by default.
WAIT_TIMEOUT: Final = 3600.0
#: Columns of a table sent to a file or a pipe.
COLUMNS: Final = 80
MAX_LIMIT: Final = 500  # the API's page size limit

HELP: Final = {
    "jobs": N_("list and act on the jobs of a running daemon"),
    "list": N_("list jobs (a page at a time, oldest first)"),
    "show": N_("one job, field by field"),
    "runs": N_("a job's kept run history, newest first"),
    "explain": N_("why a job did or did not run, and when it runs next"),
    "run": N_("run a job now, outside its schedule"),
    "pause": N_("pause a job (a run in flight finishes)"),
    "resume": N_("resume a paused job"),
    "cancel": N_("cancel a job, stopping its run in flight"),
    "retry": N_("re-queue a failed job now"),
    "delete": N_("remove a job (stopping its run in flight)"),
    "id": N_("the job's id (scheduler jobs list shows them)"),
    "config": N_(
        "config file whose [server] says where the daemon is and its token_env "
        "(default /etc/scheduler/config.toml when it exists)"
    ),
    "url": N_("the daemon's base URL (default: from the config, else http://127.0.0.1:8080)"),
    "token-file": N_(
        "file holding the API token (default $CREDENTIALS_DIRECTORY/api_token, "
        "then the variable named by [server] token_env)"
    ),
    "json": N_("print the API's JSON document instead of text"),
    "status": N_("only jobs in this status"),
    "type": N_("only jobs of this type"),
    "task": N_("only jobs that run this task"),
    "workflow": N_("only jobs of this workflow id"),
    "limit": N_("jobs per page, 1..{limit} (default 20)"),
    "page": N_("which page (default 1)"),
    "wait": N_("follow the run with a progress bar until it ends; exit 6 unless it succeeds"),
    "timeout": N_("with --wait: give up waiting after this long (default 1h; 90s, 2m...)"),
    "force": N_("run even if the job's overlap policy says not to"),
    "reason": N_("why, shown with the job"),
    "by": N_("who pauses it, shown by explain (default: your login name)"),
    "until": N_(
        "resume on its own at this time (ISO 8601, local in the job's zone unless it has an offset)"
    ),
    "catch-up": N_("run once for the occurrences missed while paused (default: skip them)"),
}
ID_ACTIONS: Final = (
    "show",
    "runs",
    "explain",
    "run",
    "pause",
    "resume",
    "cancel",
    "retry",
    "delete",
)
PREFIX = "scheduler jobs: "
UNEXPECTED = N_("{url} answered with an unexpected document")
INTERRUPTED_TEXT = EXIT_CODES[INTERRUPTED]
BAD_COUNT = N_("expected a whole number {range}, got {text}")
ONE_OR_MORE = N_("1 or more")


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    duration: Callable[[str], float],
) -> None:
    """``scheduler jobs ...``; ``duration`` parses ``--timeout`` as ``scheduler status`` does."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=None, metavar="FILE", help=_help("config"))
    common.add_argument("--url", default=None, help=_help("url"))
    common.add_argument("--token-file", default=None, metavar="FILE", help=_help("token-file"))
    common.add_argument("--json", action="store_true", help=_help("json"))
    jobs = sub.add_parser(
        "jobs",
        help=_help("jobs"),
        description=_help("jobs"),
        epilog=exit_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = jobs.add_subparsers(dest="action", required=True)
    parsers = {name: _action(actions, name, common) for name in ("list", *ID_ACTIONS)}
    _list_options(parsers["list"])
    _id_options({name: parsers[name] for name in ID_ACTIONS}, duration)


def _list_options(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--status", choices=[s.value for s in JobStatus], help=_help("status"))
    listing.add_argument("--type", choices=[t.value for t in JobType], help=_help("type"))
    listing.add_argument("--task", metavar="NAME", help=_help("task"))
    listing.add_argument("--workflow", metavar="ID", help=_help("workflow"))
    listing.add_argument("--limit", type=_count(MAX_LIMIT), metavar="N", help=_help("limit"))
    listing.add_argument("--page", type=_count(None), metavar="N", help=_help("page"))


def _id_options(
    by_id: Mapping[str, argparse.ArgumentParser], duration: Callable[[str], float]
) -> None:
    for parser in by_id.values():
        parser.add_argument("id", help=_help("id"))
    run = by_id["run"]
    run.add_argument("--wait", action="store_true", help=_help("wait"))
    run.add_argument(
        "--timeout", type=duration, default=WAIT_TIMEOUT, metavar="DURATION", help=_help("timeout")
    )
    run.add_argument("--force", action="store_true", help=_help("force"))
    by_id["pause"].add_argument("--reason", default=None, help=_help("reason"))
    by_id["pause"].add_argument("--until", default=None, help=_help("until"))
    by_id["pause"].add_argument("--by", default=None, help=_help("by"))
    by_id["resume"].add_argument("--catch-up", action="store_true", help=_help("catch-up"))


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    return actions.add_parser(
        name,
        parents=[common],
        help=_help(name),
        description=_help(name),
        epilog=exit_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _help(name: str) -> str:
    """The help of an option or subcommand, in the operator's language."""
    return _(HELP[name]).format(limit=MAX_LIMIT)


def _count(maximum: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1 or (maximum is not None and value > maximum):
            upto = f"1..{maximum}" if maximum is not None else _(ONE_OR_MORE)
            raise argparse.ArgumentTypeError(_(BAD_COUNT).format(range=upto, text=repr(text)))
        return value

    return parse


def jobs_command(
    args: argparse.Namespace,
    *,
    default_config: str,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Run one ``scheduler jobs`` subcommand; the exit code (see :mod:`.exits`)."""
    out = out or _lenient(sys.stdout)
    err = err or _lenient(sys.stderr)
    config = args.config
    if config is None and Path(default_config).is_file():
        config = default_config
    try:
        target = resolve(
            config=config,
            url=args.url,
            token_file=args.token_file,
            environ=os.environ if environ is None else environ,
        )
        command = Command(Client(target), args, out, monotonic)
        return command.run()
    except Failure as failure:
        err.write(PREFIX + safe(failure.line()) + "\n")
        return failure.code
    except KeyboardInterrupt:
        err.write(PREFIX + _(INTERRUPTED_TEXT) + "\n")
        return INTERRUPTED


class Command:
    """One subcommand: its request(s) and what it prints."""

    def __init__(
        self,
        client: Client,
        args: argparse.Namespace,
        out: TextIO,
        monotonic: Callable[[], float],
    ) -> None:
        self.client = client
        self.args = args
        self.out = out
        self.monotonic = monotonic
        self.tty = out.isatty()
        self.columns = shutil.get_terminal_size((COLUMNS, 24)).columns if self.tty else COLUMNS

    def run(self) -> int:
        action: str = self.args.action
        if action == "list":
            return self.listing()
        try:
            decode(self.args.id)  # a malformed id names no job: no request needed to say so
        except JobNotFound as exc:
            raise Failure(exc.message, NOT_FOUND, daemon=True) from None
        if action in ("show", "runs", "explain"):
            return self.read(action)
        if action == "delete":
            return self.delete()
        if action == "run" and self.args.wait:
            return self.run_and_wait()
        return self.act(action)

    def listing(self) -> int:
        args = self.args
        filters = {
            "status": args.status,
            "type": args.type,
            "task": args.task,
            "workflowId": args.workflow,
            "limit": args.limit,
            "page": args.page,
        }
        query = {key: str(value) for key, value in filters.items() if value is not None}
        doc = self.client.call("GET", "/api/jobs", query=query)
        return self.emit(doc, lambda: job_list(doc, self.columns))

    def read(self, action: str) -> int:
        job_id: str = self.args.id
        if action == "show":
            doc = self.client.call("GET", job_path(job_id))
            return self.emit(doc, lambda: job_card(doc))
        if action == "runs":
            doc = self.client.call("GET", job_path(job_id, "runs"))
            return self.emit(doc, lambda: run_table(doc, self.columns))
        doc = self.client.call("GET", job_path(job_id, "explain"))
        return self.emit(doc, lambda: self.explained(doc, job_id))

    def explained(self, doc: Mapping[str, Any], job_id: str) -> str:
        """The explanation as text; in Korean it names the job, which the explanation leaves
        to ``GET /api/jobs/{id}`` (asked only then: English prints the daemon's summary)."""
        if not own_words():
            return explanation(doc)
        name = doc.get("workflowName")
        if not isinstance(name, str):
            job = self.client.call("GET", job_path(job_id))
            name = job.get("workflowName") if isinstance(job, Mapping) else None
        shown = name if isinstance(name, str) and name else job_id
        return explanation(doc, name=shown, now=time.time(), columns=self.columns)

    def act(self, action: str) -> int:
        """run (without --wait), pause, resume, cancel, retry: the job as it is after."""
        args = self.args
        body: dict[str, Any] = {}
        if action == "pause":
            body = {key: getattr(args, key) for key in ("until", "reason")}
            body["by"] = args.by or login_name()
            body = {key: value for key, value in body.items() if value is not None}
        elif action == "resume" and args.catch_up:
            body = {"catchUp": True}
        query = {"force": "true"} if action == "run" and args.force else None
        doc = self.client.call("POST", job_path(args.id, action), query=query, body=body)
        return self.emit(doc, lambda: done_line(action, doc))

    def delete(self) -> int:
        job_id: str = self.args.id
        self.client.call("DELETE", job_path(job_id))
        return self.emit({"id": job_id, "deleted": True}, lambda: deleted_line(job_id))

    def run_and_wait(self) -> int:
        args = self.args
        progress = Progress(self.out, tty=self.tty, columns=self.columns, quiet=args.json)
        return run_and_wait(
            self.client,
            args.id,
            query={"force": "true"} if args.force else None,
            timeout=args.timeout,
            progress=progress,
            monotonic=self.monotonic,
            as_json=args.json,
        )

    def emit(self, doc: Any, text: Callable[[], str]) -> int:
        """The document as JSON with ``--json``, else its text."""
        if not isinstance(doc, dict | list):
            raise Failure(_(UNEXPECTED).format(url=self.client.url))
        self.out.write(json.dumps(doc, indent=2) + "\n" if self.args.json else text())
        return OK


def _lenient(stream: TextIO) -> TextIO:
    """A terminal whose encoding cannot show a name gets ``?`` rather than a traceback."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="replace")
    return stream


def login_name() -> str | None:
    """Who runs this command, for a pause's ``by`` (None where the system cannot say)."""
    try:
        return getpass.getuser() or None
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (3.13 raises OSError)
        return None
