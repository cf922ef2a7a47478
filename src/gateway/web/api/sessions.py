"""``GET /api/v1/schools/{school_id}/sessions``: a school's open streams on every replica."""

from __future__ import annotations

from aiohttp import web

from gateway.web.api.base import api
from gateway.web.http_auth import require
from gateway.web.keys import GATEWAY


@api
async def school_sessions(request: web.Request) -> web.Response:
    """Group, start, audio seconds and windows by status of each open stream; never text."""
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    require(request, "teacher", school_id)
    local = gateway.registry.sessions_of_school(school_id)
    sessions = await gateway.presence.school(school_id, local)
    return web.json_response({"sessions": sessions})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/schools/{school_id}/sessions", school_sessions)
