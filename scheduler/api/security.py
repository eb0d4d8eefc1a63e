"""Who may talk to the API: the bearer token, the Host check, cross-site requests and CORS.

Policy (SPEC "Security"):

- The token comes from the systemd credential ``$CREDENTIALS_DIRECTORY/api_token`` first, else
  from the environment variable named by ``[server] token_env`` (the library already drops that
  variable from the environment jobs inherit). Surrounding whitespace is stripped, because
  credential files usually end with a newline; an empty token counts as none.
- With a token, every request needs ``Authorization: Bearer <token>`` except the status card
  (GET/HEAD ``/api/scheduler``), ``/healthz``, the dashboard's static files (``/`` and
  ``/static/...``) and CORS preflights (browsers never send credentials on those). The header is
  compared as bytes with :func:`hmac.compare_digest`; whatever is wrong with it (missing,
  ``Basic``, empty, huge, not ASCII) the answer is the same 401, never a 500. (A header too big
  for the HTTP parser never gets here: :mod:`.server` answers it, 401 for ``Authorization``.)
- Bound to a non-loopback address without a token the daemon refuses to start.
- On a loopback bind a ``Host`` other than ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port)
  gets 403: a web page whose DNS name was re-pointed at 127.0.0.1 (DNS rebinding) must not reach
  the API through the victim's browser. A request without a Host header cannot come from a
  browser and passes.
- Cross-site requests (CSRF): without a token (the default) any page the operator visits could
  otherwise POST to ``http://127.0.0.1:8080`` and pause, resume or clean the scheduler. A request
  that may change state (any method but GET, HEAD and OPTIONS) is refused with 403 when the
  browser says it comes from elsewhere: ``Sec-Fetch-Site`` other than ``same-origin`` or
  ``none``, or (from browsers that do not send that header) an ``Origin`` that is ``null`` or
  whose host and port differ from the ``Host`` the request was sent to. The dashboard, served by
  the daemon itself, is same-origin (``http://127.0.0.1:PORT`` or ``http://localhost:PORT``);
  clients that send neither header (curl, scripts, other servers) are not browsers and pass.
- Those requests must also be JSON: POST, PUT and PATCH need ``Content-Type: application/json``
  (or ``application/merge-patch+json``) even with an empty body, and a DELETE that carries a
  type must carry that one; anything else is 415. An HTML form can only send
  ``application/x-www-form-urlencoded``, ``multipart/form-data`` or ``text/plain``, and a script
  that sends JSON to another site needs a CORS preflight, which is refused: so no other page
  can make a browser send one of these requests even if it hid its origin.
- CORS headers are sent only to origins listed in ``cors_origins`` (``"*"`` allows any), only on
  the routes listed in ``cors_routes`` (the status card by default: jobs, payloads, metrics and
  events stay unreadable to other sites), and only for GET/HEAD and the preflight of a GET.
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
JSON_TYPES = frozenset({"application/json", "application/merge-patch+json"})
_OPEN_PATHS = frozenset({"/api/scheduler", "/healthz", "/"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
_NEED_JSON = frozenset({"POST", "PUT", "PATCH"})
_SAME_SITE = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of our own pages


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


def origin_host(origin: str) -> str | None:
    """``host[:port]`` of an ``Origin`` header (lower case), or None for ``null`` or junk."""
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or "/" in rest:
        return None
    return rest.lower()


def is_cross_site(request: web.Request) -> bool:
    """Whether a browser says this request comes from a page of another origin."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in _SAME_SITE
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return False  # not a browser, or a same-origin GET: nothing to fear
    host = request.headers.get(hdrs.HOST)
    return host is None or origin_host(origin) != host.strip().lower()


def _check_change(request: web.Request) -> None:
    """CSRF guard for requests that may change state (see the module's policy)."""
    if is_cross_site(request):
        raise web.HTTPForbidden(
            reason="a page of another site cannot change the scheduler (cross-site request)"
        )


def _check_json(request: web.Request) -> None:
    if request.match_info.http_exception is not None:
        return  # no such route or method: its 404 or 405 says more than a 415 would
    declared = hdrs.CONTENT_TYPE in request.headers
    checked = request.method in _NEED_JSON or declared or request.body_exists
    if checked and (not declared or request.content_type not in JSON_TYPES):
        raise web.HTTPUnsupportedMediaType(
            reason="send Content-Type: application/json (even with an empty body)"
        )


def _preflight(request: web.Request, settings: ApiSettings) -> web.Response:
    origin = request.headers.get(hdrs.ORIGIN, "")
    method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD, "")
    if (
        request.path not in settings.cors_routes
        or method.upper() not in _SAFE_METHODS
        or not _origin_allowed(settings, origin)
    ):
        raise web.HTTPForbidden(
            reason="cross-origin requests are allowed only to read the routes in cors_routes"
        )
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


def check_host(request: web.Request, settings: ApiSettings) -> None:
    """The DNS rebinding guard of a loopback bind (see the module's policy); also run by the
    status card's fast path (:func:`scheduler.api.app.edge_middleware`)."""
    if settings.loopback:
        host = request.headers.get(hdrs.HOST)
        if host is not None and not host_is_loopback_name(host):
            raise web.HTTPForbidden(reason="Host is not a loopback name (DNS rebinding guard)")


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host check, CORS preflight, cross-site refusal, the bearer token, then the JSON media
    type of a change (see the module's policy)."""
    settings = request.app[SETTINGS]
    check_host(request, settings)
    if (
        request.method == "OPTIONS"
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        return _preflight(request, settings)
    changes = request.method not in _READ_ONLY
    if changes:
        _check_change(request)
    token = settings.token
    if token is not None and not _is_open(request) and not _authorized(request, token.encode()):
        raise _unauthorized()
    if changes:
        _check_json(request)
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs before headers go out, so streams get them too."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or request.method not in _SAFE_METHODS:
        return
    settings = request.app[SETTINGS]
    if request.path in settings.cors_routes and _origin_allowed(settings, origin):
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "ETag"
        response.headers.add(hdrs.VARY, "Origin")
