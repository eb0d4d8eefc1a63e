"""``GET /`` and ``GET /static/{path}``: the dashboard, shipped inside the package.

Three files (``index.html``, ``app.js``, ``app.css``) with no build step and nothing fetched
from elsewhere, so the page works offline. They are read once at import, served from memory
with an explicit content type (never guessed from the host's mimetypes database), an ETag and
``Cache-Control: no-cache`` (a browser revalidates, so an upgrade shows at once). Only those
names exist under ``/static/``: nothing on disk can be reached by a crafted path. The page's
Content-Security-Policy allows only its own scripts, styles and API, so even a job name that
looked like HTML could never run as code.

Authentication: the security middleware lets ``/`` and ``/static/...`` through without a token
(a browser cannot add a header to a page load); the page asks for the token when the API
answers 401.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Final, NamedTuple

from aiohttp import web

routes = web.RouteTableDef()

_TYPES: Final = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Asset(NamedTuple):
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of the ``static`` directory, by name."""
    assets = {}
    for entry in (resources.files("scheduler.api") / "static").iterdir():
        kind = _TYPES.get(entry.name.rpartition(".")[2])
        if kind is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        assets[entry.name] = Asset(body, kind, etag)
    return assets


ASSETS: Final = load_assets()


def _serve(request: web.Request, asset: Asset, extra: dict[str, str] | None = None) -> web.Response:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        **(extra or {}),
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


@routes.route("GET", "/", allow_head=True)
async def page(request: web.Request) -> web.Response:
    return _serve(request, ASSETS["index.html"], _PAGE_HEADERS)


@routes.route("GET", "/static/{path}", allow_head=True)
async def static(request: web.Request) -> web.Response:
    asset = ASSETS.get(request.match_info["path"])
    if asset is None:
        raise web.HTTPNotFound(reason="no such file")
    return _serve(request, asset)
