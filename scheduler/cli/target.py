"""Which daemon ``scheduler jobs`` talks to, and the token it proves itself with.

Where: ``--url``, else the ``[server]`` table of the config file (``-c``; by default
``/etc/scheduler/config.toml`` when it exists, else the defaults): ``http://HOST:PORT``, with a
wildcard bind (``0.0.0.0``, ``::``) reached at ``127.0.0.1``. Only that table is read, checked
key by key as the daemon checks it: loading the whole file would import every python task's
module into a command that only talks to the daemon.

The token, the first one found: ``--token-file FILE``, the systemd credential
``$CREDENTIALS_DIRECTORY/api_token`` (the name the daemon reads: :mod:`scheduler.api.security`),
then the variable named by ``[server] token_env``, as the daemon looks for its own. Surrounding
whitespace is stripped (files end with a newline). The token is never printed: messages name
where it came from instead.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from scheduler.cli.exits import Failure
from scheduler.i18n import N_, _

if TYPE_CHECKING:
    from scheduler.config.model import ServerConfig

#: The daemon's credential name (``scheduler.api.security.CREDENTIAL_NAME``, a module that
#: loads aiohttp, which this command does without; a test holds the two equal).
CREDENTIAL_NAME: Final = "api_token"
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - read, not bound

CANNOT_READ = N_("{path}: cannot read the file: {reason}")
NOT_A_TABLE = N_("{path}: server: expected a table ([server])")
CREDENTIAL_UNREADABLE = N_("{source}: cannot read the API token: {reason}")
NO_SUCH_FILE = N_("no such file")
EMPTY_FILE = N_("{source}: the file is empty")
NOT_ONE_LINE = N_("{source}: the API token must be one line")


@dataclass(frozen=True)
class Target:
    """The daemon to talk to and how to prove who we are."""

    url: str
    token: str | None = None
    source: str | None = None  # where the token came from, for messages
    token_env: str | None = None  # the config's variable, for the hint of a 401


def resolve(
    *,
    config: str | None,
    url: str | None,
    token_file: str | None,
    environ: Mapping[str, str],
) -> Target:
    """The target from the options, the config file (None: the defaults) and ``environ``."""
    from scheduler.config.model import ServerConfig  # only here: other commands stay light

    server = ServerConfig() if config is None else read_server(config)
    found = read_token(token_file, environ, server.token_env)
    token, source = found if found is not None else (None, None)
    return Target(url or server_url(server), token, source, server.token_env)


def read_server(path: str) -> ServerConfig:
    """The ``[server]`` table of a config file; a :class:`Failure` naming each bad key."""
    from scheduler.checks import read_keys
    from scheduler.config import keys
    from scheduler.config.load import problem_line, syntax_problem
    from scheduler.config.model import ServerConfig
    from scheduler.errors import InvalidInput

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise Failure(_(CANNOT_READ).format(path=path, reason=reason)) from None
    try:
        table = tomllib.loads(text).get("server", {})
    except tomllib.TOMLDecodeError as exc:
        raise Failure(syntax_problem(path, text, exc)) from None
    if not isinstance(table, Mapping):
        raise Failure(_(NOT_A_TABLE).format(path=path))
    problems: list[InvalidInput] = []
    values = read_keys(table, keys.SERVER, "server.", problems)
    if problems:
        raise Failure("; ".join(problem_line(path, problem) for problem in problems))
    return ServerConfig(**values)


def server_url(server: ServerConfig) -> str:
    """``http://HOST:PORT`` of a daemon bound as ``server`` says, from this machine."""
    host = server.host.strip()
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{server.port}"


def read_token(
    token_file: str | None, environ: Mapping[str, str], token_env: str | None
) -> tuple[str, str] | None:
    """``(token, where it came from)``, or None when none is given anywhere."""
    if token_file is not None:
        source = f"--token-file {token_file}"
        token = _read_file(Path(token_file), source, missing_ok=False)
        if not token:
            raise Failure(_(EMPTY_FILE).format(source=source))
        return token, source
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / CREDENTIAL_NAME
        token = _read_file(path, str(path), missing_ok=True)
        if token:
            return token, f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}"
    if token_env:
        token = environ.get(token_env, "").strip()
        if token:
            _check_one_line(token, f"${token_env}")
            return token, f"${token_env}"
    return None


def _read_file(path: Path, source: str, *, missing_ok: bool) -> str:
    """The file's text, stripped; a missing file is empty when ``missing_ok``."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if missing_ok:
            return ""
        missing = _(CREDENTIAL_UNREADABLE).format(source=source, reason=_(NO_SUCH_FILE))
        raise Failure(missing) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise Failure(_(CREDENTIAL_UNREADABLE).format(source=source, reason=reason)) from None
    _check_one_line(token, source)
    return token


def _check_one_line(token: str, source: str) -> None:
    if "\n" in token or "\r" in token:
        raise Failure(_(NOT_ONE_LINE).format(source=source))
