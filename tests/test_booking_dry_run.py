"""The dry run of a booking or an edit (`?dry_run=true`): the calendar's form asks it as
the booker types, so conflicts show before saving. It answers exactly as the real
request would (200, or the same 409 or 422) and writes nothing: no conference, no
series, no audit record, no event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.conftest import Client
from tests.test_booking import book, booking
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.db.models import AuditEvent, Conference, ConferenceSeries, Event

H = dict[str, str]
# The districts of a bridge-capacity test: four pairs fill the default 4 conferences.
PAIRS = ["TP-THANH-HOA", "TP-SAM-SON", "TX-BIM-SON", "HUYEN-BA-THUOC", "HUYEN-CAM-THUY",
         "HUYEN-DONG-SON", "HUYEN-HA-TRUNG", "HUYEN-HAU-LOC", "HUYEN-HOANG-HOA",
         "HUYEN-LANG-CHANH"]


async def counts(client: Client) -> dict[str, int]:
    """Rows of every table a booking or an edit writes."""
    async with client.app[DATABASE].read() as session:
        return {
            model.__tablename__: int(await session.scalar(
                select(func.count()).select_from(model)) or 0)
            for model in (Conference, ConferenceSeries, AuditEvent, Event)
        }


async def dry_post(client: Client, headers: H, status: int, **overrides: Any) -> Any:
    response = await client.post("/api/v1/conferences", params={"dry_run": "true"},
                                 json=booking(**overrides), headers=headers)
    body = await response.json()
    assert response.status == status, body
    return body


async def dry_patch(client: Client, headers: H, cid: int, change: dict[str, Any], status: int,
                    scope: str = "this") -> Any:
    response = await client.patch(f"/api/v1/conferences/{cid}",
                                  params={"dry_run": "true", "scope": scope},
                                  json=change, headers=headers)
    body = await response.json()
    assert response.status == status, body
    return body


async def test_a_free_booking_passes_and_nothing_is_written(client: Client, booker: H) -> None:
    await book(client, booker)
    before = await counts(client)
    assert await dry_post(client, booker, 200, start="2026-12-02T08:00:00+07:00",
                          end="2026-12-02T09:00:00+07:00") == {"ok": True, "occurrences": 1}
    # A weekly series: every occurrence is counted (expanded as the real booking does).
    assert await dry_post(client, booker, 200, start="2026-12-02T08:00:00+07:00",
                          end="2026-12-02T09:00:00+07:00",
                          rrule="FREQ=WEEKLY;COUNT=10") == {"ok": True, "occurrences": 10}
    assert await counts(client) == before
    # dry_run=false is the real booking.
    response = await client.post("/api/v1/conferences", params={"dry_run": "false"},
                                 json=booking(start="2026-12-02T08:00:00+07:00",
                                              end="2026-12-02T09:00:00+07:00"), headers=booker)
    assert response.status == 201


async def test_an_endpoint_conflict_is_the_bookings_409_and_nothing_is_written(
    client: Client, booker: H
) -> None:
    first = await book(client, booker)  # 01/12 08:00-10:00, Nga Son among others
    before = await counts(client)
    overlapping = {"title": "Họp chuyên đề", "chair": "SO-TTTT",
                   "participants": ["SO-TTTT", "HUYEN-NGA-SON"],
                   "start": "2026-12-01T09:00:00+07:00", "end": "2026-12-01T11:00:00+07:00"}
    dry = await dry_post(client, booker, 409, **overlapping)
    [clash] = dry["error"]["details"]["conflicts"]
    assert clash["conference"] == first["id"] and clash["endpoints"] == ["HUYEN-NGA-SON"]
    assert clash["title"] == "Giao ban tuần"
    assert clash["start"] == "2026-12-01T08:00:00+07:00"
    assert await counts(client) == before
    # The very answer the real booking gets.
    real = await client.post("/api/v1/conferences", json=booking(**overlapping), headers=booker)
    assert real.status == 409 and await real.json() == dry


async def test_bridge_capacity_is_checked_too(client: Client, booker: H) -> None:
    for i in range(4):
        await book(client, booker, chair=PAIRS[2 * i], participants=PAIRS[2 * i: 2 * i + 2])
    before = await counts(client)
    dry = await dry_post(client, booker, 409, chair=PAIRS[8], participants=PAIRS[8:10])
    assert dry["error"]["details"]["conflicts"] == []
    assert dry["error"]["details"]["capacity"]["conferences"] == 5
    assert "4 conferences" in dry["error"]["message"]
    assert await counts(client) == before


async def test_a_rule_broken_is_the_bookings_422_with_its_problems(
    client: Client, booker: H
) -> None:
    before = await counts(client)
    dry = await dry_post(client, booker, 422, start="2026-12-01T10:00:00+07:00",
                         end="2026-12-01T09:00:00+07:00")
    assert dry["error"]["details"]["problems"] == ["end must be after start"]
    dry = await dry_post(client, booker, 422, chair="TINH-UY")
    assert "the chair TINH-UY must be among the participants" in dry["error"]["details"][
        "problems"]
    dry = await dry_post(client, booker, 422, rrule="FREQ=WEEKLY")  # never ends
    assert dry["error"]["code"] == "invalid"
    dry = await dry_post(client, booker, 422, title="")  # the schema: field details
    assert dry["error"]["details"][0]["field"] == "title"
    assert await counts(client) == before
    bad = await client.post("/api/v1/conferences", params={"dry_run": "yes"}, json=booking(),
                            headers=booker)
    assert bad.status == 422
    assert await counts(client) == before


async def test_an_edit_is_checked_without_being_made(client: Client, booker: H) -> None:
    first = await book(client, booker)
    series = await book(client, booker, title="Giao ban chiều", rrule="FREQ=WEEKLY;COUNT=4",
                        start="2026-12-01T14:00:00+07:00", end="2026-12-01T15:00:00+07:00")
    ids = series["occurrence_ids"]
    before = await counts(client)
    assert await dry_patch(client, booker, ids[1], {"title": "Mới"}, 200,
                           scope="following") == {"ok": True, "occurrences": 3}
    # Moving the first occurrence onto the morning meeting: the same 409 as the edit.
    dry = await dry_patch(client, booker, ids[0], {"start": "2026-12-01T09:00:00+07:00",
                                                   "end": "2026-12-01T10:00:00+07:00"}, 409)
    assert [c["conference"] for c in dry["error"]["details"]["conflicts"]] == [first["id"]]
    dry = await dry_patch(client, booker, ids[0], {"end": "2026-12-01T13:00:00+07:00"}, 422)
    assert dry["error"]["details"]["problems"] == ["end must be after start"]
    dry = await dry_patch(client, booker, ids[0], {}, 422)
    assert dry["error"]["details"]["problems"] == ["nothing to change"]
    assert await counts(client) == before
    unchanged = await (await client.get(f"/api/v1/conferences/{ids[1]}", headers=booker)).json()
    assert unchanged["title"] == "Giao ban chiều"
    # A cancelled conference: the edit's own 409.
    await client.delete(f"/api/v1/conferences/{ids[3]}", headers=booker)
    dry = await dry_patch(client, booker, ids[3], {"title": "x"}, 409)
    assert "cancelled" in dry["error"]["message"]


async def test_only_bookers_may_ask(client: Client, booker: H, make_user: Any) -> None:
    created = await book(client, booker)
    operator = await make_user("op-nga-son", "operator", "HUYEN-NGA-SON")
    it = await make_user("it-staff", "it")
    before = await counts(client)
    client.session.cookie_jar.clear()  # the logins above left a session cookie
    for headers, status in (({}, 401), (operator, 403), (it, 403)):
        response = await client.post("/api/v1/conferences", params={"dry_run": "true"},
                                     json=booking(start="2026-12-03T08:00:00+07:00",
                                                  end="2026-12-03T09:00:00+07:00"),
                                     headers=headers)
        assert response.status == status
        response = await client.patch(f"/api/v1/conferences/{created['id']}",
                                      params={"dry_run": "true"}, json={"title": "x"},
                                      headers=headers)
        assert response.status == status
    assert await counts(client) == before
