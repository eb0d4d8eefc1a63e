"""The exit codes of ``scheduler jobs``, and the one way a command stops early.

A script reads what happened from the code alone: not found, a conflict and a refused token
each have their own, and ``run --wait`` tells a failed run from a daemon that could not be
reached. The table is shown by ``scheduler jobs --help`` and in docs/cli.md.
"""

from __future__ import annotations

from typing import Final

from scheduler.i18n import N_, _

OK, ERROR, USAGE, NOT_FOUND, CONFLICT, UNAUTHORISED, RUN_FAILED = range(7)
INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it
#: Exit code -> what it means.
EXIT_CODES: Final = {
    OK: N_("done (run --wait: the run succeeded)"),
    ERROR: N_("the daemon is unreachable, or answered something unexpected"),
    USAGE: N_("bad arguments, or a value the daemon refused (the message names it)"),
    NOT_FOUND: N_("no such job"),
    CONFLICT: N_("the job's state does not allow this, or it is defined in config.toml"),
    UNAUTHORISED: N_("no token, a wrong token, or a request the daemon forbids"),
    RUN_FAILED: N_("run --wait: the run failed or was cancelled, or --timeout passed first"),
    INTERRUPTED: N_("interrupted (Ctrl-C); a run already asked for goes on in the daemon"),
}
#: What a refusal of the daemon means, said before its message (which stays the daemon's
#: English, naming the field) in a language other than English; English needs no lead-in.
LEADS: Final = {
    USAGE: N_("the daemon refused the request"),
    NOT_FOUND: N_("no such job"),
    CONFLICT: N_("not possible in the job's state"),
    UNAUTHORISED: N_("not allowed"),
    ERROR: N_("the daemon answered with an error"),
}
#: The exit code of each refusal of the daemon; any other error status is ERROR.
FOR_STATUS: Final = {
    400: USAGE,
    401: UNAUTHORISED,
    403: UNAUTHORISED,
    404: NOT_FOUND,
    409: CONFLICT,
}


class Failure(Exception):
    """Why the command stops: one line for stderr and the exit code."""

    def __init__(self, message: str, code: int = ERROR, *, daemon: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.daemon = daemon  # the message is the daemon's own (English, machine-readable)

    def line(self) -> str:
        """The message in the operator's language: the daemon's own message as it came, after
        a lead-in saying what it means (a translated one only: in English it says it all)."""
        if not self.daemon or self.code not in LEADS:
            return self.message
        lead = LEADS[self.code]
        said = _(lead)
        return self.message if said == lead else f"{said}: {self.message}"


def exit_table() -> str:
    """The table as ``--help`` shows it."""
    rows = "".join(f"  {code:>3}  {_(text)}\n" for code, text in EXIT_CODES.items())
    return _("exit codes:") + "\n" + rows
