"""The pages in a real browser (Debian's chromium, Playwright), by role and accessible name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from loadtest.proxy import CuttingProxy
from tests.conftest import GatewayFactory
from tests.support.browser import PageWatch, chromium, screenshot, write_wav
from tests.support.helpers import (
    GatewayServer,
    connect,
    eventually,
    http_json,
    token,
    write_policy,
)
from tests.support.speech import sentence

pytestmark = pytest.mark.slow

LESSON = (
    "Today we will read the chapter about plants and how they make food from sunlight.",
    "Every green leaf has tiny openings that let air move in and out.",
)


def _lesson_wav(tmp_path: Path) -> Path:
    silence = bytes(2 * 16000)  # a second between sentences (the file loops)
    pcm = b"".join(sentence(text) + silence for text in LESSON)
    return write_wav(tmp_path / "lesson.wav", silence + pcm)


async def _open(browser: Any, url: str) -> tuple[Any, PageWatch]:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page)
    await page.goto(url)
    return page, watch


async def test_the_classroom_transcribes_spoken_words_with_local_whisper(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = await make_gateway(STT_PROVIDER="local", STT_WINDOW_SECONDS=5.0)
    jwt = token("s-1", "table-1")
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={jwt}")
        assert "token=" not in page.url  # taken out of the address bar
        assert await page.evaluate("sessionStorage.getItem('stt-gateway-token')") == jwt
        await page.get_by_role("button", name="Start").click()
        status = page.locator("#status")  # the connection line (Now hearing is another)
        await status.filter(has_text="local Whisper").wait_for(timeout=30_000)
        log = page.get_by_role("log", name="Transcript")
        await log.filter(has_text=re.compile("plants|sunlight|leaf", re.I)).wait_for(timeout=60_000)
        await screenshot(page, "classroom")
        await page.get_by_role("button", name="Stop").click()
        await status.filter(has_text="Stopped").wait_for(timeout=30_000)
        words = (await log.inner_text()).lower()
        assert any(w in words for w in ("plants", "sunlight", "food", "chapter"))
        assert watch.errors == []


async def test_the_classroom_shows_words_while_they_are_spoken(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Now hearing shows the open window's words (settled ones apart from the tentative tail)
    before its Transcript; the log holds finals only, one line per window."""
    server = await make_gateway(
        STT_PROVIDER="local", STT_WINDOW_SECONDS=5.0, INTERIM_PROVIDER="local"
    )
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={token('s-1', 't-2')}")
        await page.get_by_role("button", name="Start").click()
        hearing = page.get_by_role("status", name="Now hearing")
        log = page.get_by_role("log", name="Transcript")
        await hearing.filter(has_text=re.compile(r"[a-z]{3}", re.I)).wait_for(timeout=60_000)
        assert await log.inner_text() == ""  # the words showed before any window's final
        await screenshot(page, "classroom-live")
        await log.filter(has_text=re.compile("plants|sunlight|leaf|food", re.I)).wait_for(
            timeout=60_000
        )
        await page.get_by_role("button", name="Stop").click()
        await page.locator("#status").filter(has_text="Stopped").wait_for(timeout=30_000)
        seqs = await log.locator("p").evaluate_all("ps => ps.map(p => p.dataset.seq)")
        assert len(seqs) == len(set(seqs))  # one line per window: no interim in the log
        assert await hearing.locator(".tentative").count() == 1
        assert server.state.metrics.interims.labels(outcome="sent")._value.get() > 0
        assert watch.errors == []


async def test_a_school_out_of_budget_is_told_in_plain_words(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "policy.json", schools={"broke": {"daily_limit_usd": 0.0, "timezone": "UTC"}}
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={token('broke', 'g')}")
        await page.get_by_role("button", name="Start").click()
        status = page.locator("#status")  # the connection line (Now hearing is another)
        await status.filter(has_text="budget for today is used up").wait_for(timeout=30_000)
        assert await page.get_by_role("button", name="Start").is_enabled()  # no reconnect loop
        assert watch.errors == []


async def test_without_a_token_the_page_asks_for_one(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    async with chromium() as browser:
        page, watch = await _open(browser, f"{gateway.http}/teacher")
        await page.get_by_label("Access token").fill(token(role="teacher"))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("meter", name="Budget used today").wait_for()
        assert watch.errors == []


async def test_the_teacher_sees_the_usage_and_mints_a_working_link(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = await make_gateway()
    # some spend first, so the meter has something to show
    from tests.support.audio import tone
    from tests.support.helpers import stream_and_close

    await stream_and_close(server, tone(440, 2.0), jwt=token("s-1", "warm-up"))
    teacher = token("s-1", role="teacher")
    _, usage = await http_json("GET", f"{server.http}/api/v1/schools/s-1/budget/usage", teacher)
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/teacher#token={teacher}")
        meter = page.get_by_role("meter", name="Budget used today")
        await page.get_by_role("status").filter(has_text="Updated").wait_for()
        assert float(await meter.get_attribute("aria-valuenow")) == usage["percent_used"]
        assert usage["percent_used"] > 0
        await page.get_by_role("table", name="Alerts").wait_for()
        await page.get_by_label("Group", exact=True).fill("table-7")
        await page.get_by_label("Vocabulary").fill("Omar, photosynthesis")
        await page.get_by_role("button", name="Create link").click()
        link = page.get_by_role("link", name=re.compile(r"classroom#code="))
        await link.wait_for()
        href = await link.get_attribute("href")
        assert href is not None and href.startswith(f"{server.http}/classroom#code=")
        said = await page.locator("#link-out").inner_text()
        assert "opens once, until" in said and "the session may run until" in said
        await screenshot(page, "teacher")
        classroom, classroom_watch = await _open(browser, href)
        await classroom.get_by_role("button", name="Start").wait_for()
        assert classroom.url == f"{server.http}/classroom"  # nothing left in the address bar
        # the link is single-use: opened again (another device), it asks for a new one
        again, _ = await _open(browser, href)
        await again.get_by_text("already used or has expired").wait_for()
        await again.get_by_label("Access token").wait_for()
        await classroom.get_by_role("button", name="Start").click()
        await classroom.locator("#status").filter(has_text="Listening").wait_for()
        live = page.get_by_role("table", name="Live groups")
        await live.filter(has_text="table-7").wait_for(timeout=20_000)  # refreshes by itself
        await classroom.get_by_role("button", name="Stop").click()
        await classroom.locator("#status").filter(has_text="Stopped").wait_for()
        assert server.fake.received and server.fake.received[-1].prompt == ("Omar, photosynthesis.")
        assert watch.errors == [] and classroom_watch.errors == []


async def test_the_admin_saves_a_limit_and_sees_field_errors(
    gateway: GatewayServer,
) -> None:
    admin = token("s-1", role="school_admin")
    async with chromium() as browser:
        page, watch = await _open(browser, f"{gateway.http}/admin#token={admin}")
        limit = page.get_by_label("Daily limit (USD)")
        await page.get_by_label("Time zone").select_option("Europe/Paris")
        await limit.fill("3.5")
        await page.get_by_label("Alert thresholds").fill("50, 90")
        await page.get_by_label("Webhook URL").fill("http://127.0.0.1:9/budget-alerts")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("status").filter(has_text="Saved").wait_for()
        _, config = await http_json("GET", f"{gateway.http}/api/v1/schools/s-1/budget", admin)
        assert config["daily_limit_usd"] == 3.5 and config["timezone"] == "Europe/Paris"
        assert config["alert_thresholds"] == [50, 90]
        _, alerts = await http_json(
            "GET", f"{gateway.http}/api/v1/schools/s-1/budget/alerts", admin
        )
        assert alerts["webhook_configured"] is True
        assert await page.get_by_label("Webhook URL").get_attribute("placeholder") == (
            "configured (hidden)"
        )
        await screenshot(page, "admin")
        assert watch.errors == []
        thresholds = page.get_by_label("Alert thresholds")
        await thresholds.fill("90, 50")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("status").filter(has_text="Not saved").wait_for()
        assert await thresholds.get_attribute("aria-invalid") == "true"
        error = page.locator("#alert_thresholds-error")
        assert (await error.inner_text()).strip()
        # the refused save is the API's 400 (which the browser also logs), nothing else
        assert watch.errors and all("400" in e for e in watch.errors), watch.errors


async def test_a_platform_admin_sees_every_school(make_gateway: GatewayFactory) -> None:
    server = await make_gateway()
    from tests.support.audio import tone
    from tests.support.helpers import stream_and_close

    for school in ("s-1", "s-2"):
        await stream_and_close(server, tone(440, 2.0), jwt=token(school, "g"))
    platform = token(None, None, role="platform_admin")
    async with chromium() as browser:
        page, watch = await _open(browser, f"{server.http}/admin#token={platform}")
        schools = page.get_by_role("table", name="Schools")
        await schools.filter(has_text="s-2").wait_for()
        rows = await schools.locator("tbody tr").all_inner_texts()
        assert {r.split()[0] for r in rows} >= {"s-1", "s-2"}
        await page.get_by_role("button", name="s-2").click()
        await page.get_by_role("heading", name="School settings · s-2").wait_for()
        await screenshot(page, "admin-platform")
        assert watch.errors == []


async def test_the_index_says_which_whisper(gateway: GatewayServer) -> None:
    async with chromium() as browser:
        page, watch = await _open(browser, gateway.http + "/")
        await page.get_by_role("status").filter(has_text="OpenAI").wait_for()
        for name in ("Classroom", "Teacher", "Admin"):
            assert await page.get_by_role("link", name=name).count() == 1
        await screenshot(page, "index")
        assert watch.errors == []


async def test_the_classroom_reconnects_when_told_to_retry_and_never_when_replaced(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = await make_gateway()
    server.state.registry.draining = True  # every stream: 1013 with retry_after
    jwt = token("s-1", "table-2")
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={jwt}")
        await page.get_by_role("button", name="Start").click()
        status = page.locator("#status")  # the connection line (Now hearing is another)
        await status.filter(has_text="busy").wait_for(timeout=15_000)
        server.state.registry.draining = False
        await status.filter(has_text="Listening").wait_for(timeout=30_000)
        # the same group opened elsewhere: this page stops and stays stopped
        other = await connect(server, jwt)
        assert (await other.next())["type"] == "Begin"
        await status.filter(has_text="another device").wait_for(timeout=15_000)
        await page.wait_for_timeout(3000)
        assert await page.get_by_role("button", name="Start").is_enabled()
        assert len(server.state.registry.sessions()) == 1  # no reconnect fight
        await other.close()
        assert [e for e in watch.errors if "WebSocket" not in e] == []


async def test_the_classroom_resumes_after_a_drop_with_no_gap_and_no_line_twice(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The page's connection goes through a proxy that resets it twice mid-stream (no close
    frame): the page resumes the same session, and its log holds every transcribed window
    once — as many lines as the Termination says were transcribed."""
    server = await make_gateway()
    proxy = await CuttingProxy(("127.0.0.1", server.port)).start()
    resumed = server.state.metrics.session_resumes.labels(outcome="resumed")
    try:
        async with chromium(_lesson_wav(tmp_path)) as browser:
            url = f"{proxy.url('http')}/classroom#token={token('s-1', 'drop')}"
            page, watch = await _open(browser, url)
            await page.get_by_role("button", name="Start").click()
            status = page.locator("#status")  # the connection line (Now hearing is another)
            log = page.get_by_role("log", name="Transcript")
            for cut in (1, 2):
                await status.filter(has_text="Listening").wait_for(timeout=15_000)
                await log.locator("p").nth(2 * cut).wait_for(timeout=30_000)
                proxy.cut()
                # The status may still say "Reconnected" from the drop before: the counter
                # tells this resume apart.
                await eventually(lambda cut=cut: resumed._value.get() == cut, timeout=30)
                await status.filter(has_text="Reconnected").wait_for(timeout=30_000)
            await log.locator("p").nth(6).wait_for(timeout=30_000)
            await page.get_by_role("button", name="Stop").click()
            ended = status.filter(has_text=re.compile(r"Stopped\. \d+ s of audio"))
            await ended.wait_for(timeout=30_000)
            transcribed = int(re.findall(r"(\d+) parts transcribed", await ended.inner_text())[0])
            lines = await log.locator("p").evaluate_all(
                "ps => ps.map(p => [p.dataset.session, Number(p.dataset.seq)])"
            )
            assert len({session for session, _ in lines}) == 1  # one session throughout
            seqs = [seq for _, seq in lines]
            assert seqs == sorted(set(seqs))  # in order, none twice
            assert len(seqs) == transcribed  # none missing: every transcribed window shown
            assert proxy.connections >= 3
            assert [e for e in watch.errors if "WebSocket" not in e] == []
    finally:
        await proxy.close()


async def test_a_muted_classroom_keeps_its_session(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = await make_gateway(IDLE_TIMEOUT_SECONDS=8.0)
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={token('s-1', 'm')}")
        await page.get_by_role("button", name="Start").click()
        status = page.locator("#status")  # the connection line (Now hearing is another)
        await status.filter(has_text="Listening").wait_for(timeout=15_000)
        await page.get_by_role("button", name="Mute").click()
        assert await page.get_by_role("button", name="Unmute").get_attribute("aria-pressed") == (
            "true"
        )
        await page.wait_for_timeout(12_000)  # longer than the idle timeout: KeepAlive holds it
        assert len(server.state.registry.sessions()) == 1
        await page.get_by_role("button", name="Unmute").click()
        await page.get_by_role("button", name="Stop").click()
        await status.filter(has_text="Stopped").wait_for(timeout=15_000)
        assert watch.errors == []


async def test_budget_notices_are_shown_in_the_classroom(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """A school crossing an alert threshold while the class talks sees it on the page."""
    policy = write_policy(
        tmp_path / "policy.json",
        schools={
            "near": {"daily_limit_usd": 0.002, "timezone": "UTC", "alert_thresholds": [5, 100]}
        },
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    async with chromium(_lesson_wav(tmp_path)) as browser:
        page, watch = await _open(browser, f"{server.http}/classroom#token={token('near', 'g')}")
        await page.get_by_role("button", name="Start").click()
        status = page.locator("#status")  # the connection line (Now hearing is another)
        await status.filter(has_text="of today's transcription budget").wait_for(timeout=30_000)
        assert re.search(r"has used \d+ %", await status.inner_text())
        await page.get_by_role("button", name="Stop").click()
        await status.filter(has_text="Stopped").wait_for(timeout=15_000)
        assert watch.errors == []


def test_screenshots_go_to_the_build_folder_not_the_docs() -> None:
    """A test run leaves a clean clone clean: docs/pages/ changes only by `make screenshots`."""
    from tests.support.browser import SCREENSHOTS

    assert SCREENSHOTS.parts[-2:] == ("build", "pages")
    makefile = Path("Makefile").read_text()
    assert "screenshots:" in makefile and "cp build/pages/*.png docs/pages/" in makefile
