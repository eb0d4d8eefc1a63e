"""Who may talk to the API: the bearer token, the Host check and CORS.

Policy (SPEC "Security"):

- The token comes from the systemd credential ``$CREDENTIALS_DIRECTORY/api_token`` first, else
  from the environment variable named by ``[server] token_env`` (the library already drops that
  variable from the environment jobs inherit). Surrounding whitespace is stripped, because
  credential files usually end with a newline; an empty token counts as none.
- With a token, every request needs ``Authorization: Bearer <token>`` except the status card
  (GET/HEAD ``/api/scheduler``), ``/healthz``, the dashboard's static files (``/`` and
  ``/static/...``) and CORS preflights (browsers never send credentials on those). The header is
  compared as bytes with :func:`hmac.compare_digest`; whatever is wrong with it (missing,
  ``Basic``, empty, huge, not ASCII) the answer is the same 401, never a 500.
- Bound to a non-loopback address without a token the daemon refuses to start.
- On a loopback bind a ``Host`` other than ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port)
  gets 403: a web page whose DNS name was re-pointed at 127.0.0.1 (DNS rebinding) must not reach
  the API through the victim's browser. A request without a Host header cannot come from a
  browser and passes.
- CORS headers are sent only to origins listed in ``cors_origins`` (``"*"`` allows any), and only
  for GET/HEAD and the preflight of a GET: no cross-origin page can change anything.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from aiohttp import hdrs, web

from scheduler.api.errors import Handler
from scheduler.api.keys import SETTINGS, ApiSettings
from scheduler.errors import ConfigError

CREDENTIAL_NAME = "api_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_OPEN_PATHS = frozenset({"/api/scheduler", "/healthz", "/"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def read_token(environ: Mapping[str, str], token_env: str | None) -> str | None:
    """The API token, or None when none is configured. An unreadable credential is an error."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / CREDENTIAL_NAME
        try:
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            token = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot read the API token: {exc}"]) from None
        if token:
            return token
    if token_env:
        return environ.get(token_env, "").strip() or None
    return None


def is_loopback_bind(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token: the API would be open to the network."""
    if token is None and not is_loopback_bind(host):
        raise ConfigError(
            [
                f"server.host: {host!r} is reachable from other machines but no API token is"
                " configured; set one (systemd credential api_token, or the variable named by"
                " server.token_env) or bind 127.0.0.1"
            ]
        )


@lru_cache(maxsize=256)
def host_is_loopback_name(host_header: str) -> bool:
    """``localhost``, ``127.0.0.1`` or ``[::1]``, with or without a port."""
    name, sep, port = host_header.rpartition(":")
    if not sep or name.endswith(":") or (name.startswith("[") and not name.endswith("]")):
        name, port = host_header, ""  # no port (or a bare IPv6 literal, which is not allowed)
    elif not port.isdigit():
        return False
    return name.lower() in LOOPBACK_NAMES


def _is_open(request: web.Request) -> bool:
    if request.method not in _SAFE_METHODS:
        return False
    path = request.path
    return path in _OPEN_PATHS or path.startswith("/static/")


def _authorized(request: web.Request, expected: bytes) -> bool:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    # Non-ASCII bytes arrive as surrogate escapes; turn them back into the bytes that were sent.
    raw = header.encode("utf-8", "surrogateescape")
    scheme, _, credentials = raw.partition(b" ")
    if scheme.lower() != b"bearer" or not credentials:
        return False
    return hmac.compare_digest(credentials.strip(b" "), expected)


def _unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        reason="missing or invalid bearer token",
        headers={"WWW-Authenticate": 'Bearer realm="scheduler"'},
    )


def _origin_allowed(settings: ApiSettings, origin: str) -> bool:
    return "*" in settings.cors_origins or origin in settings.cors_origins


def _preflight(request: web.Request, settings: ApiSettings) -> web.Response:
    origin = request.headers.get(hdrs.ORIGIN, "")
    method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD, "")
    if method.upper() not in _SAFE_METHODS or not _origin_allowed(settings, origin):
        raise web.HTTPForbidden(reason="cross-origin requests are allowed only for GET")
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, HEAD",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "Authorization, If-None-Match, Last-Event-ID",
            hdrs.ACCESS_CONTROL_MAX_AGE: "600",
            hdrs.VARY: "Origin",
        },
    )


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host check, CORS preflight, then the bearer token (see the module's policy)."""
    settings = request.app[SETTINGS]
    if settings.loopback:
        host = request.headers.get(hdrs.HOST)
        if host is not None and not host_is_loopback_name(host):
            raise web.HTTPForbidden(reason="Host is not a loopback name (DNS rebinding guard)")
    if (
        request.method == "OPTIONS"
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        return _preflight(request, settings)
    token = settings.token
    if token is not None and not _is_open(request) and not _authorized(request, token.encode()):
        raise _unauthorized()
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs before headers go out, so streams get them too."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or request.method not in _SAFE_METHODS:
        return
    if _origin_allowed(request.app[SETTINGS], origin):
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "ETag"
        response.headers.add(hdrs.VARY, "Origin")
