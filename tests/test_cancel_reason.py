"""Why a conference was cancelled: the booker gives a reason (JSON body or query), and it
is kept on the conference (its participants see it), in the audit record and in the
`conference.cancelled` event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.conftest import Client
from tests.test_booking import book
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.db.models import Event
from vcbridge.core.event_types import EventType, payload_adapter

H = dict[str, str]
REASON = "Lãnh đạo tỉnh đi công tác đột xuất; họp lại vào tuần sau."


async def cancelled_events(client: Client) -> dict[int, dict[str, Any]]:
    async with client.app[DATABASE].read() as session:
        rows = await session.scalars(select(Event).where(
            Event.type == EventType.CONFERENCE_CANCELLED.value))
        return {row.conference_id or 0: dict(row.data) for row in rows}


async def test_the_reason_reaches_the_conference_the_audit_and_the_event(
    client: Client, booker: H, admin: H, make_user: Any
) -> None:
    created = await book(client, booker)
    response = await client.delete(f"/api/v1/conferences/{created['id']}",
                                   json={"reason": f"  {REASON}  "}, headers=booker)
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "cancelled" and body["cancel_reason"] == REASON
    # Shown to the participants: an operator of one of them reads it.
    operator = await make_user("op-nga-son", "operator", "HUYEN-NGA-SON")
    seen = await (await client.get(f"/api/v1/conferences/{created['id']}",
                                   headers=operator)).json()
    assert seen["cancel_reason"] == REASON
    audit = await (await client.get("/api/v1/audit", params={"action": "conference.cancel"},
                                    headers=admin)).json()
    [record] = [e for e in audit["events"] if e["action"] == "conference.cancel"]
    assert record["before"]["cancel_reason"] == ""
    assert record["after"]["cancel_reason"] == REASON
    event = (await cancelled_events(client))[created["id"]]
    assert event == {"was": "scheduled", "cancel_reason": REASON}
    payload_adapter(EventType.CONFERENCE_CANCELLED).validate_python(event)


async def test_a_series_cancelled_from_an_occurrence_on_with_the_reason_in_the_query(
    client: Client, booker: H
) -> None:
    series = await book(client, booker, rrule="FREQ=WEEKLY;COUNT=3")
    ids = series["occurrence_ids"]
    response = await client.delete(f"/api/v1/conferences/{ids[1]}",
                                   params={"scope": "following", "reason": "Đổi lịch"},
                                   headers=booker)
    assert response.status == 200, await response.text()
    reasons = [(await (await client.get(f"/api/v1/conferences/{cid}", headers=booker)).json())[
        "cancel_reason"] for cid in ids]
    assert reasons == ["", "Đổi lịch", "Đổi lịch"]
    events = await cancelled_events(client)
    assert {cid: events[cid]["cancel_reason"] for cid in ids[1:]} == {
        ids[1]: "Đổi lịch", ids[2]: "Đổi lịch"}
    # Without a reason it is "" everywhere, as before reasons existed.
    response = await client.delete(f"/api/v1/conferences/{ids[0]}", headers=booker)
    assert (await response.json())["cancel_reason"] == ""
    assert (await cancelled_events(client))[ids[0]] == {"was": "scheduled", "cancel_reason": ""}


async def test_a_bad_reason_is_refused_and_nothing_is_cancelled(
    client: Client, booker: H
) -> None:
    created = await book(client, booker)
    path = f"/api/v1/conferences/{created['id']}"
    for kwargs, status in (
        ({"json": {"reason": "x" * 1001}}, 422),
        ({"json": {"reason": "bell\x07"}}, 422),
        ({"json": {"reason": 5}}, 422),
        ({"json": {"why": "typo"}}, 422),
        ({"data": b"reason=x", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"params": {"reason": "y" * 1001}}, 422),
    ):
        headers = {**booker, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        response = await client.delete(path, headers=headers, **kwargs)
        assert response.status == status, (kwargs, await response.text())
        assert (await response.json())["error"]["code"] in {"invalid", "unsupported_media_type"}
    still = await (await client.get(path, headers=booker)).json()
    assert still["status"] == "scheduled" and still["cancel_reason"] == ""
    assert await cancelled_events(client) == {}
