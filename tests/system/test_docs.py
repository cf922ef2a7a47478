"""Every shell block the docs mark as runnable, run as written against a real gateway.

A block is marked by the line ``<!-- runnable -->`` just before its fence (invisible when
the Markdown is rendered). Each runs under ``bash -euo pipefail`` in a fresh directory laid
out as a clone is (``.venv``, ``examples``, ``config``, the ``Makefile`` — linked, not
copied) with a ``lesson.wav`` of spoken English, and must exit 0 without a traceback:

- a block that starts its own gateway (``make run &``) gets a free port and its own empty
  ``data/``; whatever it left running is stopped after it;
- every other block talks to one gateway started as ``make run`` starts it (no
  ``OPENAI_API_KEY``: the local Whisper), whose ``data/`` the directory links.

The address ``127.0.0.1:8080`` in a block is the only text changed: to the port of its
gateway (``GATEWAY_PORT`` is set to it too), so the suite never needs port 8080 free.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support.helpers import gateway_process, t
from tests.support.redis_server import free_port
from tests.support.speech import sentence

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
LINKED = (".venv", "examples", "config", "Makefile", "pyproject.toml", "src", "README.md")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def starts_a_gateway(self) -> bool:
        return bool(re.search(r"make run\s*&", self.text))


def runnable_blocks(paths: list[Path]) -> list[Block]:
    """The fenced shell blocks right after a :data:`MARKER` line (pure)."""
    found = []
    for path in paths:
        text = path.read_text()
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if before.strip() != MARKER:
                continue
            assert match.group(1) in ("sh", "bash"), f"{path.name}: a runnable block is sh"
            line = text[: match.start()].count("\n") + 1
            found.append(Block(path, line, match.group(2)))
    return found


BLOCKS = runnable_blocks(DOCS)


def test_the_docs_mark_their_commands_runnable() -> None:
    """The marker is found (a renamed marker would silently run nothing)."""
    names = {b.path.name for b in BLOCKS}
    assert {"README.md", "Budget.md"} <= names, names
    assert len(BLOCKS) >= 5
    assert any(b.starts_a_gateway for b in BLOCKS)


def _workdir(directory: Path, data: Path) -> Path:
    directory.mkdir(parents=True)
    for name in LINKED:
        (directory / name).symlink_to(ROOT / name)
    (directory / "data").symlink_to(data, target_is_directory=True)
    pcm = sentence("The water cycle moves water between the oceans, the air and the land.")
    with wave.open(str(directory / "lesson.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return directory


def _environment(port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "STT_", "REDIS_", "AUTH_", "AUDIT_", "GATEWAY_"))
        and k not in ("DATA_DIR", "APP_ENV", "PUBLIC_BASE_URL", "BUDGET_POLICY_PATH")
    }
    env["GATEWAY_PORT"] = str(port)
    return env


@pytest.fixture
async def local_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[int, Path]]:
    """A gateway as ``make run`` starts it (local Whisper), ready."""
    data = tmp_path_factory.mktemp("docs-gateway-data")
    port = free_port()
    env = {**_environment(port), "DATA_DIR": str(data), "LOG_FORMAT": "json"}
    gateway = await gateway_process(env)
    try:
        await gateway.listening()
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                async with session.get(f"http://127.0.0.1:{port}/api/v1/ready") as response:
                    body = await response.json()
                    if response.status == 200:
                        assert body["checks"]["whisper"]["provider"] == "local"
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the gateway never became ready: {body}")
        yield port, data
    finally:
        await gateway.stop()


async def _run(block: Block, directory: Path, port: int) -> tuple[int, str, str]:
    """Run ``block``; its output goes to files, as a background job it starts keeps its
    pipes open."""
    script = block.text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    out_path, err_path = directory.parent / "out.txt", directory.parent / "err.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            cwd=directory,
            env=_environment(port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # what it leaves in the background is stopped with it
        )
        try:
            code = await asyncio.wait_for(proc.wait(), t(300))
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                await asyncio.sleep(3.0)  # a background gateway drains, then its Redis stops
    return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
async def test_a_documented_command_runs_as_written(
    block: Block, local_gateway: tuple[int, Path], tmp_path: Path
) -> None:
    if block.starts_a_gateway:
        data = tmp_path / "own-data"
        data.mkdir()
        port = free_port()
    else:
        port, data = local_gateway
    directory = _workdir(tmp_path / "clone", data)
    code, out, err = await _run(block, directory, port)
    assert code == 0, (
        f"{block.name} exited {code}\n{block.text}\n--- out\n{out[-3000:]}\n--- err\n{err[-3000:]}"
    )
    assert "Traceback" not in out + err, f"{block.name}\n{err[-3000:]}"
