"""A replica killed (SIGKILL) while a session had windows in flight: the client resumes on
another replica from what Redis kept — the last settled window — and sends that audio
again. Every window once in the transcript, tiling the stream; every delivered window
charged exactly once — the windows the dead replica had in flight (or had transcribed but
not yet settled) went upstream twice, but their holds on A lapse uncharged."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.support.budget import teacher
from tests.support.helpers import (
    http_json,
    open_stream,
    spawn_gateway,
    t,
    token,
)
from tests.support.redis_server import RedisServer
from tests.support.resuming import RATE, SPEECH, one_whole_session

pytestmark = pytest.mark.slow


async def test_a_session_resumes_on_b_after_a_was_killed_with_windows_in_flight(
    fake_whisper: FakeWhisper, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake_whisper.behaviour.latency_ms = 1200  # windows are in flight when A dies
    env = {"REDIS_URL": redis_server.url, "STT_MAX_IN_FLIGHT_PER_SESSION": "3"}
    a = await spawn_gateway(fake_whisper, tmp_path / "a", **env)
    b = await spawn_gateway(fake_whisper, tmp_path / "b", **env)
    try:
        on_a = f"ws://127.0.0.1:{await a.listening()}/api/v1/listen"
        on_b = f"ws://127.0.0.1:{await b.listening()}/api/v1/listen"
        first = await open_stream(None, token(), url=on_a)  # type: ignore[arg-type]
        begin = first.messages[0]
        await first.send_audio(SPEECH)  # all of it: windows close faster than they settle
        while not first.of_type("Transcript"):
            await first.next(timeout=t(20))
        a.proc.kill()
        await a.proc.wait()
        await first.session.close()
        got = max(m["seq"] for m in first.of_type("Transcript"))

        query = {"resume": begin["resume_token"], "last_seq": str(got)}
        second = await open_stream(None, token(), url=on_b, query=query)  # type: ignore[arg-type]
        again = second.messages[0]
        assert again["resumed"] is True and again["session_id"] == begin["session_id"]
        resend = round(again["audio_seconds"] * RATE) * 2
        assert resend < len(SPEECH)  # A had windows in flight: that audio comes again
        await second.send_audio(SPEECH[resend:])
        await second.finish(timeout=60)
        await second.close()
        usage_url = f"{on_b.replace('ws://', 'http://').rsplit('/api/', 1)[0]}"
        status, usage = await http_json(
            "GET", f"{usage_url}/api/v1/schools/s-1/budget/usage", teacher("s-1")
        )
        assert status == 200, usage
    finally:
        await b.stop()
        if a.proc.returncode is None:
            await a.stop()

    transcripts, termination = one_whole_session(first, second)
    ok = [m for m in transcripts if m["status"] == "ok"]
    # Each window went upstream once, but for those A had in flight when it died.
    assert len(ok) <= len(fake_whisper.received) <= len(ok) + 3
    billed = sum(m["billed_seconds"] for m in transcripts)
    assert termination["cost_usd"] == pytest.approx(billed * 0.0001, abs=1e-6)
    # The ledger holds every delivered window's charge, once: A charged a window only in the
    # write that settled the session past it, so B charged only what A had not.
    assert usage["spent_usd"] == pytest.approx(termination["cost_usd"], abs=1e-9)
