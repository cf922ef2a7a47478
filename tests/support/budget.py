"""Budget helpers shared by the tests: staff tokens and a school's usage."""

from __future__ import annotations

from gateway.auth.tokens import mint
from tests.support.helpers import SECRET, GatewayServer, http_json

WINDOW_MICRO = 100  # one 1-second window of whisper-1 at $0.006/min


def teacher(school: str) -> str:
    return mint(SECRET, school_id=school, role="teacher")


def jwt(role: str, school: str | None = "s-1") -> str:
    return mint(SECRET, school_id=school, role=role, sub=f"{role}-user")


async def usage(server: GatewayServer, school: str) -> dict[str, object]:
    status, body = await http_json(
        "GET", f"{server.http}/api/v1/schools/{school}/budget/usage", teacher(school)
    )
    assert status == 200, body
    return dict(body)
