"""The HTTP API against its own OpenAPI description, with schemathesis, for every role.

Each run generates bounded examples per operation (positive and negative) and checks:
no 5xx, every status and body as documented; the gateway logs no traceback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from gateway.auth.tokens import mint
from gateway.simulated.whisper import FakeWhisper
from tests.support.helpers import SECRET, spawn_gateway, t

pytestmark = pytest.mark.slow

ROLES = {
    "anonymous": None,
    "student": {"role": "student", "school_id": "s-1", "group_id": "g-1"},
    "teacher": {"role": "teacher", "school_id": "s-1"},
    "school_admin": {"role": "school_admin", "school_id": "s-1"},
    "platform_admin": {"role": "platform_admin", "school_id": None},
}
EXAMPLES = 25


@pytest.mark.parametrize("role", list(ROLES))
async def test_schemathesis_finds_nothing(
    role: str, fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    gateway = await spawn_gateway(
        fake_whisper, tmp_path / "data", AUTH_FAILURES_PER_MINUTE="100000"
    )
    try:
        port = await gateway.listening()
        headers = []
        claims = ROLES[role]
        if claims is not None:
            jwt = mint(SECRET, ttl_seconds=3600, sub=f"fuzz-{role}", **claims)  # type: ignore[arg-type]
            headers = ["-H", f"Authorization: Bearer {jwt}"]
        proc = await asyncio.create_subprocess_exec(
            st,
            "run",
            f"http://127.0.0.1:{port}/api/v1/openapi.json",
            *headers,
            "--checks",
            "all",
            # Refusing well-formed input is the point of roles and budget rules.
            "--exclude-checks",
            "positive_data_acceptance,ignored_auth",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261123",
            "--exclude-path",
            "/api/v1/listen",
            "--generation-database",
            "none",
            "--workers",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), t(600))
        report = out.decode(errors="replace")
    finally:
        await gateway.stop()
    tracebacks = [line for line in gateway.lines if "Traceback" in json.dumps(line)]
    errors = [line for line in gateway.lines if line.get("event") == "http.unhandled_error"]
    assert not tracebacks and not errors, json.dumps((tracebacks + errors)[:2])[:4000]
    assert proc.returncode == 0, report[-6000:]
