"""Calendar benchmark: the booking calendar's week view in Chromium with a year of
bookings, and the list API for one week.

Targets (issue 13): with 10,000 conferences booked over a year, the week view renders
in under 300 ms after its data arrives, and the list API answers a week in under 50 ms.

For each database (SQLite by default; `--db postgres` or `both`):

1. `vcbridge serve` on a scratch database migrates it, syncs the roster and creates
   the admin; it is stopped, and the year is loaded by direct inserts: the legal
   schedule of bench/booking.py (same seed, same model of the rules: 10,000
   conferences of 2 to 31 endpoints, Monday to Saturday, 07:15 to 18:00, about 190 a
   week). Then `vcbridge serve` again, with the scheduler off: the loaded year begins
   on 28/11/2026 whatever today is, and a scheduler would run the lifecycle of every
   conference already past.
2. (b) The list API as the calendar page calls it for a week:
   `GET /api/v1/conferences?from=<Monday 00:00>&to=<next Monday>&limit=500`, for
   `--weeks` weeks spread over the year, `--rounds` times each, over one keep-alive
   connection on loopback with a bearer token; the time of each request is measured
   in this process (send to last byte of the JSON read).
3. (a) A booker's /calendar in a real headless Chromium (Debian's /usr/bin/chromium
   driven by Playwright, 1366x768): the week view of the first loaded week, then
   "next week" clicked `--renders` times. The page itself measures each render with
   performance marks (web/static/calendar.js): `cal-render` from the moment the
   week's conferences have arrived (every page of the list API read) to the view
   built and laid out, and `cal-paint` to the next frame after it.

Run it from the project root with the project's virtualenv:

    .venv/bin/python bench/calendar_week.py                 # SQLite
    .venv/bin/python bench/calendar_week.py --db both --renders 30

A table goes to stderr and one JSON line with every figure to stdout at the end, with
the load average before and after: on a shared 2-core machine other work shows
directly in these times.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy
from sqlalchemy import select

from bench.booking import ZONE, make_plan, populate
from bench.shared import cpu_model, log, on_each_database, percentile
from harness.chromium import chromium_missing, launch, log_in, new_page, password_of
from harness.service_process import Service, service_env
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Endpoint, EndpointKind
from vcbridge.core.roster import load_roster
from vcbridge.core.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TARGETS = {"week_render_ms": 300.0, "list_week_ms": 50.0}
BOOKER = "bench-booker"
# The admin's password that harness/service_process.service_env gives a test service.
ADMIN_PASSWORD = service_env()["VCBRIDGE_ADMIN_PASSWORD"]

# Waits for the page's next measure of `name` (after `count` of them) and returns it.
NEXT_MEASURE = """
async ([name, count]) => {
  for (;;) {
    const found = performance.getEntriesByName(name, 'measure');
    if (found.length > count) return found[found.length - 1].duration;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
"""


def figures(values: list[float]) -> dict[str, Any]:
    """n, median, p95 and max in milliseconds."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1), "max": round(max(values), 1)}


def mondays(days: list[date]) -> list[date]:
    """Every Monday of the loaded year whose whole week is loaded."""
    first, last = days[0], days[-1]
    monday = first + timedelta(days=(7 - first.weekday()) % 7)
    found = []
    while monday + timedelta(days=6) <= last:
        found.append(monday)
        monday += timedelta(days=7)
    return found


def spread(items: list[date], count: int) -> list[date]:
    """`count` items evenly over `items`."""
    if count >= len(items):
        return items
    return [items[round(i * (len(items) - 1) / max(1, count - 1))] for i in range(count)]


def local_midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE).isoformat()


async def load_year(url: str, plan: Any) -> dict[str, Any]:
    database = Database(url)
    try:
        async with database.read() as session:
            found = dict((await session.execute(
                select(Endpoint.code, Endpoint.id).where(Endpoint.active.is_(True)))).all())
        if sorted(found) != sorted(plan.codes):
            raise RuntimeError("the database's active endpoints differ from the roster")
        return await populate(database, plan, [found[c] for c in plan.codes])
    finally:
        await database.dispose()


async def measure_list(base: str, weeks: list[date], rounds: int) -> dict[str, Any]:
    """(b) The list API for one week, as the page asks it."""
    timings: list[float] = []
    rows: list[int] = []
    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as client:
        async with client.post("/api/v1/auth/login", json={
                "username": "admin", "password": ADMIN_PASSWORD}) as response:
            token = (await response.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        for n in range(rounds + 1):  # the first round warms the caches, uncounted
            for monday in weeks:
                params = {"from": local_midnight(monday),
                          "to": local_midnight(monday + timedelta(days=7)), "limit": "500"}
                started = time.perf_counter()
                async with client.get("/api/v1/conferences", params=params,
                                      headers=headers) as reply:
                    body = await reply.json()
                elapsed = (time.perf_counter() - started) * 1000
                if reply.status != 200:
                    raise RuntimeError(f"GET answered {reply.status}: {body}")
                if body["next_offset"] is not None:
                    raise RuntimeError(f"the week of {monday} needs more than one page")
                if n:
                    timings.append(elapsed)
                    rows.append(len(body["conferences"]))
    return {"list_week_ms": figures(timings),
            "list_week_rows": {"mean": round(sum(rows) / len(rows), 1), "max": max(rows)}}


async def measure_render(base: str, first: date, renders: int) -> dict[str, Any]:
    """(a) The week view in Chromium: the page's own measures of each render."""
    from playwright.async_api import async_playwright

    render: list[float] = []
    paint: list[float] = []
    counts: list[int] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            page = await new_page(browser, base, errors)
            await log_in(page, f"/calendar?view=week&date={first.isoformat()}", BOOKER)
            await page.wait_for_selector("#cal-view[data-state=ready][data-view=week]")
            for n in range(renders + 2):  # two warm-up weeks, uncounted
                done = len(await page.evaluate(
                    "() => performance.getEntriesByName('cal-paint', 'measure')"))
                rendered = len(await page.evaluate(
                    "() => performance.getEntriesByName('cal-render', 'measure')"))
                await page.click("#cal-next")
                took = await page.evaluate(NEXT_MEASURE, ["cal-render", rendered])
                painted = await page.evaluate(NEXT_MEASURE, ["cal-paint", done])
                count = int(await page.get_attribute("#cal-view", "data-count") or 0)
                if n >= 2:
                    render.append(took)
                    paint.append(painted)
                    counts.append(count)
        finally:
            await browser.close()
    if errors:
        raise RuntimeError(f"the page failed: {errors}")
    return {"week_render_ms": figures(render), "week_paint_ms": figures(paint),
            "week_conferences": {"mean": round(sum(counts) / len(counts), 1),
                                 "max": max(counts)}}


async def bench_database(url: str, label: str, tmp: Path, args: argparse.Namespace,
                         plan: Any) -> dict[str, Any]:
    env = service_env(VCBRIDGE_DATABASE_URL=url, VCBRIDGE_SCHEDULER_ENABLED="false",
                      VCBRIDGE_CONFIG=os.devnull)
    data_dir = tmp / f"{label}-service"
    log(f"[{label}] migrating and syncing the roster (vcbridge serve)")
    first = Service(data_dir, env)
    try:
        first.wait_healthy(timeout=120)
    finally:
        first.stop()
    log(f"[{label}] loading {len(plan.requests)} conferences")
    result: dict[str, Any] = {"populate": await load_year(url, plan)}
    log(f"[{label}] loaded: {result['populate']}")
    service = Service(data_dir, env)
    try:
        service.wait_healthy(timeout=120)
        service.login()
        status, body = service.request("POST", "/api/v1/users", {
            "username": BOOKER, "password": password_of(BOOKER), "role": "booker"})
        if status != 201:
            raise RuntimeError(f"could not create the booker: {status} {body}")
        weeks = mondays(plan.schedule.days)
        log(f"[{label}] list API: {args.weeks} weeks x {args.rounds}")
        result.update(await measure_list(service.base, spread(weeks, args.weeks), args.rounds))
        log(f"[{label}] week view in Chromium: {args.renders} weeks")
        result.update(await measure_render(service.base, weeks[0], args.renders))
    finally:
        service.stop()
    result["meets_targets"] = {
        name: result[name]["p95"] < limit for name, limit in TARGETS.items()}
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'':34}{'db':>10}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"]
    for title, key in (("week view: data -> rendered", "week_render_ms"),
                       ("week view: data -> next frame", "week_paint_ms"),
                       ("GET conferences, one week", "list_week_ms")):
        for db, result in results.items():
            f = result.get(key) or {}
            if f.get("n"):
                lines.append(f"{title:34}{db:>10}{f['n']:>6}{f['p50']:>10}{f['p95']:>10}"
                             f"{f['max']:>10}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    missing = chromium_missing()
    if missing:
        log(missing)
        return 2
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": cpu_model(),
        "python": platform.python_version(), "sqlalchemy": sqlalchemy.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    roster = load_roster(Settings().roster_file)
    codes = [e.code for e in roster]
    provincial = {i for i, e in enumerate(roster) if e.kind is EndpointKind.PROVINCIAL}
    log(f"planning {args.conferences} conferences over a year, {len(codes)} endpoints")
    plan = make_plan(codes, provincial, args.conferences, args.max_concurrent)
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = await on_each_database(
        wanted, args.postgres_url, machine,
        lambda url, db, tmp: bench_database(url, db, tmp, args, plan),
        failures=(OSError, RuntimeError, TimeoutError, asyncpg.PostgresError,
                  sqlalchemy.exc.SQLAlchemyError, aiohttp.ClientError))
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    log("")
    log(table(results))
    print(json.dumps({
        "bench": "calendar", "conferences": args.conferences, "weeks": args.weeks,
        "rounds": args.rounds, "renders": args.renders, "targets": TARGETS, **results,
        "machine": machine,
    }, ensure_ascii=False), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--conferences", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=26, help="weeks asked of the list API")
    parser.add_argument("--rounds", type=int, default=4, help="times each week is asked")
    parser.add_argument("--renders", type=int, default=20, help="weeks rendered in Chromium")
    parser.add_argument("--max-concurrent", type=int, default=10,
                        help="the bridge's concurrency the loaded year is planned for")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="an existing database, used only to create a scratch one")
    args = parser.parse_args()
    for name in ("conferences", "weeks", "rounds", "renders", "max_concurrent"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    os.environ["VCBRIDGE_CONFIG"] = os.devnull
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
