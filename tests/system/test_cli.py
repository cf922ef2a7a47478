"""The stt-gateway command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.auth.tokens import verify
from gateway.cli import main
from tests.support.helpers import SECRET


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STT_", "OPENAI_"))}
    return {**env, "DATA_DIR": str(tmp_path), "AUTH_JWT_SECRET": SECRET, **extra}


def test_token_verb_mints_a_verifiable_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "token",
            "--school",
            "s-9",
            "--group",
            "g-2",
            "--role",
            "teacher",
            "--ttl",
            "120",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    claims = verify(out.stdout.strip(), SECRET)
    assert (claims.school_id, claims.group_id, claims.role) == ("s-9", "g-2", "teacher")


@pytest.mark.parametrize(
    ("role", "page", "extra"),
    [
        ("student", "/classroom", ["--group", "g-1", "--keyterm", "Omar"]),
        ("teacher", "/teacher", []),
        ("school_admin", "/admin", []),
    ],
)
def test_token_url_links_the_page_for_the_role(
    tmp_path: Path, role: str, page: str, extra: list[str]
) -> None:
    argv = [sys.executable, "-m", "gateway", "token", "--school", "s-1", "--role", role, "--url"]
    out = subprocess.run(
        [*argv, *extra],
        env=_env(tmp_path, PUBLIC_BASE_URL="https://stt.example.org/"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    prefix = f"https://stt.example.org{page}#token="
    assert out.startswith(prefix)
    claims = verify(out.removeprefix(prefix), SECRET)
    assert claims.role == role
    if extra:
        assert claims.keyterms == ("Omar",)
    bad = subprocess.run(
        [*argv, *extra, "--keyterm", "x" * 60],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "keyterms" in bad.stderr


def test_dev_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    env = _env(tmp_path)
    del env["AUTH_JWT_SECRET"]
    first = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "--school", "s", "--group", "g"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    secret = (tmp_path / "jwt-secret").read_text().strip()
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0
    verify(first.stdout.strip(), secret)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STT_WINDOW_SECONDS", "abc"),
        ("MAX_SESSIONS", "0"),
        ("REDIS_URL", "http://x"),
        ("APP_ENV", "production"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        env=_env(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_prod_requires_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    monkeypatch.setenv("AUTH_JWT_SECRET", "short")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "AUTH_JWT_SECRET" in err and "short" not in err


def test_a_student_token_needs_a_group(tmp_path: Path) -> None:
    """A student token without a group could never stream (4003): refused when minted."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "--school", "s-1"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--group is required" in done.stderr
    assert done.stdout == ""


def test_an_unpriced_stt_model_stops_the_start(tmp_path: Path) -> None:
    """Readiness would say the policy is fine and every stream would then be refused."""
    from gateway.errors import ConfigurationError
    from gateway.settings import load_settings
    from gateway.web.app import create_app

    settings = load_settings(
        {
            "DATA_DIR": str(tmp_path),
            "AUTH_JWT_SECRET": SECRET,
            "OPENAI_API_KEY": "k",
            "STT_MODEL": "whisper-2",
        }
    )
    with pytest.raises(ConfigurationError, match="STT_MODEL 'whisper-2' has no price") as info:
        create_app(settings)
    assert "whisper-1" in str(info.value)
