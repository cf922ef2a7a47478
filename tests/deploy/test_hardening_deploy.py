"""Uploads over 1 MiB through a read-only root filesystem, as the shipped Deployment runs.

aiohttp spools a file part over 1 MiB to a temporary file. The Deployment sets
``readOnlyRootFilesystem``, so it mounts an ``emptyDir`` at ``/tmp`` (and sets
``TMPDIR``). Here a gateway process runs in its own mount namespace (``unshare``)
with ``/tmp``, ``/var/tmp`` and its working directory read-only: without a writable
scratch directory the upload fails, in OpenAI's error shape; with the Deployment's
``TMPDIR`` it is transcribed.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.auth.tokens import mint
from gateway.simulated.whisper import FakeWhisper
from gateway.stream.wav import wav_bytes
from tests.support.audio import tone
from tests.support.helpers import SECRET, GatewayProcess, gateway_env
from tests.support.manifests import ROOT, render

SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None and not os.environ.get("CI"), reason="needs unshare"
)


def test_the_deployment_gives_a_read_only_root_a_writable_tmp() -> None:
    docs = render(ROOT / "overlays" / "prod")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TMPDIR"] == "/tmp"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Outside /tmp (read-only in the namespace): the data dir and the writable TMPDIR."""
    base = Path("/dev/shm") / f"stt-{uuid.uuid4().hex[:8]}"
    (base / "data").mkdir(parents=True)
    (base / "tmp").mkdir()
    (base / "ro").mkdir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


async def _serve_read_only(fake: FakeWhisper, base: Path, **env: str) -> GatewayProcess:
    ro = base / "ro"
    script = (
        f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
        "for d in /tmp /var/tmp; do mount --bind $d $d && mount -o remount,bind,ro $d; done && "
        f'cd {ro} && exec "$0" -m gateway serve'
    )
    environ = gateway_env(fake, base / "data", BUDGET_ENFORCEMENT_MODE="disabled", **env)
    environ.pop("TMPDIR", None)
    environ.update(env)
    environ["PYTHONPATH"] = str(SRC)
    environ["COVERAGE_FILE"] = str(Path.cwd() / ".coverage")
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-m",
        "sh",
        "-c",
        script,
        sys.executable,
        env=environ,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return GatewayProcess(proc)


async def _upload(port: int, data: bytes) -> tuple[int, dict[str, object]]:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", io.BytesIO(data), filename="lesson.wav", content_type="audio/wav")
    key = mint(SECRET, school_id="s-1", role="teacher")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/v1/audio/transcriptions",
            data=form,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("writable_tmp", [False, True])
async def test_a_two_mib_upload_through_a_read_only_root(
    fake_whisper: FakeWhisper, scratch: Path, writable_tmp: bool
) -> None:
    env = {"TMPDIR": str(scratch / "tmp")} if writable_tmp else {}
    gateway = await _serve_read_only(fake_whisper, scratch, **env)
    try:
        port = await gateway.listening()
        audio = wav_bytes(tone(440, 66.0), 16000)  # 2.1 MB
        assert len(audio) > 2 * 1024 * 1024
        status, body = await _upload(port, audio)
    finally:
        await gateway.stop()
    if writable_tmp:
        assert status == 200 and "440 Hz" in str(body["text"])
    else:
        assert status == 500
        error = body["error"]
        assert isinstance(error, dict) and error["code"] == "upload_failed"
        assert set(error) == {"message", "type", "param", "code"}
        events = [line.get("event") for line in gateway.lines]
        assert "passthrough.upload_unstored" in events
    assert not any("Traceback" in str(line) for line in gateway.lines)
