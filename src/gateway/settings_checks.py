"""What the settings refuse beyond each field's own type: a field's problem, as pydantic
needs it, and what production lacks, listed at once (one start-up to fix them all)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settings import Settings


def _placeholder(value: str) -> bool:
    """A value copied from an example (``change-me…``): public, so no secret."""
    return value.strip().lower().startswith("change-me")


class FieldProblem(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def prod_problems(settings: Settings) -> list[FieldProblem]:
    """Everything prod lacks, listed at once (one start-up to fix them all)."""
    found: list[FieldProblem] = []
    if settings.AUTH_JWT_SECRET is None or len(settings.AUTH_JWT_SECRET.encode()) < 32:
        found.append(FieldProblem("AUTH_JWT_SECRET", "must be set to at least 32 bytes"))
    elif _placeholder(settings.AUTH_JWT_SECRET):
        found.append(FieldProblem("AUTH_JWT_SECRET", "is the example's placeholder"))
    if settings.OPENAI_API_KEY is None and settings.STT_PROVIDER in ("auto", "openai"):
        # auto never falls back to a local model in prod: that is chosen explicitly.
        found.append(FieldProblem("OPENAI_API_KEY", "must be set"))
    if settings.provider == "simulated":
        found.append(FieldProblem("STT_PROVIDER", "the simulated Whisper is not for prod"))
    if settings.REDIS_URL is None:
        found.append(FieldProblem("REDIS_URL", "must be set"))
    if settings.ALLOWED_ORIGINS is None or settings.ALLOWED_ORIGINS.strip() == "*":
        found.append(FieldProblem("ALLOWED_ORIGINS", "must list explicit origins"))
    if settings.AUDIT_HMAC_KEY is None or len(settings.AUDIT_HMAC_KEY.encode()) < 32:
        found.append(FieldProblem("AUDIT_HMAC_KEY", "must be set to at least 32 bytes"))
    elif _placeholder(settings.AUDIT_HMAC_KEY):
        found.append(FieldProblem("AUDIT_HMAC_KEY", "is the example's placeholder"))
    return found
