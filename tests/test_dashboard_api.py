"""What the IT dashboard and the operator home need from the API: an endpoint's history
as per-minute series for charts, an operator's own calendar tokens, and the shipped
Grafana dashboard as a download. Through a real aiohttp client, on the fixed clock."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Client
from tests.health_support import (
    agent_token,
    health_settings,
    heartbeat,
    in_call,
    monitor_of,
    send,
)
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import ApiToken, AuditEvent
from vcbridge.core.settings import Settings

NGA_SON = "HUYEN-NGA-SON"
HA_TRUNG = "HUYEN-HA-TRUNG"
MakeUser = Callable[..., Awaitable[dict[str, str]]]
ROOT = Path(__file__).resolve().parent.parent
GRAFANA_FILE = ROOT / "monitoring" / "grafana-dashboard.json"
UPLOT = ROOT / "web" / "static" / "vendor" / "uplot-1.6.32"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(database_url, tmp_path)


async def _history(client: Client, headers: dict[str, str], code: str = NGA_SON,
                   query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/v1/health/{code}/history{query}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


# -- the history ------------------------------------------------------------------------------


async def test_history_is_one_value_per_minute_with_gaps_and_transitions(
    client: Client, admin: dict[str, str], clock: FixedClock
) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    # 10:00:05 .. 10:00:55 in a call with bitrates, 10:01:00 .. 10:02:00 in a call whose
    # bitrates the agent did not measure; then silence until 10:09 (offline), one more.
    for i in range(24):
        figures = in_call(loss=0.01) if i < 11 else in_call(
            loss=0.03, bitrate_in_bps=None, bitrate_out_bps=None)
        assert (await send(client, agent, NGA_SON, heartbeat(call=figures), clock)).status == 200
    await monitor_of(client).record_changes()  # what the recorder task does within 0.2 s
    clock.set(clock.now() + timedelta(minutes=7))
    await monitor_of(client).sweep()  # offline now
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    await monitor_of(client).flush_samples(everything=True)

    body = await _history(client, admin)
    assert body["code"] == NGA_SON and body["name"] == "UBND huyện Nga Sơn"
    assert body["step_seconds"] == 60 and body["minutes"] == 24 * 60
    # The window ends with the minute running now (10:09) and is whole minutes long.
    assert body["to"] == "2026-11-27T10:10:00+07:00"
    assert body["from"] == "2026-11-26T10:10:00+07:00"
    series = body["series"]
    assert {len(values) for values in series.values()} == {24 * 60}
    assert set(series) >= {"heartbeats", "in_call", "degraded", "cpu_percent",
                           "network_rtt_ms", "rtt_ms", "jitter_ms", "packet_loss_ratio",
                           "fps", "bitrate_in_bps", "bitrate_out_bps", "bridge_rtt_ms",
                           "bridge_packet_loss_ratio", "bridge_jitter_ms", "bridge_fps"}
    at_10_00 = 24 * 60 - 10  # the slot of 10:00
    assert series["heartbeats"][at_10_00:] == [11, 12, 1, 0, 0, 0, 0, 0, 0, 1]
    assert series["packet_loss_ratio"][at_10_00] == 0.01
    assert series["packet_loss_ratio"][at_10_00 + 1] == 0.03
    assert series["bitrate_in_bps"][at_10_00] == 1_500_000.0
    # Not measured: null, never 0 (the chart shows "no data", not a dead line).
    assert series["bitrate_in_bps"][at_10_00 + 1] is None
    assert series["rtt_ms"][at_10_00 + 3] is None and series["rtt_ms"][-1] is None
    assert series["network_rtt_ms"][-1] == 18.0
    assert series["heartbeats"][:at_10_00] == [0] * at_10_00
    assert body["state_at_start"] is None  # not monitored yet a day ago
    assert [t["state"] for t in body["transitions"]] == ["degraded", "offline", "degraded"]
    assert body["transitions_total"] == 3
    assert body["transitions"][1]["reasons"][0]["code"] == "no_heartbeat"

    # A shorter window starts later and still knows the state it began in.
    short = await _history(client, admin, query="?hours=1")
    assert short["minutes"] == 60 and short["from"] == "2026-11-27T09:10:00+07:00"
    clock.set(clock.now() + timedelta(hours=2))
    later = await _history(client, admin, query="?hours=1")
    assert later["transitions"] == [] and later["state_at_start"] in ("degraded", "offline")


async def test_who_reads_the_history(client: Client, admin: dict[str, str], clock: FixedClock,
                                     make_user: MakeUser) -> None:
    agent = await agent_token(client, admin, NGA_SON)
    assert (await send(client, agent, NGA_SON, heartbeat(), clock)).status == 200
    it = await make_user("it1", "it")
    operator = await make_user("op-nga-son", "operator", NGA_SON)
    booker = await make_user("booker1", "booker")
    for allowed in (admin, it, operator):
        await _history(client, allowed)
    for refused, code in ((operator, HA_TRUNG), (booker, NGA_SON), (agent, NGA_SON)):
        response = await client.get(f"/api/v1/health/{code}/history", headers=refused)
        assert response.status == 403, code
        assert (await response.json())["error"]["code"] == "forbidden"
    assert (await client.get("/api/v1/health/NO-SUCH/history", headers=it)).status == 404
    for hours in ("0", "169", "abc", "1.5"):
        response = await client.get(f"/api/v1/health/{NGA_SON}/history?hours={hours}",
                                    headers=it)
        assert response.status == 422, hours
    client.session.cookie_jar.clear()
    assert (await client.get(f"/api/v1/health/{NGA_SON}/history")).status == 401


# -- an operator's calendar tokens ----------------------------------------------------------


async def _audit(client: Client, action: str) -> list[AuditEvent]:
    async with client.app[DATABASE].read() as session:
        return list(await session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


async def _tokens(client: Client) -> list[ApiToken]:
    async with client.app[DATABASE].read() as session:
        return list(await session.scalars(select(ApiToken).where(ApiToken.endpoint_id.is_not(
            None)).order_by(ApiToken.id)))


async def test_an_operator_manages_its_own_calendar_tokens_only(
    client: Client, admin: dict[str, str], make_user: MakeUser
) -> None:
    operator = await make_user("op-nga-son", "operator", NGA_SON)
    tokens = f"/api/v1/endpoints/{NGA_SON}/tokens"
    agent = await (await client.post(tokens, headers=admin,
                                     json={"scope": "agent", "label": "máy điểm cầu"})).json()

    created = await client.post(tokens, headers=operator,
                                json={"scope": "calendar", "label": "Lịch Outlook"})
    assert created.status == 201, await created.text()
    secret = await created.json()
    assert secret["scope"] == "calendar" and secret["token"]
    issued = await _audit(client, "endpoint.token_issue")
    assert issued[-1].actor == "op-nga-son" and issued[-1].target_id == NGA_SON
    assert secret["token"] not in json.dumps(issued[-1].after)

    # The feed answers with the token in the URL (calendar programs send no headers,
    # and no cookie: the logins above left one in the test client).
    client.session.cookie_jar.clear()
    feed = await client.get(f"/api/v1/endpoints/{NGA_SON}/calendar.ics",
                            params={"token": secret["token"]})
    assert feed.status == 200 and "BEGIN:VCALENDAR" in await feed.text()

    # The operator's list: its calendar tokens, no agent token, no secret.
    listed = await (await client.get(tokens, headers=operator)).json()
    assert [t["id"] for t in listed["tokens"]] == [secret["id"]]
    assert "token" not in listed["tokens"][0]

    before = len(await _tokens(client))
    refusals = [
        client.post(tokens, headers=operator, json={"scope": "agent"}),
        client.post(f"/api/v1/endpoints/{HA_TRUNG}/tokens", headers=operator,
                    json={"scope": "calendar"}),
        client.get(f"/api/v1/endpoints/{HA_TRUNG}/tokens", headers=operator),
        client.delete(f"{tokens}/{agent['id']}", headers=operator),
        client.post(tokens, headers=await make_user("it1", "it"), json={"scope": "calendar"}),
        client.post(tokens, headers=await make_user("booker1", "booker"),
                    json={"scope": "calendar"}),
        client.post(tokens, headers=bearer_of(agent), json={"scope": "calendar"}),
    ]
    for call in refusals:
        response = await call
        assert response.status == 403, await response.text()
        assert (await response.json())["error"]["code"] == "forbidden"
    assert len(await _tokens(client)) == before  # nothing written
    assert all(t.revoked_at is None for t in await _tokens(client))

    revoked = await client.delete(f"{tokens}/{secret['id']}", headers=operator)
    assert revoked.status == 200 and (await revoked.json())["revoked_at"]
    assert (await _audit(client, "endpoint.token_revoke"))[-1].actor == "op-nga-son"
    client.session.cookie_jar.clear()
    feed = await client.get(f"/api/v1/endpoints/{NGA_SON}/calendar.ics",
                            params={"token": secret["token"]})
    assert feed.status == 401
    # The admin still sees and manages everything.
    every = await (await client.get(tokens, headers=admin)).json()
    assert {t["scope"] for t in every["tokens"]} == {"agent", "calendar"}


def bearer_of(created: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {created['token']}"}


# -- the Grafana dashboard ----------------------------------------------------------------


async def test_the_grafana_dashboard_downloads_for_staff(client: Client, admin: dict[str, str],
                                                        make_user: MakeUser) -> None:
    shipped = json.loads(GRAFANA_FILE.read_bytes())
    for who in (admin, await make_user("it1", "it")):
        response = await client.get("/api/v1/monitoring/grafana-dashboard.json", headers=who)
        assert response.status == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert json.loads(await response.read()) == shipped
    operator = await make_user("op-nga-son", "operator", NGA_SON)
    response = await client.get("/api/v1/monitoring/grafana-dashboard.json", headers=operator)
    assert response.status == 403


# -- the pages ----------------------------------------------------------------------------


async def test_the_pages_and_the_vendored_chart_library_are_served(client: Client) -> None:
    for path in ("/dashboard", "/operator"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "text/html", path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    script = await client.get("/static/vendor/uplot-1.6.32/uPlot.esm.js")
    assert script.status == 200 and script.content_type == "text/javascript"
    style = await client.get("/static/vendor/uplot-1.6.32/uPlot.min.css")
    assert style.status == 200 and style.content_type == "text/css"
    # Not served: only scripts, styles, pages and icons are.
    assert (await client.get("/static/vendor/uplot-1.6.32/LICENSE")).status == 404


def test_the_vendored_uplot_is_the_recorded_release() -> None:
    """The files are the package's, unchanged: their hashes are the README's, and the
    licence travels with them."""
    readme = (UPLOT / "README.md").read_text(encoding="utf-8")
    assert "version 1.6.32" in readme
    assert "MIT" in (UPLOT / "LICENSE").read_text(encoding="utf-8")
    for name in ("uPlot.esm.js", "uPlot.min.css"):
        recorded = re.search(rf"`{re.escape(name)}` \(sha256 ([0-9a-f]{{64}})\)", readme)
        assert recorded is not None, name
        assert hashlib.sha256((UPLOT / name).read_bytes()).hexdigest() == recorded[1], name
