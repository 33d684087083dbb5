"""Headless Chromium from the distribution as a WebRTC endpoint on loopback, driven by Playwright.

Shared by the browser tests (tests/test_browser_pages.py) and the join benchmark
(bench/join.py). Debian's `/usr/bin/chromium` (or $VCBRIDGE_CHROMIUM), never
Playwright's own browser download; fake camera and microphone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("VCBRIDGE_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT = {"width": 1366, "height": 768}

# What makes headless Chromium a WebRTC endpoint on loopback only (see the shared
# notes "WebRTC on this machine"). Playwright adds --headless and a fresh temporary
# --user-data-dir of its own to every launch.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# Installed before any page script: keeps every RTCPeerConnection the page makes,
# so the test can read its getStats() or close it (a network cut, as the page sees it).
PEER_CONNECTION_HOOK = """
(() => {
  const Native = window.RTCPeerConnection;
  const made = [];
  Object.defineProperty(window, '__testPeerConnections', { value: made });
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); made.push(this); }
  };
})();
"""

def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    return None


async def launch(playwright: Any, *extra: str) -> Any:
    """A headless Chromium from the distribution, on loopback only."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_FLAGS, *extra])


async def new_page(browser: Any, base_url: str, errors: list[str], *,
                   init_script: str = "") -> Any:
    """A page in a fresh context (its own cookies) at 1366x768, with the
    peer-connection hook; script errors and policy violations go to `errors`."""
    context = await browser.new_context(viewport=VIEWPORT, base_url=base_url,
                                        locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
    await context.add_init_script(PEER_CONNECTION_HOOK + init_script)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: script error: {error}"))

    def console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(f"{page.url}: policy violation: {message.text}")

    page.on("console", console)
    return page


async def log_in(page: Any, path: str, username: str) -> None:
    """Open `path` and log in through the page's own form."""
    await page.goto(path, wait_until="domcontentloaded")
    await page.wait_for_selector("#login-form")
    await page.fill("#username", username)
    await page.fill("#password", password_of(username))
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login-form", state="detached")


@asynccontextmanager
async def running_chromium(*extra: str) -> AsyncIterator[Any]:
    """Playwright and one launched Chromium (see `launch`), closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch(playwright, *extra)
        try:
            yield browser
        finally:
            await browser.close()


def password_of(username: str) -> str:
    return f"pw-{username}-123456"
