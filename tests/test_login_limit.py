"""Login limiting (issue 11): atomic under concurrency, shared by every process through
the database, a backoff per user name and client address (so an attacker elsewhere
cannot lock the real user out), a window per address, and a burst visible in the audit
log and the metrics. Runs on SQLite, and on PostgreSQL when VCBRIDGE_TEST_DATABASE_URL
names one; the two-process test always uses a PostgreSQL scratch database."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from harness.service_process import Service, service_env
from tests.conftest import Client
from tests.support import ADMIN_PASSWORD, create_scratch_database, drop_scratch_database
from vcbridge.app import create_app
from vcbridge.core.app_keys import DATABASE, LOGIN_LIMITER
from vcbridge.core.auth.login_limiter import Counts, LoginPolicy, Reason, Refused, decide
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import AuditEvent, LoginThrottle
from vcbridge.core.settings import Settings

LOGIN = "/api/v1/auth/login"
WRONG = {"username": "admin", "password": "wrong-password"}
RIGHT = {"username": "admin", "password": ADMIN_PASSWORD}
# A second client address: loopback is all of 127/8, so the server sees a real peer.
ELSEWHERE = "127.0.0.2"

MakeClient = Callable[..., Awaitable[Client]]
Post = Callable[[dict[str, str]], Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]


async def post(client: Client, body: dict[str, str], headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST a login; its status, JSON body and headers."""
    async with client.post(LOGIN, json=body, headers=headers or {}) as response:
        return response.status, await response.json(), dict(response.headers)


@asynccontextmanager
async def from_address(client: Client, address: str) -> AsyncIterator[Post]:
    """Logins to `client`'s server sent from the local address `address`."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(body: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
            async with session.post(client.make_url(LOGIN), json=body) as response:
                return response.status, await response.json(), dict(response.headers)

        yield send


def check_429(body: dict[str, Any], headers: dict[str, str]) -> int:
    """The error contract of a refused login; its Retry-After."""
    error = body["error"]
    assert error["code"] == "rate_limited", body
    retry_after = headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, headers
    assert error["details"] == {"retry_after_seconds": int(retry_after)}
    return int(retry_after)


async def audit(client: Client, action: str) -> list[AuditEvent]:
    async with client.app[DATABASE].read() as session:
        return list((await session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )).all())


async def scraped(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of GET /metrics: (name, sorted labels) -> value."""
    async with client.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def login_counts(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
                 ) -> tuple[float, float, float]:
    """Failed logins, refused for backoff, refused for the address."""
    return (samples[("vcbridge_login_failures_total", ())],
            samples[("vcbridge_logins_refused_total", (("reason", "backoff"),))],
            samples[("vcbridge_logins_refused_total", (("reason", "address"),))])


# -- concurrency -----------------------------------------------------------------------


async def test_200_parallel_wrong_passwords_get_the_limit_of_401s_and_then_429(
    client: Client, admin: dict[str, str]
) -> None:
    limit = client.app[LOGIN_LIMITER].policy.max_failures
    results = await asyncio.gather(*(post(client, WRONG) for _ in range(200)))
    statuses = Counter(status for status, _, _ in results)
    # The clock stands still: no backoff runs out, so exactly the free failures pass.
    assert statuses == {401: limit, 429: 200 - limit}, statuses
    for status, body, headers in results:
        if status == 429:
            check_429(body, headers)
    failed = await audit(client, "auth.login_failed")
    assert len(failed) == limit and {e.remote for e in failed} == {"127.0.0.1"}
    # One record for the burst, not one per attempt.
    backoff = await audit(client, "auth.login_backoff")
    assert [(e.target_id, e.remote, e.after) for e in backoff] == [
        ("admin", "127.0.0.1", {"failures": limit})]
    assert login_counts(await scraped(client)) == (limit, 200 - limit, 0)


async def test_two_apps_on_one_database_share_the_limit(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    results = await asyncio.gather(*(post(app, WRONG) for _ in range(100)
                                     for app in (first, second)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {401: 5, 429: 195}, statuses
    # Each process counts what it answered; together they saw every attempt.
    one, two = login_counts(await scraped(first)), login_counts(await scraped(second))
    assert (one[0] + two[0], one[1] + two[1]) == (5, 195)


async def test_right_and_wrong_passwords_in_parallel_never_deadlock(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    # Limits out of the way: every attempt is checked, and the right ones forgiven
    # while the wrong ones are counted on the same rows.
    roomy = settings.model_copy(update={"login_max_failures": 1000,
                                        "login_address_max_failures": 1000})
    client = await aiohttp_client(create_app(roomy, clock=clock))
    results = await asyncio.gather(*(post(client, RIGHT if i % 2 else WRONG)
                                     for i in range(100)))
    assert Counter(status for status, _, _ in results) == {200: 50, 401: 50}


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


@pytest.mark.postgres
async def test_two_processes_on_postgresql_share_the_limit(
    tmp_path: Path, services: list[Service]
) -> None:
    url = await create_scratch_database()
    try:
        # The real clock runs here: a long first backoff keeps the count exact however
        # slowly a busy machine answers.
        env = service_env(VCBRIDGE_DATABASE_URL=url, VCBRIDGE_LOGIN_BACKOFF_SECONDS="600",
                          VCBRIDGE_LOGIN_BACKOFF_MAX_SECONDS="600",
                          VCBRIDGE_SCHEDULER_ENABLED="false")
        for name in ("a", "b"):
            services.append(Service(tmp_path / name, env))
        for service in services:
            await asyncio.to_thread(service.wait_healthy)
        wrong = {"username": "admin", "password": "not-the-password"}
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as session:

            async def send(base: str) -> int:
                async with session.post(base + LOGIN, json=wrong) as response:
                    return response.status

            statuses = Counter(await asyncio.gather(
                *(send(s.base) for _ in range(100) for s in services)))
            assert statuses == {401: 5, 429: 195}, statuses
            # The right password from the same address waits too; from elsewhere it
            # would not (see test_the_real_user_logs_in_while_an_attacker_hammers_the_name).
            async with session.post(services[1].base + LOGIN, json={
                "username": "admin", "password": "admin-password-e2e"}) as response:
                assert response.status == 429
    finally:
        for service in services:
            service.stop()
        await drop_scratch_database(url)


# -- per user name and address -----------------------------------------------------------


async def test_the_real_user_logs_in_while_an_attacker_hammers_the_name(
    client: Client, admin: dict[str, str]
) -> None:
    async with from_address(client, ELSEWHERE) as attacker:
        results = await asyncio.gather(*(attacker(WRONG) for _ in range(50)))
        assert Counter(status for status, _, _ in results) == {401: 5, 429: 45}
        # Spraying other names from there runs into the address's own limit.
        sprayed = [await attacker({"username": f"user{i}", "password": "x"})
                   for i in range(30)]
        assert Counter(status for status, _, _ in sprayed) == {401: 15, 429: 15}
        assert (await attacker(RIGHT))[0] == 429  # even the right password, from there

    # The real user, from the office: a typo, then the right password.
    assert (await post(client, WRONG))[0] == 401
    status, body, _ = await post(client, RIGHT)
    assert status == 200 and body["user"]["username"] == "admin"
    limited = await audit(client, "auth.login_address_limit")
    assert [(e.target_type, e.target_id, e.remote) for e in limited] == [
        ("address", ELSEWHERE, ELSEWHERE)]


async def test_backoff_grows_up_to_its_cap_and_a_success_clears_it(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    capped = settings.model_copy(update={"login_backoff_max_seconds": 4.0})
    client = await aiohttp_client(create_app(capped, clock=clock))

    async def burst() -> None:
        for _ in range(5):
            assert (await post(client, WRONG))[0] == 401

    def wait(seconds: float) -> None:
        clock.set(clock.now() + timedelta(seconds=seconds))

    await burst()
    waits = []
    for _ in range(4):
        status, body, headers = await post(client, WRONG)
        assert status == 429
        waits.append(check_429(body, headers))
        assert (await post(client, RIGHT))[0] == 429  # no password is checked meanwhile
        wait(waits[-1] - 0.5)
        assert (await post(client, WRONG))[0] == 429
        wait(0.5)
        assert (await post(client, WRONG))[0] == 401  # the one attempt the wait earned
    assert waits == [1, 2, 4, 4]

    status, _, headers = await post(client, WRONG)
    assert status == 429
    wait(int(headers["Retry-After"]))
    assert (await post(client, RIGHT))[0] == 200
    await burst()  # cleared: the free failures again
    assert (await post(client, WRONG))[0] == 429
    assert len(await audit(client, "auth.login_backoff")) == 2  # one per burst

    # Failures are forgotten an hour after the last one, without a success.
    wait(capped.login_backoff_reset_seconds)
    await burst()
    assert len(await audit(client, "auth.login_backoff")) == 3


async def test_one_address_trying_many_names_is_limited_for_its_window(
    client: Client, admin: dict[str, str], clock: FixedClock
) -> None:
    limit = client.app[LOGIN_LIMITER].policy.address_max_failures
    # Successful logins are forgiven: an office of many users does not use up its budget.
    for _ in range(limit + 5):
        assert (await post(client, RIGHT))[0] == 200
    for i in range(limit):
        assert (await post(client, {"username": f"user{i}", "password": "x"}))[0] == 401
    status, body, headers = await post(client, {"username": "another", "password": "x"})
    assert status == 429 and check_429(body, headers) == 300
    assert (await post(client, RIGHT))[0] == 429  # the address waits, whoever it is
    async with from_address(client, ELSEWHERE) as elsewhere:
        assert (await elsewhere(RIGHT))[0] == 200
    clock.set(clock.now() + timedelta(seconds=300))
    assert (await post(client, RIGHT))[0] == 200
    assert login_counts(await scraped(client)) == (limit, 0, 2)
    limited = await audit(client, "auth.login_address_limit")
    assert [(e.target_id, e.after) for e in limited] == [("127.0.0.1", {"failures": limit})]


# -- the client address ------------------------------------------------------------------


async def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(
    client: Client, admin: dict[str, str]
) -> None:
    statuses = [(await post(client, WRONG, {"X-Forwarded-For": f"203.0.113.{i}"}))[0]
                for i in range(6)]
    assert statuses == [401] * 5 + [429], "a client chose its own address"
    assert {e.remote for e in await audit(client, "auth.login_failed")} == {"127.0.0.1"}


async def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(
    aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
) -> None:
    proxied = settings.model_copy(update={"trusted_proxies": Settings(
        trusted_proxies="127.0.0.0/8").trusted_proxies})
    client = await aiohttp_client(create_app(proxied, clock=clock))
    # The proxy appends the peer it saw; what a client wrote to the left is not trusted.
    forged = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    statuses = [(await post(client, WRONG, forged))[0] for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert {e.remote for e in await audit(client, "auth.login_failed")} == {"203.0.113.7"}
    # Another client behind the same proxy is not held up.
    assert (await post(client, RIGHT, {"X-Forwarded-For": "203.0.113.8"}))[0] == 200
    assert (await post(client, RIGHT, {"X-Forwarded-For": "not-an-address"}))[0] == 200


# -- the table stays small ---------------------------------------------------------------


async def test_expired_rows_are_deleted_in_bounded_batches(
    client: Client, admin: dict[str, str], clock: FixedClock
) -> None:
    for i in range(12):
        assert (await post(client, {"username": f"user{i}", "password": "x"}))[0] == 401
    database, limiter = client.app[DATABASE], client.app[LOGIN_LIMITER]
    limiter.next_cleanup = float("inf")  # only the calls below clean

    async def rows() -> int:
        async with database.read() as session:
            return int(await session.scalar(
                select(func.count()).select_from(LoginThrottle)) or 0)

    assert await rows() == 13  # twelve names and the address
    later = clock.now() + timedelta(seconds=limiter.policy.backoff_reset)
    clock.set(later)
    assert (await post(client, {"username": "fresh", "password": "x"}))[0] == 401
    limiter.cleanup_batch = 5
    # The address row was renewed by the last attempt; "fresh" is new: both stay.
    assert [await limiter.cleanup(database, later) for _ in range(4)] == [5, 5, 2, 0]
    assert await rows() == 2


# -- the rule itself ---------------------------------------------------------------------


def test_decide_counts_and_refuses() -> None:
    policy = LoginPolicy(max_failures=2, backoff=1, backoff_max=3, backoff_reset=60,
                         address_max_failures=3, address_window=10)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fresh = Counts(0, now, None, now)
    counted = decide(policy, fresh, fresh, now)
    assert not isinstance(counted, Refused)
    user, address = counted
    assert (user.failures, user.blocked_until, address.failures) == (1, None, 1)
    counted = decide(policy, user, address, now)
    assert not isinstance(counted, Refused)
    user, address = counted
    assert user.blocked_until == now + timedelta(seconds=1)
    assert decide(policy, user, address, now) == Refused(Reason.BACKOFF, 1.0)
    assert [policy.backoff_after(n) for n in range(1, 7)] == [0, 1, 2, 3, 3, 3]
    assert policy.backoff_after(10**6) == 3  # no overflow
    full = Counts(3, now, None, now + timedelta(seconds=10))
    assert decide(policy, fresh, full, now + timedelta(seconds=4)) == Refused(
        Reason.ADDRESS, 6.0)
    assert not isinstance(decide(policy, fresh, full, now + timedelta(seconds=10)), Refused)
