"""``GET /`` and ``GET /static/{path}``: the dashboard, shipped inside the package.

A few files (``index.html``, ``app.js``, ``charts.js``, ``app.css``) with no build step, the
charting library in ``vendor/`` (uPlot, MIT, its version in ``vendor/README``) and the page's
words in ``i18n/`` (one JSON catalogue per language, English and Korean, and ``i18n.js`` that
reads them), shipped inside the package: nothing is fetched from elsewhere, so the page works
offline. They are read once at import, served from memory with an explicit content type
(never guessed from the host's mimetypes database), an ETag and ``Cache-Control: no-cache``
(a browser revalidates, so an upgrade shows at once). Only those names exist under
``/static/``: nothing on disk can be reached by a crafted path. The page's
Content-Security-Policy allows only its own scripts, styles and API (the catalogues are
fetched from there too), so even a job name that looked like HTML could never run as code
(uPlot sets its sizes through the CSSOM, which that policy allows, never through style
attributes).

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

_TYPES: Final = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "json": "application/json",
}
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


#: The folders under ``static`` whose files are served too (``/static/vendor/...``, and the
#: message catalogues ``/static/i18n/en.json`` and ``ko.json`` with the script that reads them).
_FOLDERS: Final = ("vendor", "i18n")


def load_assets() -> dict[str, Asset]:
    """Every servable file of the ``static`` directory and its :data:`_FOLDERS`, by path
    (``app.js``, ``vendor/uPlot.iife.min.js``)."""
    static = resources.files("scheduler.api") / "static"
    folders = [("", static), *((f"{name}/", static / name) for name in _FOLDERS)]
    assets = {}
    for prefix, folder in folders:
        for entry in folder.iterdir():
            kind = _TYPES.get(entry.name.rpartition(".")[2])
            if kind is None or not entry.is_file():
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
            assets[prefix + entry.name] = Asset(body, kind, etag)
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


@routes.route("GET", "/static/{path:.+}", allow_head=True)
async def static(request: web.Request) -> web.Response:
    asset = ASSETS.get(request.match_info["path"])
    if asset is None:
        raise web.HTTPNotFound(reason="no such file")
    return _serve(request, asset)
