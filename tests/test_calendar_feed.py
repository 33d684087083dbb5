"""A district operator subscribes to its endpoint's calendar from a calendar program."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar

from tests.conftest import Client
from tests.test_booking import book

H = dict[str, str]


async def calendar_token(client: Client, admin: H, code: str) -> str:
    response = await client.post(f"/api/v1/endpoints/{code}/tokens",
                                 json={"scope": "calendar", "label": "Lịch Outlook"},
                                 headers=admin)
    assert response.status == 201
    return str((await response.json())["token"])


async def test_feed_parses_back_as_rfc5545_with_the_endpoints_conferences(
    client: Client, admin: H, booker: H
) -> None:
    weekly = await book(client, booker, title="Giao ban <tuần> & Thanh Hóa",
                        rrule="FREQ=WEEKLY;COUNT=3")
    await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-YEN-DINH"])
    await client.delete(f"/api/v1/conferences/{weekly['occurrence_ids'][1]}", headers=booker)
    token = await calendar_token(client, admin, "HUYEN-NGA-SON")

    # Calendar programs cannot send headers: the token rides in the URL, no cookie.
    client.session.cookie_jar.clear()
    response = await client.get("/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics",
                                params={"token": token})
    assert response.status == 200
    assert response.content_type == "text/calendar"
    calendar = Calendar.from_ical(await response.read())
    events = [c for c in calendar.walk("VEVENT")]
    assert len(events) == 3
    assert [str(e["summary"]) for e in events] == ["Giao ban <tuần> & Thanh Hóa"] * 3
    assert [e.decoded("dtstart") for e in events] == [
        datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 8, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 15, 1, 0, tzinfo=UTC),
    ]
    assert [str(e["status"]) for e in events] == ["CONFIRMED", "CANCELLED", "CONFIRMED"]
    assert events[1]["sequence"] == 1 and events[0]["sequence"] == 0
    assert len({str(e["uid"]) for e in events}) == 3
    assert "Văn phòng UBND tỉnh" in str(events[0]["description"])


async def test_calendar_token_is_scoped_to_its_endpoint_and_to_the_feed(
    client: Client, admin: H
) -> None:
    token = await calendar_token(client, admin, "HUYEN-NGA-SON")
    client.session.cookie_jar.clear()
    other = await client.get("/api/v1/endpoints/HUYEN-QUAN-SON/calendar.ics",
                             params={"token": token})
    assert other.status == 403
    api = await client.get("/api/v1/conferences", headers={"Authorization": f"Bearer {token}"})
    assert api.status == 403
    forged = await client.get("/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics",
                              params={"token": token + "x"})
    assert forged.status == 401
    anonymous = await client.get("/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics")
    assert anonymous.status == 401


async def test_revoked_calendar_token_stops_working(client: Client, admin: H) -> None:
    response = await client.post("/api/v1/endpoints/HUYEN-NGA-SON/tokens",
                                 json={"scope": "calendar"}, headers=admin)
    issued: dict[str, Any] = await response.json()
    client.session.cookie_jar.clear()
    url = "/api/v1/endpoints/HUYEN-NGA-SON/calendar.ics"
    assert (await client.get(url, params={"token": issued["token"]})).status == 200
    revoke = await client.delete(f"/api/v1/endpoints/HUYEN-NGA-SON/tokens/{issued['id']}",
                                 headers=admin)
    assert revoke.status == 200
    assert (await client.get(url, params={"token": issued["token"]})).status == 401


async def test_operator_reads_own_calendar_with_its_login(
    client: Client, booker: H, make_user: Any
) -> None:
    await book(client, booker)
    operator = await make_user("op-muong-lat", "operator", "HUYEN-MUONG-LAT")
    mine = await client.get("/api/v1/endpoints/HUYEN-MUONG-LAT/calendar.ics", headers=operator)
    assert mine.status == 200
    assert len(Calendar.from_ical(await mine.read()).walk("VEVENT")) == 1
    theirs = await client.get("/api/v1/endpoints/SO-TTTT/calendar.ics", headers=operator)
    assert theirs.status == 403
