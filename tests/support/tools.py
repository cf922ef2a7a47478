"""System tools some tests need: skipped loudly on a laptop, a failure under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = (
        f"{name} not found: install the Debian package '{package}' (apt-get install {package})"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {message}")
    pytest.skip(f"SKIPPED LOUDLY: {message}")
