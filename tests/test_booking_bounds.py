"""Bounds on the booking side's big answers (issue 11): no request makes the service
load or send an unbounded list."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client

H = dict[str, str]
CONFERENCES = "/api/v1/conferences"


def series(participants: list[str], hour: int, count: int) -> dict[str, Any]:
    return {
        "title": "Giao ban ngày", "chair": participants[0], "participants": participants,
        "start": f"2026-12-01T{hour:02d}:00:00+07:00",
        "end": f"2026-12-01T{hour + 1:02d}:00:00+07:00",
        "rrule": f"FREQ=DAILY;COUNT={count}",
    }


async def test_a_page_of_conferences_has_at_most_500(client: Client, booker: H) -> None:
    refused = await client.get(CONFERENCES, params={"limit": "501"}, headers=booker)
    assert refused.status == 422, await refused.text()
    assert "limit" in (await refused.json())["error"]["message"]
    listed = await client.get(CONFERENCES, params={"limit": "500"}, headers=booker)
    assert listed.status == 200


async def test_a_conflict_lists_the_first_100_of_its_conflicts(client: Client, booker: H) -> None:
    first = await client.post(CONFERENCES, json=series(["UBND-TINH", "HUYEN-NGA-SON"], 8, 150),
                              headers=booker)
    assert first.status == 201, await first.text()
    clash = await client.post(CONFERENCES, json=series(["SO-TTTT", "HUYEN-NGA-SON"], 8, 150),
                              headers=booker)
    body = await clash.json()
    assert clash.status == 409, body
    details = body["error"]["details"]
    assert details["conflicts_total"] == 150
    assert len(details["conflicts"]) == 100
    assert details["conflicts"][0]["start"] == "2026-12-01T08:00:00+07:00"  # the earliest
    assert details["conflicts"][0]["endpoints"] == ["HUYEN-NGA-SON"]
