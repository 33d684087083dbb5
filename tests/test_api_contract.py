"""The API keeps its contract: schemathesis against the served OpenAPI document.

A real `vcbridge serve` on a scratch database (SQLite, or PostgreSQL when
VCBRIDGE_TEST_DATABASE_URL names one) is fuzzed over every HTTP operation of
/api/v1/openapi.json with the settings in tests/schemathesis.toml: a bounded
number of examples per operation, deterministic generation, authenticated
as the admin (and, where only an endpoint may call, as its agent or
operator). Every answer must be no 5xx and a documented status, content
type, header set and body; what the document forbids must be refused and
what it allows accepted (with the business rules the document names as the
only 422s). Any finding fails the test with schemathesis's report,
including a curl command that reproduces it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.service_process import Service, service_env
from tests import document_files
from tests.support import create_scratch_database, drop_scratch_database

CONFIG = Path(__file__).with_name("schemathesis.toml")
TEST_DATABASE_URL = os.environ.get("VCBRIDGE_TEST_DATABASE_URL", "")
# The endpoint whose agent sends heartbeats and whose operator declines (both fuzzed).
SITE = "HUYEN-NGA-SON"
CHAIR = "UBND-TINH"
# Generous: the run takes about two minutes on a busy two-core machine; this only
# catches a hung run.
RUN_TIMEOUT = 900
# The PostgreSQL pass (the production store, and the stricter engine: 32-bit integers,
# no NUL in text) runs the examples of schemathesis.toml; the SQLite pass, the same
# deterministic generation on the same code, runs half as many per operation in the
# fuzzing and stateful phases. The examples and coverage phases (documented examples,
# every boundary and every forbidden value) are whole on both.
SQLITE_MAX_EXAMPLES = 100


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A scratch service. Failed logins (the fuzzer sends many, some as `admin`) must not
    lock the admin out of the run, nor the heartbeats' minimum gap answer most of them
    429: both limits are set out of the way (their own tests hold them). The login
    settings of both forms are given (a count per window, and a backoff per account and
    address); the service ignores the ones it does not have."""
    env = service_env(
        VCBRIDGE_LOGIN_MAX_FAILURES="1000", VCBRIDGE_LOGIN_WINDOW_SECONDS="1",
        VCBRIDGE_LOGIN_BACKOFF_SECONDS="0.001", VCBRIDGE_LOGIN_BACKOFF_MAX_SECONDS="0.001",
        VCBRIDGE_LOGIN_BACKOFF_RESET_SECONDS="0.01",
        VCBRIDGE_LOGIN_ADDRESS_MAX_FAILURES="100000",
        VCBRIDGE_HEALTH_HEARTBEAT_MIN_GAP_SECONDS="0",
    )
    url = ""
    if TEST_DATABASE_URL.startswith("postgresql"):
        url = asyncio.run(create_scratch_database(TEST_DATABASE_URL))
        env["VCBRIDGE_DATABASE_URL"] = url
    service = Service(tmp_path / "service", env)
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()
        if url:
            asyncio.run(drop_scratch_database(url))


def _created(service: Service, path: str, body: dict[str, object]) -> dict[str, object]:
    status, answer = service.request("POST", path, body)
    assert status in (200, 201), (path, status, answer)
    return dict(answer)


def _fixtures(service: Service) -> dict[str, str]:
    """What the run needs, as VCBRIDGE_CONTRACT_* variables for tests/schemathesis.toml
    and tests/contract_hooks.py: the site's agent and operator tokens (and which
    accounts and tokens the run must keep), and conferences in several states for the
    ids the fuzzer tries (the first ids are these): one of the site open now, a weekly
    series with a document, a cancelled one."""
    service.login()
    status, users = service.request("GET", "/api/v1/users")
    assert status == 200, users
    (admin,) = (u for u in users["users"] if u["username"] == "admin")
    password = "contract-password-123"
    agent = _created(service, f"/api/v1/endpoints/{SITE}/tokens", {"scope": "agent"})
    operator = _created(service, "/api/v1/users", {
        "username": "contract-operator", "password": password, "role": "operator",
        "endpoint": SITE})
    status, login = service.request("POST", "/api/v1/auth/login", {
        "username": "contract-operator", "password": password})
    assert status == 200, login

    def booking(start: datetime, **extra: object) -> dict[str, object]:
        return {"title": "Kiểm thử hợp đồng API", "chair": CHAIR, "participants": [CHAIR, SITE],
                "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
                "setup_minutes": 15, **extra}

    now = datetime.now(UTC).replace(microsecond=0)
    _created(service, "/api/v1/conferences", booking(now + timedelta(minutes=5)))
    series = _created(service, "/api/v1/conferences",
                      booking(now + timedelta(days=3), rrule="FREQ=WEEKLY;COUNT=3"))
    status, document = document_files.upload(  # the fuzzer's document ids start at it
        service, int(str(series["id"])), document_files.pdf("Biên bản kiểm thử hợp đồng"),
        "biên-bản.pdf", series=True)
    assert status == 201, document
    cancelled = _created(service, "/api/v1/conferences", booking(now + timedelta(days=1)))
    status, body = service.request("DELETE", f"/api/v1/conferences/{cancelled['id']}")
    assert status == 200, body
    return {
        "VCBRIDGE_CONTRACT_PASSWORD": "admin-password-e2e",
        "VCBRIDGE_CONTRACT_SITE": SITE,
        "VCBRIDGE_CONTRACT_AGENT_TOKEN": str(agent["token"]),
        "VCBRIDGE_CONTRACT_OPERATOR_TOKEN": str(login["token"]),
        "VCBRIDGE_CONTRACT_KEEP_USERS": f"{admin['id']},{operator['id']}",
        "VCBRIDGE_CONTRACT_KEEP_TOKENS": str(agent["id"]),
    }


def test_the_service_keeps_its_openapi_contract(service: Service, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
    env |= _fixtures(service)
    env["NO_COLOR"] = "1"
    # tests/schemathesis.toml names its hooks as the module tests.contract_hooks.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color",
         "run", f"{service.base}/api/v1/openapi.json",
         *([] if TEST_DATABASE_URL.startswith("postgresql")
           else ["--max-examples", str(SQLITE_MAX_EXAMPLES)])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        check=False,
    )
    report = run.stdout + run.stderr
    print(report)  # the whole run, shown by pytest on a failure
    # Each finding: the check, the answer, and a curl command that reproduces it.
    findings = report[report.find("=== FAILURES ==="):] if "=== FAILURES ===" in report else report
    assert run.returncode == 0, "schemathesis found contract violations:\n" + findings[:30_000]
    # A run that reached nothing proves nothing: every selected operation was tested.
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected and tested, report
    assert tested[1] == selected[1], report
    assert int(selected[1]) >= 25, report
    # No error logged on the way, even one the client did not see as a 500. (aiohttp's
    # own parser logs the requests it refuses before any handler, e.g. a NUL in a header.)
    errors = [line for line in service.log.read_text().splitlines()
              if " ERROR " in line and " aiohttp.server: " not in line]
    assert not errors, "\n".join(errors)
