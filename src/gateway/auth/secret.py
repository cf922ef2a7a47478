"""The HS256 secret: configured, or generated once in dev and kept in the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.settings import Settings

SECRET_FILE = "jwt-secret"


def resolve_secret(settings: Settings) -> str:
    if settings.AUTH_JWT_SECRET:
        return settings.AUTH_JWT_SECRET
    if settings.APP_ENV != "dev":
        raise ConfigurationError(
            f"invalid configuration: AUTH_JWT_SECRET must be set when APP_ENV={settings.APP_ENV}"
        )
    path = settings.data_dir / SECRET_FILE
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
