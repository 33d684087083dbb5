"""Logging in, sessions, roles and endpoint tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Client
from tests.support import ADMIN_PASSWORD, bearer, login
from tests.test_booking import book
from vcbridge.core.app_keys import TOKEN_CACHE
from vcbridge.core.clock import FixedClock

H = dict[str, str]


async def test_password_is_stored_hashed(client: Client, admin: H) -> None:
    from sqlalchemy import select

    from vcbridge.core.app_keys import DATABASE
    from vcbridge.core.db.models import User

    async with client.app[DATABASE].read() as session:
        stored = await session.scalar(select(User.password_hash).where(User.username == "admin"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in stored


async def test_login_token_expires(client: Client, clock: FixedClock) -> None:
    token = await login(client, "admin", ADMIN_PASSWORD)
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200
    clock.set(clock.now() + timedelta(hours=12, seconds=1))
    expired = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert expired.status == 401
    assert (await expired.json())["error"]["code"] == "unauthorized"


async def test_logout_revokes_the_token(client: Client) -> None:
    token = await login(client, "admin", ADMIN_PASSWORD)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status == 200
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 401


async def test_session_cookie_needs_csrf_header_for_writes(client: Client) -> None:
    response = await client.post("/api/v1/auth/login",
                                 json={"username": "admin", "password": ADMIN_PASSWORD})
    csrf = (await response.json())["csrf_token"]
    # The cookie alone authenticates reads...
    me = await client.get("/api/v1/auth/me")
    assert me.status == 200 and (await me.json())["csrf_token"] == csrf
    body = {"username": "booker2", "password": "long-enough-pw", "role": "booker"}
    # ...but a write riding on the cookie without the header is refused and writes nothing.
    refused = await client.post("/api/v1/users", json=body)
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "csrf"
    users = await (await client.get("/api/v1/users")).json()
    assert [u["username"] for u in users["users"]] == ["admin"]
    accepted = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert accepted.status == 201


async def test_deactivating_a_user_ends_its_sessions(
    client: Client, admin: H, make_user: Any
) -> None:
    booker = await make_user("booker9", "booker")
    users = (await (await client.get("/api/v1/users", headers=admin)).json())["users"]
    booker_id = next(u["id"] for u in users if u["username"] == "booker9")
    response = await client.patch(f"/api/v1/users/{booker_id}", json={"active": False},
                                  headers=admin)
    assert response.status == 200
    assert (await client.get("/api/v1/auth/me", headers=booker)).status == 401
    again = await client.post("/api/v1/auth/login",
                              json={"username": "booker9", "password": "pw-booker9-123456"})
    assert again.status == 401


async def test_only_admin_manages_users_and_reads_audit(
    client: Client, make_user: Any
) -> None:
    booker = await make_user("booker3", "booker")
    body = {"username": "x-user", "password": "long-enough-pw", "role": "admin"}
    assert (await client.post("/api/v1/users", json=body, headers=booker)).status == 403
    assert (await client.get("/api/v1/users", headers=booker)).status == 403
    assert (await client.get("/api/v1/audit", headers=booker)).status == 403


async def test_agent_token_acts_for_its_endpoint_only(
    client: Client, admin: H, booker: H
) -> None:
    mine = await book(client, booker)
    other = await book(client, booker, chair="SO-TTTT", participants=["SO-TTTT", "HUYEN-YEN-DINH"])
    response = await client.post("/api/v1/endpoints/HUYEN-NGA-SON/tokens",
                                 json={"label": "Máy phòng họp"}, headers=admin)
    assert response.status == 201
    issued = await response.json()
    assert issued["scope"] == "agent" and issued["token"].startswith("vca_")
    agent = bearer(issued["token"])
    me = await (await client.get("/api/v1/auth/me", headers=agent)).json()
    assert me == {"name": "endpoint:HUYEN-NGA-SON", "role": None, "scope": "agent",
                  "endpoint": "HUYEN-NGA-SON"}
    listed = await (await client.get("/api/v1/conferences", headers=agent)).json()
    assert [c["id"] for c in listed["conferences"]] == [mine["id"]]
    assert (await client.get(f"/api/v1/conferences/{other['id']}", headers=agent)).status == 404
    assert (await client.post("/api/v1/conferences", json={}, headers=agent)).status == 403
    # The token list never shows secrets.
    tokens = await (await client.get("/api/v1/endpoints/HUYEN-NGA-SON/tokens",
                                     headers=admin)).json()
    assert all("token" not in t for t in tokens["tokens"])
    audit = await (await client.get("/api/v1/audit", params={"action": "endpoint.token_issue"},
                                    headers=admin)).json()
    assert audit["events"][0]["target_id"] == "HUYEN-NGA-SON"
    assert issued["token"] not in str(audit)


async def test_admin_creates_operator_bound_to_endpoint(client: Client, admin: H) -> None:
    body = {"username": "op-quan-son", "password": "mật-khẩu-dài", "role": "operator",
            "endpoint": "HUYEN-QUAN-SON", "full_name": "Nguyễn Văn A"}
    response = await client.post("/api/v1/users", json=body, headers=admin)
    created = await response.json()
    assert response.status == 201
    assert created["endpoint"] == "HUYEN-QUAN-SON" and created["role"] == "operator"
    assert "password" not in created and "password_hash" not in created
    token = await login(client, "op-quan-son", "mật-khẩu-dài")
    me = await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert me["endpoint"] == "HUYEN-QUAN-SON" and me["role"] == "operator"


async def test_agent_tokens_are_remembered_but_revocation_and_expiry_win(
    client: Client, admin: H, clock: FixedClock
) -> None:
    """Agents call every few seconds: their token is read from the database once, then
    remembered; revoking it here, or its expiry, still takes effect at once."""
    from sqlalchemy import update

    from vcbridge.core.app_keys import DATABASE
    from vcbridge.core.db.models import ApiToken

    async def new_agent_token() -> tuple[int, H]:
        response = await client.post("/api/v1/endpoints/HUYEN-NGA-SON/tokens", headers=admin,
                                     json={"scope": "agent", "label": "cache"})
        issued = await response.json()
        agent = bearer(issued["token"])
        assert await me(agent) == 200  # read once, remembered from now on
        return int(issued["id"]), agent

    async def me(headers: H) -> int:
        return (await client.get("/api/v1/auth/me", headers=headers)).status

    async def change(token_id: int, **values: Any) -> None:  # as another process would
        async with client.app[DATABASE].write() as session:
            await session.execute(update(ApiToken).where(ApiToken.id == token_id)
                                  .values(**values))

    # Revoked behind this process's back: remembered until the cache forgets it
    # (agent_token_cache_seconds), then refused.
    token_id, agent = await new_agent_token()
    await change(token_id, revoked_at=clock.now())
    assert await me(agent) == 200
    client.app[TOKEN_CACHE].clear()
    assert await me(agent) == 401

    token_id, agent = await new_agent_token()
    await change(token_id, expires_at=clock.now() + timedelta(minutes=1))
    client.app[TOKEN_CACHE].clear()
    assert await me(agent) == 200
    clock.set(clock.now() + timedelta(minutes=2))  # expired: refused, memory or not
    assert await me(agent) == 401

    token_id, agent = await new_agent_token()
    revoked = await client.delete(f"/api/v1/endpoints/HUYEN-NGA-SON/tokens/{token_id}",
                                  headers=admin)
    assert revoked.status == 200  # revoked through this process: refused at once
    assert await me(agent) == 401
    # A person's login token is never remembered: logging out is immediate everywhere.
    assert len(client.app[TOKEN_CACHE]) == 0
