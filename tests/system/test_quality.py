"""`stt-loadtest quality` on a short lesson, through a gateway running local Whisper."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.simulated.whisper import FakeWhisper
from loadtest.quality import scoring
from loadtest.quality.lessons import LONG_PAUSE_SECONDS, SENTENCES, lesson
from loadtest.quality.scoring import Received
from tests.support.helpers import SECRET, serving, spawn_gateway, t
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

#: How much worse than the same model on the whole file the gateway may be on this slice.
#: The goal is 0.03 and is not reached with tiny.en (docs/Quality.md): measured today
#: 0.400 against 0.236 on these four sentences, every window one whole sentence, the gap
#: all context (one sentence misheard alone). The bound catches a regression beyond that;
#: cuts inside sentences, what the gateway controls, are judged exactly (none allowed).
MEASURED_GAP_BOUND = 0.20


def test_lessons_are_deterministic_with_one_long_pause() -> None:
    for name in SENTENCES:
        spoken = lesson(name)
        assert spoken == lesson(name)
        assert [u.pause_after for u in spoken].count(LONG_PAUSE_SECONDS) == 1
        assert all(0.3 <= u.pause_after <= 3.0 for u in spoken if u.pause_after < 10)
        assert len({u.voice for u in spoken}) >= 3 and len({u.level_db for u in spoken}) >= 3


def test_scoring_uses_the_whisper_normaliser() -> None:
    assert scoring.wer("Maya has twelve apples.", "maya has 12 apples") == 0.0
    assert scoring.wer("the colour of the leaf", "The color of the leaf!") == 0.0
    assert scoring.wer("the cat sat down", "the cat down") == 0.25
    received = [
        Received({"start": 0.0, "end": 5.0, "text": "hello", "billed_seconds": 4.0}, 5.5),
        Received({"start": 5.0, "end": 9.0, "text": "thanks for watching"}, 9.4),
    ]
    assert scoring.pause_texts(received, [(5.2, 9.0)]) == ["thanks for watching"]
    assert scoring.billed_seconds(received) == 4.0
    sentences = [scoring.Spoken("hello", 0.5, 3.0)]  # type: ignore[attr-defined]
    assert scoring.sentence_delays(received, sentences, speed=1.0) == [2.5]
    assert scoring.cuts_inside_sentences(received, sentences) == []
    cut = [Received({"start": 0.0, "end": 2.0}, 2.1), *received]
    assert scoring.cuts_inside_sentences(cut, sentences) == [2.0]


def test_a_sentence_is_late_past_the_window_target_upstream_and_half_a_second() -> None:
    sentences = [scoring.Spoken("one", 0.5, 3.0), scoring.Spoken("two", 4.0, 7.0)]  # type: ignore[attr-defined]
    received = [
        Received({"start": 0.0, "end": 3.5, "latency_ms": 400}, 3.5 + 0.4),
        Received({"start": 3.5, "end": 12.0, "latency_ms": 300}, 12.0 + 0.3),
    ]
    # "one": 0.9 s after it was said, fine; "two": 5.3 s, above 5 + 0.3 + 0.5? no: 5.3 <= 5.8
    assert scoring.late_sentences(received, sentences, 1.0, 5.0) == []
    assert scoring.late_sentences(received, sentences, 1.0, 4.0) == ["two"]
    assert scoring.late_sentences(received[:1], sentences, 1.0, 5.0) == ["two"]  # never came


def test_the_judge_names_every_broken_limit() -> None:
    import argparse

    from loadtest.quality.cli import judge

    row = {
        "lesson": "maths",
        "noise": "quiet",
        "wer": 0.30,
        "wer_whole_file": 0.25,
        "billed_over_speech": 1.2,
        "late_sentences": 1,
        "cuts_inside_sentences": 2,
    }
    args = argparse.Namespace(
        max_wer=0.5,
        max_wer_over_whole=0.03,
        max_billed_over_speech=1.1,
        latency_target=True,
        whole_sentences=True,
    )
    failures = judge([row], args)
    assert len(failures) == 4 and all(f.startswith("maths (quiet)") for f in failures)
    args.max_wer_over_whole, args.max_billed_over_speech, args.latency_target = 0.06, 1.3, False
    args.whole_sentences = False
    assert judge([row], args) == []
    assert judge([{**row, "wer_whole_file": None}], args) == [
        "maths (quiet): --max-wer-over-whole needs the baselines"
    ]


async def _quality(
    port: int, tmp_path: Path, *extra: str, lesson: str = "science", report: str = ""
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest",
        "quality",
        "--url",
        f"ws://127.0.0.1:{port}/api/v1/listen",
        "--secret",
        SECRET,
        "--lesson",
        lesson,
        "--noise",
        "quiet",
        "--sentences",
        "4",
        "--speed",
        "3",
        "--json",
        str(tmp_path / (report or f"quality{len(extra)}.json")),
        "--out-dir",
        str(tmp_path / "lessons"),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), t(300))
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@asynccontextmanager
async def _local_gateway(fake: FakeWhisper, tmp_path: Path) -> AsyncIterator[int]:
    """A gateway process with local Whisper and 5 s windows; yields its port."""
    require_tool("espeak-ng", "espeak-ng")
    require_tool("sox", "sox")
    gateway = await spawn_gateway(
        fake, tmp_path / "data", STT_PROVIDER="local", STT_WINDOW_SECONDS="5"
    )
    try:
        yield await gateway.listening()
    finally:
        await gateway.stop()


async def test_quality_on_a_short_lesson(fake_whisper: FakeWhisper, tmp_path: Path) -> None:
    async with _local_gateway(fake_whisper, tmp_path) as port:
        code, out = await _quality(
            port,
            tmp_path,
            "--max-wer",
            "0.9",
            "--max-wer-over-whole",
            str(MEASURED_GAP_BOUND),
            "--max-billed-over-speech",
            "1.10",
            "--latency-target",
            "--whole-sentences",
            report="targets.json",
        )
        strict, strict_out = await _quality(port, tmp_path, "--max-wer", "0", "--no-baselines")
    assert code == 0, out
    assert "| science | quiet |" in out and "PASS" in out
    [run] = json.loads((tmp_path / "targets.json").read_text())["runs"]
    assert run["provider"] == "local"
    assert 0 <= run["wer"] <= 0.9
    assert run["wer_whole_file"] is not None and run["wer_whole_file"] <= 0.5
    assert run["wer_naive_chunks"] is not None
    assert 0 < run["speech_share"] < 1 and 0 < run["billed_over_streamed"] <= 1.0
    assert run["wer"] <= run["wer_whole_file"] + MEASURED_GAP_BOUND  # also judged above
    assert run["billed_over_speech"] <= 1.10 and run["late_sentences"] == 0
    assert run["cuts_inside_sentences"] == 0 and run["pause_texts"] == []
    assert run["sentence_delay_s"]["p50"] is not None
    assert {"lesson", "noise", "pause_texts", "latency_s", "windows"} <= set(run)
    saved = tmp_path / "lessons" / "science-quiet"
    assert saved.with_suffix(".wav").exists() and saved.with_suffix(".txt").exists()
    assert len(json.loads(saved.with_suffix(".json").read_text())["long_pauses"]) == 1
    assert strict == 1 and "FAIL" in strict_out


async def test_class_vocabulary_brings_the_names_back(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """The maths lesson is full of names: given as vocabulary, more of them come back."""
    async with _local_gateway(fake_whisper, tmp_path) as port:
        plain, out = await _quality(port, tmp_path, "--no-baselines", lesson="maths")
        named, out2 = await _quality(
            port, tmp_path, "--no-baselines", "--vocabulary", lesson="maths", report="named.json"
        )
    assert plain == 0 and named == 0, out + out2
    [without] = json.loads((tmp_path / "quality1.json").read_text())["runs"]
    [with_terms] = json.loads((tmp_path / "named.json").read_text())["runs"]
    assert without["keyterms"] == 0 and with_terms["keyterms"] > 5
    # What the vocabulary is for: the names come back. The WER of four sentences moves with
    # the processor's kernels (greedy decoding on another CPU can pick another word), so it
    # is bounded, not ranked; docs/Quality.md measures WER over whole lessons and seeds.
    heard, heard_without = (_names_heard(r["transcript"]) for r in (with_terms, without))
    assert heard > heard_without, (with_terms["transcript"], without["transcript"])
    assert with_terms["wer"] <= without["wer"] + 0.1


def _names_heard(transcript: str) -> int:
    """How many times the maths lesson's vocabulary terms appear in ``transcript``."""
    from loadtest.quality.lessons import VOCABULARY

    words = transcript.lower()
    return sum(words.count(term.lower()) for term in VOCABULARY["maths"])


def test_a_users_own_recording_is_read_and_resampled(tmp_path: Path) -> None:
    import wave

    import numpy as np

    from loadtest.quality.recording import from_files

    audio = tmp_path / "mine.wav"
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(np.zeros(22050 * 2, dtype="<i2").tobytes())
    (tmp_path / "mine.txt").write_text("what was said\n")
    recording = from_files(audio, tmp_path / "mine.txt")
    assert recording.sample_rate == 16000 and abs(recording.seconds - 2.0) < 0.01
    assert recording.script == "what was said" and recording.speech_seconds is None


def test_the_offline_evaluation_uses_the_gateways_windows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The tool settings are decided with: deterministic, and it bills what the gateway would."""
    require_tool("espeak-ng", "espeak-ng")
    require_tool("sox", "sox")
    from loadtest.quality import offline

    args = ["--lesson", "reading", "--noise", "quiet", "--seeds", "7"]
    assert offline.main(args) == 0
    first = capsys.readouterr().out
    assert offline.main(args) == 0
    assert capsys.readouterr().out == first
    wer = float(first.split("WER ")[1].split()[0])
    billed = float(first.split("billed/speech ")[1].split()[0])
    assert 0 <= wer < 0.5 and 0.9 < billed <= 1.10


async def test_the_harness_waits_while_the_gateway_says_retry(tmp_path: Path) -> None:
    """A gateway still loading its model answers OVERLOADED with retry_after: the harness
    waits that long and streams; a refusal that is not retryable is reported at once."""
    from aiohttp import web

    from loadtest.quality.recording import Recording
    from loadtest.quality.runner import Refused, stream

    attempts: list[float] = []

    async def listen(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        attempts.append(asyncio.get_running_loop().time())
        mode = request.query.get("keyterm", "")
        if mode == "never" or len(attempts) < 3:
            retryable = mode != "never"
            await ws.send_json(
                {"type": "Error", "code": "OVERLOADED", "retryable": retryable, "retry_after": 0.2}
            )
            await ws.close(code=1013)
            return ws
        await ws.send_json({"type": "Begin", "config": {"provider": "simulated"}})
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT and "CloseStream" in msg.data:
                break
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/listen", listen)
    recording = Recording(pcm=bytes(3200), script="")
    async with serving(app) as address:
        url = f"ws://{address}/listen"
        streamed = await stream(url, "t", recording, speed=10.0)
        assert streamed.begin["type"] == "Begin" and len(attempts) == 3
        assert attempts[2] - attempts[0] >= 0.4  # waited retry_after each time
        attempts.clear()
        with pytest.raises(Refused):
            await stream(url, "t", recording, speed=10.0, keyterms=["never"])
        assert len(attempts) == 1


async def test_interims_show_the_first_words_sooner(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """The same lesson in real time, without and with interims from the same local model:
    the first words of its sentences show sooner with them."""
    require_tool("espeak-ng", "espeak-ng")
    require_tool("sox", "sox")
    gateway = await spawn_gateway(
        fake_whisper,
        tmp_path / "data",
        STT_PROVIDER="local",
        STT_WINDOW_SECONDS="5",
        INTERIM_PROVIDER="local",
    )
    try:
        port = await gateway.listening()
        code, out = await _quality(
            port, tmp_path, "--interims", "--no-baselines", "--speed", "1", report="live.json"
        )
    finally:
        await gateway.stop()
    assert code == 0, out
    without, with_interims = json.loads((tmp_path / "live.json").read_text())["runs"]
    assert (without["interims"], without["interim_messages"]) == (False, 0)
    assert with_interims["interims"] and with_interims["interim_messages"] > 0
    assert with_interims["first_words_s"]["p50"] < without["first_words_s"]["p50"], out
    assert "| on |" in out and "| off |" in out
