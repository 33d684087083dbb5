"""The booking API as a provincial office uses it: book, see conflicts, repeat, edit, cancel."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client

H = dict[str, str]


def booking(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Giao ban tuần",
        "agenda": "Tình hình kinh tế - xã hội tuần 48",
        "chair": "UBND-TINH",
        "participants": ["UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"],
        "start": "2026-12-01T08:00:00+07:00",
        "end": "2026-12-01T10:00:00+07:00",
    }
    body.update(overrides)
    return body


async def book(client: Client, headers: H, status: int = 201, **overrides: Any) -> Any:
    response = await client.post("/api/v1/conferences", json=booking(**overrides), headers=headers)
    body = await response.json()
    assert response.status == status, body
    return body


async def test_create_returns_the_conference_in_local_time(client: Client, booker: H) -> None:
    created = await book(client, booker, start="2026-12-01T01:00:00Z", end="2026-12-01T03:00:00Z")
    assert created["start"] == "2026-12-01T08:00:00+07:00"
    assert created["end"] == "2026-12-01T10:00:00+07:00"
    assert created["status"] == "scheduled"
    assert created["setup_minutes"] == 15
    assert created["chair"] == "UBND-TINH"
    assert created["participants"] == ["UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"]
    assert created["created_by"] == "booker1"
    fetched = await client.get(f"/api/v1/conferences/{created['id']}", headers=booker)
    assert await fetched.json() == created


async def test_overlapping_booking_of_a_shared_endpoint_is_refused_with_names(
    client: Client, booker: H
) -> None:
    first = await book(client, booker)
    # Another meeting of Nga Son from 09:00: overlaps the first one.
    refused = await book(
        client, booker, 409, title="Họp chuyên đề", chair="SO-TTTT",
        participants=["SO-TTTT", "HUYEN-NGA-SON"],
        start="2026-12-01T09:00:00+07:00", end="2026-12-01T11:00:00+07:00",
    )
    error = refused["error"]
    assert error["code"] == "conflict"
    assert "HUYEN-NGA-SON" in error["message"]
    [clash] = error["details"]["conflicts"]
    assert clash["conference"] == first["id"]
    assert clash["endpoints"] == ["HUYEN-NGA-SON"]
    assert clash["title"] == "Giao ban tuần"
    listed = await client.get("/api/v1/conferences", headers=booker)
    assert [c["id"] for c in (await listed.json())["conferences"]] == [first["id"]]


async def test_setup_lead_time_counts_as_busy(client: Client, booker: H) -> None:
    await book(client, booker)  # 08:00-10:00
    # Starts 10:10 with 15 min setup: the bridge would open at 09:55, still busy.
    refused = await book(client, booker, 409, start="2026-12-01T10:10:00+07:00",
                         end="2026-12-01T11:00:00+07:00")
    assert refused["error"]["details"]["conflicts"]
    # With 5 minutes setup it opens at 10:05: free.
    await book(client, booker, start="2026-12-01T10:10:00+07:00",
               end="2026-12-01T11:00:00+07:00", setup_minutes=5)


async def test_back_to_back_and_disjoint_endpoints_do_not_conflict(
    client: Client, booker: H
) -> None:
    await book(client, booker)
    await book(client, booker, start="2026-12-01T10:15:00+07:00", end="2026-12-01T11:00:00+07:00")
    await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-BA-THUOC"])


async def test_bridge_capacity_in_conferences(client: Client, booker: H) -> None:
    # The default bridge runs 4 conferences at once; pairs of distinct districts.
    codes = ["TP-THANH-HOA", "TP-SAM-SON", "TX-BIM-SON", "HUYEN-BA-THUOC", "HUYEN-CAM-THUY",
             "HUYEN-DONG-SON", "HUYEN-HA-TRUNG", "HUYEN-HAU-LOC", "HUYEN-HOANG-HOA",
             "HUYEN-LANG-CHANH"]
    for i in range(4):
        pair = codes[2 * i: 2 * i + 2]
        await book(client, booker, chair=pair[0], participants=pair)
    refused = await book(client, booker, 409, chair=codes[8], participants=codes[8:10])
    capacity = refused["error"]["details"]["capacity"]
    assert capacity["conferences"] == 5
    assert "4 conferences" in refused["error"]["message"]
    assert refused["error"]["details"]["conflicts"] == []


async def test_bridge_capacity_in_ports(client: Client, booker: H) -> None:
    everyone = [e["code"] for e in (await (await client.get(
        "/api/v1/endpoints", headers=booker)).json())["endpoints"]]
    # 31 + 31 ports fit in 80; a third all-hands cannot (and would conflict anyway).
    await book(client, booker, participants=everyone)
    refused = await book(client, booker, 409, participants=everyone,
                         start="2026-12-01T09:00:00+07:00")
    assert refused["error"]["details"]["capacity"] is None or refused["error"]["details"][
        "capacity"]["ports"] > 80
    assert len(refused["error"]["details"]["conflicts"][0]["endpoints"]) == 31


async def test_weekly_briefing_series(client: Client, booker: H) -> None:
    created = await book(client, booker, rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=4")
    assert created["rrule"] == "FREQ=WEEKLY;BYDAY=TU;COUNT=4"
    assert len(created["occurrence_ids"]) == 4
    listed = await client.get(
        "/api/v1/conferences", params={"series": str(created["series_id"])}, headers=booker
    )
    starts = [c["start"] for c in (await listed.json())["conferences"]]
    assert starts == [
        "2026-12-01T08:00:00+07:00",
        "2026-12-08T08:00:00+07:00",
        "2026-12-15T08:00:00+07:00",
        "2026-12-22T08:00:00+07:00",
    ]


async def test_series_conflicting_in_one_week_is_refused_whole(client: Client, booker: H) -> None:
    other = await book(client, booker, title="Họp đột xuất", start="2026-12-15T09:00:00+07:00",
                       end="2026-12-15T09:30:00+07:00")
    refused = await book(client, booker, 409, rrule="FREQ=WEEKLY;COUNT=4")
    assert [c["conference"] for c in refused["error"]["details"]["conflicts"]] == [other["id"]]
    listed = await client.get("/api/v1/conferences", headers=booker)
    assert len((await listed.json())["conferences"]) == 1


async def test_edit_one_occurrence_then_the_rest_of_the_series(client: Client, booker: H) -> None:
    created = await book(client, booker, rrule="FREQ=WEEKLY;COUNT=4")
    ids = created["occurrence_ids"]
    # Move the second occurrence only, one hour later.
    moved = await client.patch(f"/api/v1/conferences/{ids[1]}",
                               json={"start": "2026-12-08T09:00:00+07:00"}, headers=booker)
    body = await moved.json()
    assert moved.status == 200, body
    assert body["affected"] == [ids[1]]
    assert body["start"] == "2026-12-08T09:00:00+07:00"
    assert body["end"] == "2026-12-08T11:00:00+07:00"
    # Retitle the third and fourth.
    renamed = await client.patch(f"/api/v1/conferences/{ids[2]}?scope=following",
                                 json={"title": "Giao ban (mới)"}, headers=booker)
    assert (await renamed.json())["affected"] == ids[2:]
    titles = []
    for cid in ids:
        titles.append((await (await client.get(f"/api/v1/conferences/{cid}",
                                               headers=booker)).json())["title"])
    assert titles == ["Giao ban tuần", "Giao ban tuần", "Giao ban (mới)", "Giao ban (mới)"]


async def test_cancel_one_occurrence_and_the_rest(client: Client, booker: H) -> None:
    created = await book(client, booker, rrule="FREQ=WEEKLY;COUNT=4")
    ids = created["occurrence_ids"]
    one = await client.delete(f"/api/v1/conferences/{ids[0]}", headers=booker)
    assert (await one.json())["affected"] == [ids[0]]
    rest = await client.delete(f"/api/v1/conferences/{ids[2]}?scope=following", headers=booker)
    assert (await rest.json())["affected"] == ids[2:]
    statuses = []
    for cid in ids:
        statuses.append((await (await client.get(f"/api/v1/conferences/{cid}",
                                                 headers=booker)).json())["status"])
    assert statuses == ["cancelled", "scheduled", "cancelled", "cancelled"]
    again = await client.delete(f"/api/v1/conferences/{ids[0]}", headers=booker)
    assert again.status == 409
    # A cancelled slot is free again.
    await book(client, booker, title="Thay thế")


async def test_edit_that_would_conflict_is_refused_and_changes_nothing(
    client: Client, booker: H
) -> None:
    first = await book(client, booker)
    second = await book(client, booker, start="2026-12-01T13:00:00+07:00",
                        end="2026-12-01T15:00:00+07:00", title="Chiều")
    response = await client.patch(f"/api/v1/conferences/{second['id']}",
                                  json={"start": "2026-12-01T09:00:00+07:00",
                                        "title": "Đổi giờ"}, headers=booker)
    body = await response.json()
    assert response.status == 409
    assert body["error"]["details"]["conflicts"][0]["conference"] == first["id"]
    unchanged = await (await client.get(f"/api/v1/conferences/{second['id']}",
                                        headers=booker)).json()
    assert unchanged == second


async def test_list_filters_by_endpoint_and_time_range(client: Client, booker: H) -> None:
    a = await book(client, booker)
    b = await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-YEN-DINH"],
                   start="2026-12-10T08:00:00+07:00", end="2026-12-10T09:00:00+07:00")

    async def ids(**params: str) -> list[int]:
        response = await client.get("/api/v1/conferences", params=params, headers=booker)
        assert response.status == 200
        return [c["id"] for c in (await response.json())["conferences"]]

    assert await ids() == [a["id"], b["id"]]
    assert await ids(endpoint="HUYEN-YEN-DINH") == [b["id"]]
    assert await ids(**{"from": "2026-12-05T00:00:00+07:00"}) == [b["id"]]
    assert await ids(to="2026-12-05T00:00:00+07:00") == [a["id"]]
    # A conference still running at `from` is included.
    assert await ids(**{"from": "2026-12-01T09:00:00+07:00",
                        "to": "2026-12-01T09:30:00+07:00"}) == [a["id"]]


async def test_operator_sees_only_its_endpoint_and_cannot_book(
    client: Client, booker: H, make_user: Any
) -> None:
    mine = await book(client, booker)
    other = await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-YEN-DINH"])
    operator = await make_user("op-nga-son", "operator", "HUYEN-NGA-SON")
    listed = await (await client.get("/api/v1/conferences", headers=operator)).json()
    assert [c["id"] for c in listed["conferences"]] == [mine["id"]]
    hidden = await client.get(f"/api/v1/conferences/{other['id']}", headers=operator)
    assert hidden.status == 404
    foreign = await client.get("/api/v1/conferences", params={"endpoint": "HUYEN-YEN-DINH"},
                               headers=operator)
    assert foreign.status == 403
    body = booking(start="2026-12-02T08:00:00+07:00", end="2026-12-02T09:00:00+07:00")
    refused = await client.post("/api/v1/conferences", json=body, headers=operator)
    assert refused.status == 403
    cancel = await client.delete(f"/api/v1/conferences/{mine['id']}", headers=operator)
    assert cancel.status == 403


async def test_it_staff_read_everything_but_book_nothing(
    client: Client, booker: H, make_user: Any
) -> None:
    created = await book(client, booker)
    it = await make_user("it-staff", "it")
    assert (await client.get(f"/api/v1/conferences/{created['id']}", headers=it)).status == 200
    edit = await client.patch(f"/api/v1/conferences/{created['id']}", json={"title": "x"},
                              headers=it)
    assert edit.status == 403
    assert (await client.get("/api/v1/audit", headers=it)).status == 403


async def test_every_write_is_audited_with_before_and_after(
    client: Client, booker: H, admin: H
) -> None:
    created = await book(client, booker)
    await client.patch(f"/api/v1/conferences/{created['id']}", json={"title": "Tên mới"},
                       headers=booker)
    await client.delete(f"/api/v1/conferences/{created['id']}", headers=booker)
    response = await client.get("/api/v1/audit", params={"target_type": "conference"},
                                headers=admin)
    events = (await response.json())["events"]
    assert [e["action"] for e in events] == [
        "conference.cancel", "conference.update", "conference.create"]
    assert all(e["actor"] == "booker1" and e["role"] == "booker" for e in events)
    cancel, update, create = events
    assert create["before"] is None and create["after"]["title"] == "Giao ban tuần"
    assert update["before"]["title"] == "Giao ban tuần"
    assert update["after"]["title"] == "Tên mới"
    assert cancel["after"]["status"] == "cancelled"


async def test_a_listed_conference_is_the_conference_itself(client: Client, booker: H) -> None:
    # The list reads plain rows (scheduler/booking_store.listing_query), the single
    # conference an ORM object: both must show the very same thing.
    single = await book(client, booker)
    series = await book(client, booker, title="Giao ban chiều", chair="SO-TTTT",
                        participants=["SO-TTTT", "HUYEN-YEN-DINH", "TINH-UY"],
                        start="2026-12-01T14:00:00+07:00", end="2026-12-01T15:00:00+07:00",
                        rrule="FREQ=WEEKLY;COUNT=2")
    await client.delete(f"/api/v1/conferences/{series['occurrence_ids'][1]}",
                        json={"reason": "Nghỉ lễ"}, headers=booker)
    listed = (await (await client.get("/api/v1/conferences", headers=booker)).json())[
        "conferences"]
    assert [c["id"] for c in listed] == [single["id"], *series["occurrence_ids"]]
    for conference in listed:
        alone = await client.get(f"/api/v1/conferences/{conference['id']}", headers=booker)
        assert conference == await alone.json()
    assert listed[2]["cancel_reason"] == "Nghỉ lễ"
    assert listed[1]["participants"] == ["SO-TTTT", "HUYEN-YEN-DINH", "TINH-UY"]
