"""The README's Python client, run as a user would run it."""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path

import pytest

from gateway.auth.tokens import mint
from gateway.simulated.whisper import FakeWhisper
from tests.support.audio import tone
from tests.support.helpers import SECRET, spawn_gateway, t, write_policy

pytestmark = pytest.mark.slow
EXAMPLE = Path("examples/stream_wav.py")


def test_the_readme_shows_the_example_file() -> None:
    assert EXAMPLE.read_text() in Path("README.md").read_text()


def _wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone(440, seconds))
    return path


async def _run_example(port: int, jwt: str, wav: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        f"ws://127.0.0.1:{port}/api/v1/listen",
        jwt,
        str(wav),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), t(60))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_example_streams_and_prints_transcripts(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    gateway = await spawn_gateway(fake_whisper, tmp_path / "data")
    try:
        port = await gateway.listening()
        jwt = mint(SECRET, school_id="s-1", group_id="example")
        code, out, err = await _run_example(port, jwt, _wav(tmp_path / "a.wav", 2.5))
    finally:
        await gateway.stop()
    assert code == 0, (out, err)
    assert out.count(" ok ") == 3 and "done: 3 windows" in out
    assert "closed 1000" in err and "Traceback" not in err


async def test_the_example_reports_errors_and_close_codes(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"broke": {"daily_limit_usd": 0.0001, "timezone": "UTC"}},
    )
    gateway = await spawn_gateway(fake_whisper, tmp_path / "data", BUDGET_POLICY_PATH=policy)
    try:
        port = await gateway.listening()
        jwt = mint(SECRET, school_id="broke", group_id="example")
        code, out, err = await _run_example(port, jwt, _wav(tmp_path / "b.wav", 4.0))
        bad = await _run_example(port, "not-a-token", _wav(tmp_path / "c.wav", 0.5))
    finally:
        await gateway.stop()
    assert code == 1 and "Error BUDGET_EXCEEDED" in err and "closed 4402" in err, (out, err)
    assert bad[0] == 1 and "Error UNAUTHORIZED" in bad[2] and "closed 4001" in bad[2]
    assert "Traceback" not in err + bad[2]


def test_a_float_wav_gets_a_clear_line(tmp_path: Path) -> None:
    import struct
    import subprocess

    floats = tmp_path / "float.wav"
    data = struct.pack("<4f", 0.0, 0.1, -0.1, 0.0)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 16) + data
    floats.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "ws://127.0.0.1:9/api/v1/listen", "t", str(floats)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "not a 16-bit PCM WAV file" in done.stderr and "Traceback" not in done.stderr
