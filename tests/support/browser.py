"""Debian's chromium driven by Playwright, with a fake microphone playing a WAV (skipped loudly
on a laptop without chromium, a failure under CI=true)."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.tools import require_tool

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Where the browser tests leave their screenshots: a build folder, so a test run leaves the
#: tree clean; ``make screenshots`` copies them to docs/pages/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "pages"


def write_wav(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


@asynccontextmanager
async def chromium(microphone: Path | None = None) -> AsyncIterator[Any]:
    """A headless chromium; with ``microphone``, getUserMedia plays that WAV (looped)."""
    executable = require_tool("chromium", "chromium")
    from playwright.async_api import async_playwright

    args = ["--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
    if microphone is not None:
        args += [
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
        ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            await browser.close()


class PageWatch:
    """Collects a page's console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.errors.append(f"{response.status} {response.url}")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


async def screenshot(page: Any, name: str) -> None:
    """``build/pages/<name>-desktop.png`` and ``-phone.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
