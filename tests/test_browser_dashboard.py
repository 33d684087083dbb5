"""The IT dashboard (/dashboard) and the operator home (/operator), end to end in a real
headless Chromium against a real `vcbridge serve` process.

The roster's 31 endpoints; two run a real `vcbridge agent` process (one is killed to
see its tile turn red), three more report through the heartbeat API (degraded for
reasons of their own), the rest have never been seen. Health timings are short (a
heartbeat a second, offline after 4 s) so the offline rule acts within the test. One
endpoint has a day of stored per-minute samples (written into the service's database,
as a day of heartbeats would have) for the charts.

Screenshots of every state, at 1366x768 and at phone size (390x844), go to
`test-artifacts/browser/dashboard/` (or $VCBRIDGE_TEST_ARTIFACTS/browser/dashboard).
Skips without Chromium on a developer's machine, fails in CI (VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from harness.chromium import chromium_missing, log_in, new_page, password_of, running_chromium
from harness.service_process import Service, service_env
from tests.support import eventually as until
from tests.support import skip_or_fail
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Endpoint, HealthSample, HealthTransition

# One event loop for the module: the browser and the dashboard page are shared by its tests.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = Path(os.environ.get(
    "VCBRIDGE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
SHOTS = ARTIFACTS / "browser" / "dashboard"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
LOOPBACK = "127.0.0.1"

# Short health timings: the offline rule acts within seconds. The agent reports every
# 5 s whatever the service's interval, so offline_after stays well above that (persist +
# sweep must stay under it). The agent's CPU figure is the machine's load, and a test
# machine shared with other work is often fully loaded: that is not what this module
# is about, so the CPU limit is the top of the scale.
OFFLINE_AFTER = 12.0
HEALTH_ENV = {
    "VCBRIDGE_HEALTH_HEARTBEAT_INTERVAL_SECONDS": "2",
    "VCBRIDGE_HEALTH_OFFLINE_AFTER_SECONDS": str(OFFLINE_AFTER),
    "VCBRIDGE_HEALTH_SWEEP_SECONDS": "0.5",
    "VCBRIDGE_HEALTH_PERSIST_SECONDS": "2",
    "VCBRIDGE_HEALTH_STREAM_GRACE_SECONDS": "1",
    "VCBRIDGE_HEALTH_HEARTBEAT_MIN_GAP_SECONDS": "0.2",
    "VCBRIDGE_HEALTH_CPU_PERCENT_MAX": "100",
}
AGENTS = ("HUYEN-NGA-SON", "TINH-UY")  # real agent processes; Nga Son's is killed
POSTED = {  # endpoint -> what its heartbeats (through the API) say
    "SO-TTTT": {"devices": {"camera": True, "microphone": True, "speaker": False}},
    "HUYEN-HA-TRUNG": {"devices": {"camera": False, "microphone": True, "speaker": True}},
    "UBND-TINH": {},
}
HISTORY = "SO-TTTT"  # a day of samples for the charts
USERS = {"it1": ("it", None), "op-nga-son": ("operator", "HUYEN-NGA-SON")}


def heartbeat_body(**changes: Any) -> dict[str, Any]:
    return {"sent_at": datetime.now(UTC).isoformat(),
            "devices": {"camera": True, "microphone": True, "speaker": True},
            "cpu_percent": 14.0, "network": {"interface": "eth0", "rtt_ms": 21.0},
            "agent_version": "1.0.0"} | changes


class Poster(threading.Thread):
    """Heartbeats through the API for POSTED, once a second, until stopped."""

    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.tokens, self.stopped = base, tokens, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for code, token in self.tokens.items():
                request = urllib.request.Request(
                    f"{self.base}/api/v1/endpoints/{code}/heartbeat", method="POST",
                    data=json.dumps(heartbeat_body(**POSTED[code])).encode(),
                    headers={"Content-Type": "application/json",
                             "Authorization": f"Bearer {token}"})
                with contextlib.suppress(urllib.error.URLError, OSError):
                    urllib.request.urlopen(request, timeout=5).close()
            self.stopped.wait(1.0)


class Agent:
    """`python -m vcbridge.cli agent` for one endpoint (its token in the environment)."""

    def __init__(self, folder: Path, server: str, code: str, token: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
        env.update(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, VCBRIDGE_AGENT_TOKEN=token)
        self.log = folder / f"agent-{code}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vcbridge.cli", "agent", "--server", server,
                 "--endpoint", code, "--media", "testsrc"],
                env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


async def seed_history(data_dir: Path, code: str, now: datetime) -> None:
    """A day of per-minute samples of `code` (as a day of heartbeats leaves them): a
    two-hour conference six hours ago whose agent measured no bitrate, a half-hour gap
    twelve hours ago, and the transitions around them."""
    database = Database(f"sqlite+aiosqlite:///{(data_dir / 'vcbridge.sqlite3').resolve()}")
    try:
        async with database.write() as session:
            endpoint_id = await session.scalar(select(Endpoint.id).where(Endpoint.code == code))
            assert endpoint_id is not None
            end = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
            for minute in range(24 * 60 - 5):
                at = end - timedelta(minutes=minute)
                ago = (now - at).total_seconds() / 3600
                if 12 <= ago < 12.5:
                    continue  # the agent's computer was off: no row at all
                wave = math.sin(minute / 37.0)
                row = HealthSample(endpoint_id=endpoint_id, minute=at, heartbeats=12, degraded=0,
                                   in_call=0, cpu_sum=12 * (25 + 8 * wave), cpu_n=12,
                                   net_rtt_sum=12 * (22 + 6 * wave), net_rtt_n=12)
                if 4 <= ago < 6:
                    row.in_call = 12
                    row.rtt_sum, row.rtt_n = 12 * (48 + 20 * abs(wave)), 12
                    row.jitter_sum, row.jitter_n = 12 * (6 + 4 * abs(wave)), 12
                    row.loss_sum, row.loss_n = 12 * (0.004 + 0.02 * max(0.0, wave)), 12
                    row.fps_sum, row.fps_n = 12 * (24 - 4 * abs(wave)), 12
                session.add(row)
            for hours, state, previous in ((12.5, "offline", "ok"), (11.9, "ok", "offline"),
                                           (5.2, "degraded", "ok"), (4.9, "ok", "degraded")):
                reasons = ([{"code": "packet_loss", "value": 0.031, "limit": 0.02}]
                           if state == "degraded" else
                           [{"code": "no_heartbeat"}] if state == "offline" else [])
                session.add(HealthTransition(endpoint_id=endpoint_id, state=state,
                                             previous=previous, reasons=reasons,
                                             at=now - timedelta(hours=hours)))
    finally:
        await database.dispose()


# -- the service, the agents, the browser ------------------------------------------------------


class World:
    def __init__(self, service: Service, agents: dict[str, Agent], poster: Poster) -> None:
        self.service, self.agents, self.poster = service, agents, poster


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    folder = tmp_path_factory.mktemp("dashboard-service")
    service = Service(folder, service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, **HEALTH_ENV))
    agents: dict[str, Agent] = {}
    poster: Poster | None = None
    try:
        service.wait_healthy(timeout=60)
        service.login()
        for username, (role, endpoint) in USERS.items():
            service.add_user(username, role, password_of(username), endpoint)
        tokens = {}
        for code in (*AGENTS, *POSTED):
            status, answer = service.request("POST", f"/api/v1/endpoints/{code}/tokens",
                                             {"scope": "agent", "label": "test"})
            assert status == 201, answer
            tokens[code] = answer["token"]
        # Its own loop, in its own thread: the module's loop belongs to the tests.
        seeding = threading.Thread(target=asyncio.run,
                                   args=(seed_history(folder, HISTORY, datetime.now(UTC)),))
        seeding.start()
        seeding.join()
        agents = {code: Agent(folder, service.base, code, tokens[code]) for code in AGENTS}
        poster = Poster(service.base, {code: tokens[code] for code in POSTED})
        poster.start()
        yield World(service, agents, poster)
    finally:
        if poster is not None:
            poster.stopped.set()
        for agent in agents.values():
            agent.stop()
        service.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(world: World) -> AsyncIterator[Any]:
    async with running_chromium() as browser:
        yield browser


async def shot(page: Any, name: str, *, phone: bool = True, full: bool = False) -> None:
    """Screenshots at 1366x768 and (with `phone`) at 390x844."""
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)
    if phone:
        await page.set_viewport_size(PHONE)
        await asyncio.sleep(0.3)
        await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=full)
        await page.set_viewport_size(DESKTOP)
        await asyncio.sleep(0.2)


async def state_of(page: Any, code: str) -> str | None:
    value: str | None = await page.get_attribute(f'.htile[data-code="{code}"]', "data-state")
    return value



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dashboard(world: World, browser: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    """The IT staff's dashboard page, logged in (shared by the dashboard tests)."""
    errors: list[str] = []
    page = await new_page(browser, world.service.base, errors)
    await log_in(page, "/dashboard", "it1")
    await page.wait_for_selector(".htile")
    yield page, errors
    await page.context.close()


# -- the IT dashboard ------------------------------------------------------------------------------


async def test_every_endpoint_is_a_tile_and_a_killed_agent_turns_red(
        world: World, dashboard: tuple[Any, list[str]]) -> None:
    page, errors = dashboard
    assert await page.locator(".htile").count() == 31
    # The live agents come up ok; the API-reported ones degraded with their reasons.
    for code in AGENTS:
        await until(lambda c=code: _is(page, c, "ok"), f"{code} ok", 60)
    await until(lambda: _is(page, "HUYEN-HA-TRUNG", "degraded"), "Ha Trung degraded", 20)
    reason = await page.text_content('.htile[data-code="HUYEN-HA-TRUNG"] .htile-reason')
    assert reason is not None and "thiếu camera" in reason
    assert await state_of(page, "HUYEN-MUONG-LAT") == "offline"
    counts = {key: await page.text_content(f'.filter[data-filter="{key}"] .filter-count')
              for key in ("all", "ok", "degraded", "offline")}
    assert counts == {"all": "31", "ok": "2", "degraded": "3", "offline": "26"}
    await shot(page, "01-dashboard-31-endpoints")

    killed = time.monotonic()
    world.agents["HUYEN-NGA-SON"].kill()
    # Offline within the rule's time (12 s without a heartbeat; the sweep runs every 0.5 s),
    # live from the event stream, without a reload. The bound only keeps a wedged run
    # from waiting for ever on a busy machine.
    await until(lambda: _is(page, "HUYEN-NGA-SON", "offline"), "the killed agent's tile red",
                OFFLINE_AFTER + 20)
    took = time.monotonic() - killed
    print(f"tile red {took:.1f} s after the agent was killed (rule: {OFFLINE_AFTER} s)")
    colour = await page.eval_on_selector('.htile[data-code="HUYEN-NGA-SON"]',
                                         "n => getComputedStyle(n).backgroundColor")
    red, green, blue = (int(x) for x in colour[colour.index("(") + 1:-1].split(",")[:3])
    assert red > 150 and green < 80 and blue < 80, colour
    reason = await page.text_content('.htile[data-code="HUYEN-NGA-SON"] .htile-reason')
    assert reason is not None and "heartbeat" in reason
    assert await state_of(page, "TINH-UY") == "ok"
    await shot(page, "02-dashboard-agent-killed", phone=False)
    assert errors == []


async def _is(page: Any, code: str, state: str) -> bool:
    return await state_of(page, code) == state


async def test_filter_search_sort_group(dashboard: tuple[Any, list[str]]) -> None:
    page, errors = dashboard
    await page.click('.filter[data-filter="degraded"]')
    visible = await page.eval_on_selector_all(".htile", "ns => ns.map(n => n.dataset.state)")
    assert visible and set(visible) == {"degraded"}
    await shot(page, "03-dashboard-filter-degraded", phone=False)
    await page.click('.filter[data-filter="all"]')
    await page.fill("#board-search", "nga son")  # without diacritics
    await until(lambda: _count(page, 1), "one tile for 'nga son'", 5)
    assert await page.text_content(".htile .htile-name") == "Nga Sơn"
    await page.fill("#board-search", "")
    await page.select_option("#board-group", "kind")
    await page.select_option("#board-sort", "name")
    groups = await page.eval_on_selector_all(".hgroup", "ns => ns.map(n => n.dataset.group)")
    assert groups == ["provincial", "district"]
    names = await page.eval_on_selector_all('.hgroup[data-group="district"] .htile-name',
                                            "ns => ns.map(n => n.textContent)")
    assert len(names) == 27 and names[0] == "Bá Thước"
    await shot(page, "04-dashboard-by-kind", phone=True)
    await page.select_option("#board-group", "state")
    await page.select_option("#board-sort", "severity")
    assert errors == []


async def _count(page: Any, n: int) -> bool:
    return bool(await page.locator(".htile").count() == n)


async def test_details_show_the_day_as_charts(dashboard: tuple[Any, list[str]]) -> None:
    page, errors = dashboard
    await page.click(f'.htile[data-code="{HISTORY}"]')
    await page.wait_for_selector('#detail-charts[data-ready="true"]', timeout=15000)
    # Drawn by uPlot on canvases: round-trip time, loss, jitter and frame rate had data.
    for chart in ("rtt", "loss", "jitter", "fps"):
        assert await page.locator(f'.chart[data-chart="{chart}"] canvas').count() == 1, chart
    # No bitrate was measured: said so in words, not an empty frame.
    empty = await page.text_content('.chart[data-chart="bitrate"] .chart-empty')
    assert empty is not None and "tốc độ bit" in empty
    assert await page.locator("#detail-transitions .transition").count() >= 4
    facts = await page.text_content("#detail .facts")
    assert facts is not None and "1.0.0" in facts and "Camera" in facts
    await shot(page, "05-dashboard-detail")
    await page.click("#detail .detail-close")
    assert errors == [], errors  # uPlot under the page's policy: no violation


def todays_start(ahead: timedelta) -> datetime:
    """A start `ahead` from now that is still today in Asia/Ho_Chi_Minh, where the
    dashboard's "today" ends: late in the local evening, two minutes ahead instead (and in
    the last two minutes of the day, the first minutes of the next)."""
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    while True:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        for start in (now + ahead, now + timedelta(minutes=2)):
            if start.astimezone(zone).date() == datetime.now(zone).date():
                return start
        time.sleep(30)


async def test_todays_conference_readiness_and_the_report_csv(
        world: World, dashboard: tuple[Any, list[str]]) -> None:
    page, errors = dashboard
    start = todays_start(timedelta(minutes=40))
    status, booked = world.service.request("POST", "/api/v1/conferences", {
        "title": "Giao ban kỹ thuật", "chair": "TINH-UY",
        "participants": ["TINH-UY", "HUYEN-HA-TRUNG", "HUYEN-MUONG-LAT"],
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    assert status == 201, booked
    item = f'.today-item[data-conference="{booked["id"]}"]'
    await page.wait_for_selector(item + " .readiness", timeout=15000)  # live: the booking event
    readiness = await page.text_content(item + " .readiness-text")
    assert readiness == "1/3 sẵn sàng", readiness
    assert "thiếu camera" in (await page.text_content(item + " .not-ready") or "")
    await shot(page, "06-dashboard-today", phone=False)

    await page.click("#tab-report")
    await page.wait_for_selector("#report-table tbody tr")
    assert await page.locator("#report-table tbody tr").count() == 31
    await shot(page, "07-dashboard-report")
    async with page.expect_download() as info:
        await page.click("#report-csv")
    download = await info.value
    raw = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0][:2] == ["Mã điểm cầu", "Tên điểm cầu"] and len(rows) == 32
    assert download.suggested_filename.startswith("bao-cao-kha-dung-")
    await page.click("#tab-board")
    assert errors == []


async def test_english_and_the_links(dashboard: tuple[Any, list[str]]) -> None:
    page, errors = dashboard
    await page.click("#lang")
    await page.wait_for_function(
        "() => document.querySelector('.filter[data-filter=\"offline\"] .filter-label')"
        ".textContent === 'Offline'")
    assert await page.get_attribute("#link-grafana", "href") == (
        "/api/v1/monitoring/grafana-dashboard.json")
    assert await page.get_attribute("#link-metrics", "href") == "/metrics"
    await shot(page, "08-dashboard-english", phone=False)
    await page.click("#lang")
    assert errors == []


# -- the operator home ------------------------------------------------------------------------


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_operator_home(world: World, browser: Any) -> None:
    service = world.service
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    mine = {"title": "Họp chuyển đổi số Nga Sơn", "chair": "UBND-TINH",
            "participants": ["UBND-TINH", "HUYEN-NGA-SON"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat()}
    theirs = mine | {"title": "Họp riêng của Hà Trung", "chair": "TINH-UY",
                     "participants": ["TINH-UY", "HUYEN-HA-TRUNG"]}
    later = mine | {"title": "Giao ban tuần tới", "start": (start + timedelta(days=2)).isoformat(),
                    "end": (start + timedelta(days=2, hours=1)).isoformat()}
    for body in (mine, theirs, later):
        status, answer = service.request("POST", "/api/v1/conferences", body)
        assert status == 201, answer

    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    await log_in(page, "/operator", "op-nga-son")
    await page.wait_for_selector(".op-conference")
    titles = await page.eval_on_selector_all(".op-conf-title", "ns => ns.map(n => n.textContent)")
    assert set(titles) == {"Họp chuyển đổi số Nga Sơn", "Giao ban tuần tới"}
    link = await page.get_attribute(".op-conf-title", "href")
    assert link is not None and link.startswith("/conferences/")
    assert await page.text_content("#op-endpoint") == "UBND huyện Nga Sơn"
    await page.wait_for_selector("#op-health .hchip")
    assert await page.text_content("#op-join-button") == "Tham gia"
    assert await page.get_attribute("#op-join-button", "href") == "/join"
    await shot(page, "10-operator-home", full=True)

    await page.fill("#calendar-label", "Outlook phòng họp")
    await page.click("#calendar-create")
    url = await page.input_value("#calendar-url")
    assert "/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics?token=" in url
    status, text = await asyncio.to_thread(_fetch, url)  # as a calendar program would
    assert status == 200 and "BEGIN:VCALENDAR" in text and "Nga Sơn" in text
    assert await page.locator(".calendar-token").count() == 1
    await shot(page, "11-operator-calendar-link", full=True)

    # Shown once: after a reload the link is gone, the token is listed.
    await page.reload()
    await page.wait_for_selector(".calendar-token")
    assert await page.locator("#calendar-url").count() == 0
    await page.click(".calendar-token button")
    await shot(page, "12-operator-revoke-confirm", phone=False)
    await page.click("#revoke-yes")
    await page.wait_for_selector(".calendar-token", state="detached")
    status, _ = await asyncio.to_thread(_fetch, url)
    assert status == 401
    await shot(page, "13-operator-revoked", phone=False)
    assert errors == []
    await page.context.close()

    # An admin picks the endpoint.
    page = await new_page(browser, service.base, errors)
    await page.goto("/operator", wait_until="domcontentloaded")
    await page.fill("#username", "admin")
    await page.fill("#password", "admin-password-e2e")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#op-pick")
    assert await page.locator(".op-conference").count() == 0
    await shot(page, "14-operator-admin-picks", phone=False)
    await page.select_option("#op-pick", "HUYEN-HA-TRUNG")
    await page.wait_for_selector(".op-conference")
    titles = await page.eval_on_selector_all(".op-conf-title", "ns => ns.map(n => n.textContent)")
    assert "Họp riêng của Hà Trung" in titles and "Họp chuyển đổi số Nga Sơn" not in titles
    assert await page.locator("#op-join-button").count() == 0  # the admin is no site
    await shot(page, "15-operator-admin-ha-trung", phone=False)
    assert errors == []
    await page.context.close()
