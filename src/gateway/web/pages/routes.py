"""The web pages (``/``, ``/classroom``, ``/teacher``, ``/admin``) and their static files.

Plain files shipped in the package (``web/static``; ``static/client`` is the JavaScript
client, ``clients/js/src``), read once, served with a
Content-Security-Policy that forbids inline scripts and allows connections to
this origin only, ``nosniff`` and ``no-referrer``. ``/`` is the page for a
browser and the JSON index for anything that does not ask for HTML.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
PAGES = {"/classroom": "classroom.html", "/teacher": "teacher.html", "/admin": "admin.html"}


class Files:
    """Every shipped file, by its path under ``/static/``, read once."""

    def __init__(self, root: Path = STATIC) -> None:
        self._files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(_files_under(root)):
            kind = TYPES.get(path.suffix)
            if kind is not None:
                body = path.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                self._files[path.relative_to(root).as_posix()] = (body, kind, etag)

    def response(self, request: web.Request, name: str) -> web.Response:
        found = self._files.get(name)
        if found is None:
            raise web.HTTPNotFound()
        body, kind, etag = found
        headers = {**SECURITY_HEADERS, "ETag": etag}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)


def _files_under(root: Path) -> list[Path]:
    """Every file under ``root``, through linked directories too (``client/`` is the
    JavaScript client's own ``clients/js/src`` in a source checkout)."""
    return [
        Path(folder, name) for folder, _, names in os.walk(root, followlinks=True) for name in names
    ]


def wants_html(request: web.Request) -> bool:
    """A browser navigating here (``Accept`` names HTML before JSON)."""
    accept = request.headers.get("Accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def add_routes(
    router: web.UrlDispatcher,
    index_json: Callable[[web.Request], Awaitable[web.StreamResponse]],
    files: Files | None = None,
) -> None:
    shipped = files or Files()

    async def index(request: web.Request) -> web.StreamResponse:
        if wants_html(request):
            return shipped.response(request, "index.html")
        return await index_json(request)

    def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return shipped.response(request, name)

        return handler

    async def static(request: web.Request) -> web.StreamResponse:
        return shipped.response(request, request.match_info["name"])

    router.add_get("/", index)
    for path, name in PAGES.items():
        router.add_get(path, page(name))
    router.add_get("/static/{name:.+}", static)

    async def favicon(request: web.Request) -> web.StreamResponse:
        return shipped.response(request, "icon.svg")

    router.add_get("/favicon.ico", favicon)
