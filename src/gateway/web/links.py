"""Links to the pages, with a token or a single-use code in the fragment (pure)."""

from __future__ import annotations

#: The page that fits each role.
PAGE_FOR_ROLE = {
    "student": "/classroom",
    "teacher": "/teacher",
    "school_admin": "/admin",
    "platform_admin": "/admin",
}


def page_link(base_url: str, token: str, *, role: str = "student", page: str | None = None) -> str:
    """``https://host/classroom#token=…``: the fragment never reaches a server or its logs."""
    path = page or PAGE_FOR_ROLE.get(role, "/classroom")
    return f"{base_url.rstrip('/')}{path}#token={token}"


def code_link(base_url: str, code: str, page: str = "/classroom") -> str:
    """``https://host/classroom#code=…``: a single-use code, worthless once redeemed."""
    return f"{base_url.rstrip('/')}{page}#code={code}"
