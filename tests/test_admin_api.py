"""What the admin page needs from the API beyond plain account changes: a password
reset by the administrator (given or generated, shown once, audited without the
password) and the audit log's filters (the actions it holds, a date range, paging)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from tests.conftest import Client
from tests.support import bearer, login
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.auth.passwords import READABLE_ALPHABET, generate_password
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import AuditEvent, User

H = dict[str, str]


async def _user_id(client: Client, admin: H, username: str) -> int:
    users = (await (await client.get("/api/v1/users", headers=admin)).json())["users"]
    return int(next(u["id"] for u in users if u["username"] == username))


async def _audit(client: Client, admin: H, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=query, headers=admin)
    assert response.status == 200, await response.text()
    return list((await response.json())["events"])


async def _password_hash(client: Client, user_id: int) -> str:
    async with client.app[DATABASE].read() as session:
        return str(await session.scalar(select(User.password_hash).where(User.id == user_id)))


def test_generated_passwords_are_readable_and_random() -> None:
    made = {generate_password() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert re.fullmatch(rf"[{READABLE_ALPHABET}]{{4}}(-[{READABLE_ALPHABET}]{{4}}){{3}}",
                            password), password
    assert not set("01ilo") & set("".join(made))  # nothing to misread over the phone


async def test_admin_resets_a_password_generated_shown_once_and_audited(
    client: Client, admin: H, make_user: Any
) -> None:
    operator = await make_user("op-nga-son", "operator", "HUYEN-NGA-SON")
    user_id = await _user_id(client, admin, "op-nga-son")
    response = await client.post(f"/api/v1/users/{user_id}/password-reset", json={},
                                 headers=admin)
    assert response.status == 200, await response.text()
    body = await response.json()
    new_password = body["generated_password"]
    assert body["user"]["username"] == "op-nga-son" and body["user"]["active"] is True
    # The user's sessions ended; the old password no longer works, the new one does.
    assert (await client.get("/api/v1/auth/me", headers=operator)).status == 401
    old = await client.post("/api/v1/auth/login",
                            json={"username": "op-nga-son", "password": "pw-op-nga-son-123456"})
    assert old.status == 401
    token = await login(client, "op-nga-son", new_password)
    me = await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert me["endpoint"] == "HUYEN-NGA-SON"
    # The log tells a reset from other changes, and never holds the password.
    [event] = await _audit(client, admin, action="user.password_reset")
    assert (event["actor"], event["target_type"], event["target_id"]) == (
        "admin", "user", str(user_id))
    assert event["after"] == {"username": "op-nga-son", "generated": True, "sessions_ended": 1}
    everything = str(await _audit(client, admin))
    assert new_password not in everything
    # The list shows no password either.
    listed = await (await client.get("/api/v1/users", headers=admin)).json()
    assert new_password not in str(listed)


async def test_admin_sets_a_chosen_password(client: Client, admin: H, make_user: Any) -> None:
    await make_user("booker-vp", "booker")
    user_id = await _user_id(client, admin, "booker-vp")
    response = await client.post(f"/api/v1/users/{user_id}/password-reset",
                                 json={"password": "mật-khẩu-mới-2026"}, headers=admin)
    assert response.status == 200
    assert (await response.json())["generated_password"] is None
    await login(client, "booker-vp", "mật-khẩu-mới-2026")
    [event] = await _audit(client, admin, action="user.password_reset")
    assert event["after"]["generated"] is False
    assert "mật-khẩu-mới-2026" not in str(event)


async def test_a_bad_password_reset_is_refused_and_changes_nothing(
    client: Client, admin: H, make_user: Any
) -> None:
    booker = await make_user("booker-x", "booker")
    user_id = await _user_id(client, admin, "booker-x")
    before = await _password_hash(client, user_id)
    cases: list[tuple[str, Any, int, str]] = [
        (f"/api/v1/users/{user_id}/password-reset", {"password": "short"}, 422, "invalid"),
        (f"/api/v1/users/{user_id}/password-reset", {"password": None}, 422, "invalid"),
        (f"/api/v1/users/{user_id}/password-reset", {"password": 1234567890}, 422, "invalid"),
        (f"/api/v1/users/{user_id}/password-reset", {"pasword": "long-enough-pw"}, 422,
         "invalid"),
        (f"/api/v1/users/{user_id}/password-reset", ["x"], 422, "invalid"),
        ("/api/v1/users/987654/password-reset", {}, 404, "not_found"),
        ("/api/v1/users/abc/password-reset", {}, 404, "not_found"),
    ]
    for path, body, status, code in cases:
        response = await client.post(path, json=body, headers=admin)
        assert response.status == status, (body, await response.text())
        assert (await response.json())["error"]["code"] == code, body
    # Nobody but an admin resets a password, not even their own.
    refused = await client.post(f"/api/v1/users/{user_id}/password-reset", json={},
                                headers=booker)
    assert refused.status == 403
    assert await _password_hash(client, user_id) == before
    assert (await client.get("/api/v1/auth/me", headers=booker)).status == 200  # session kept
    assert await _audit(client, admin, action="user.password_reset") == []


async def test_audit_actions_and_filters_for_the_admin_page(
    client: Client, admin: H, make_user: Any, clock: FixedClock
) -> None:
    booker = await make_user("booker-1", "booker")
    clock.set(clock.now() + timedelta(hours=6))  # 16:00 in Hanoi
    for code in ("HUYEN-NGA-SON", "HUYEN-HA-TRUNG", "SO-TTTT"):
        response = await client.post(f"/api/v1/endpoints/{code}/tokens",
                                     json={"scope": "calendar", "label": "Lịch"}, headers=admin)
        assert response.status == 201

    # The actions the log holds, each with its count: the filter's choices.
    response = await client.get("/api/v1/audit/actions", headers=admin)
    assert response.status == 200
    actions = {a["action"]: a["count"] for a in (await response.json())["actions"]}
    assert actions["endpoint.token_issue"] == 3
    assert actions["user.create"] == 2  # the admin made at the first start, the booker
    assert list(actions) == sorted(actions)
    async with client.app[DATABASE].read() as session:
        assert sum(actions.values()) == await session.scalar(
            select(func.count()).select_from(AuditEvent))
    assert (await client.get("/api/v1/audit/actions", headers=booker)).status == 403

    # A time range with the Asia/Ho_Chi_Minh offset: the tokens came after 15:00.
    day = (clock.now() + timedelta(hours=7)).date().isoformat()
    that_day = await _audit(client, admin, **{"from": f"{day}T15:00:00+07:00",
                                              "to": f"{day}T23:59:59+07:00"})
    assert {e["action"] for e in that_day} == {"endpoint.token_issue"}
    # Filters together: action, actor, target.
    one = await _audit(client, admin, action="endpoint.token_issue", actor="admin",
                       target_type="endpoint", target_id="SO-TTTT")
    assert [e["target_id"] for e in one] == ["SO-TTTT"]
    # Pages, newest first, through before_id.
    first = await _audit(client, admin, action="endpoint.token_issue", limit="2")
    rest = await _audit(client, admin, action="endpoint.token_issue", limit="2",
                        before_id=str(first[-1]["id"]))
    assert [e["target_id"] for e in first + rest] == ["SO-TTTT", "HUYEN-HA-TRUNG",
                                                      "HUYEN-NGA-SON"]
    # A range that ends before it starts is refused.
    bad = await client.get("/api/v1/audit", headers=admin, params={
        "from": f"{day}T10:00:00+07:00", "to": f"{day}T09:00:00+07:00"})
    assert bad.status == 422
    assert "'to' must be after 'from'" in (await bad.json())["error"]["message"]


async def test_account_rules_name_the_field_at_fault(client: Client, admin: H) -> None:
    """The admin page shows each refusal next to its field: `details` names it."""
    base = {"username": "op-vinh-loc", "password": "long-enough-pw", "role": "operator",
            "endpoint": "HUYEN-VINH-LOC"}
    assert (await client.post("/api/v1/users", json=base, headers=admin)).status == 201
    cases: list[tuple[dict[str, Any], int, str]] = [
        (base, 409, "username"),
        (base | {"username": "op-2", "endpoint": "NO-SUCH"}, 422, "endpoint"),
        ({k: v for k, v in base.items() if k != "endpoint"} | {"username": "op-3"}, 422,
         "endpoint"),
        (base | {"username": "op-4", "password": "short"}, 422, "password"),
        (base | {"username": "Bad Name"}, 422, "username"),
    ]
    for body, status, field in cases:
        response = await client.post("/api/v1/users", json=body, headers=admin)
        assert response.status == status, (body, await response.text())
        details = (await response.json())["error"]["details"]
        assert [d["field"] for d in details] == [field], (body, details)
    user_id = await _user_id(client, admin, "op-vinh-loc")
    response = await client.patch(f"/api/v1/users/{user_id}", json={"role": "booker",
                                  "endpoint": "HUYEN-VINH-LOC"}, headers=admin)
    assert response.status == 422
    assert (await response.json())["error"]["details"][0]["field"] == "endpoint"


async def test_the_admin_cannot_lock_itself_out(client: Client, admin: H) -> None:
    admin_id = await _user_id(client, admin, "admin")
    for body, field in (({"active": False}, "active"), ({"role": "booker"}, "role")):
        response = await client.patch(f"/api/v1/users/{admin_id}", json=body, headers=admin)
        assert response.status == 422
        assert (await response.json())["error"]["details"][0]["field"] == field
    assert (await client.get("/api/v1/auth/me", headers=admin)).status == 200
