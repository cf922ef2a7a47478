"""The HS256 secret and the audit trail's key: configured, or generated once in dev and
kept in the data dir (each its own file, readable by the owner only)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.settings import Settings

SECRET_FILE = "jwt-secret"
AUDIT_KEY_FILE = "audit-key"


def resolve_secret(settings: Settings) -> str:
    return _configured_or_kept(settings, "AUTH_JWT_SECRET", settings.AUTH_JWT_SECRET, SECRET_FILE)


def resolve_audit_key(settings: Settings) -> bytes:
    """``AUDIT_HMAC_KEY``: the audit trail's own key, never derived from the JWT secret."""
    value = _configured_or_kept(settings, "AUDIT_HMAC_KEY", settings.AUDIT_HMAC_KEY, AUDIT_KEY_FILE)
    return value.encode()


def _configured_or_kept(settings: Settings, name: str, value: str | None, filename: str) -> str:
    if value:
        return value
    if settings.APP_ENV != "dev":
        raise ConfigurationError(
            f"invalid configuration: {name} must be set when APP_ENV={settings.APP_ENV}"
        )
    path = settings.data_dir / filename
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    _write_private(path, value)
    return value


def _write_private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
