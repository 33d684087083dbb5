"""The `vcbridge` command as an administrator uses it on a fresh machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.service_process import free_port
from tests.support import skip_or_fail

VCBRIDGE = [sys.executable, "-m", "vcbridge.cli"]


def run(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(VCBRIDGE + args, env=env, capture_output=True, text=True, timeout=60,
                          check=False, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
    environment["VCBRIDGE_PASSWORD_TIME_COST"] = "1"
    environment["VCBRIDGE_PASSWORD_MEMORY_KIB"] = "64"
    return environment


def test_serve_starts_on_a_fresh_data_dir_and_answers_healthz(
    tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    data = tmp_path / "data"
    env["VCBRIDGE_ADMIN_PASSWORD"] = "first-admin-password"
    server = subprocess.Popen(
        [*VCBRIDGE, "serve", "--port", str(port), "--data-dir", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.2)
        if health is None:
            server.kill()
            pytest.fail(f"server never answered: {server.communicate()[0]}")
        assert health["status"] == "ok" and health["database"] == "sqlite"
        assert (data / "vcbridge.sqlite3").exists()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            data=json.dumps({"username": "admin", "password": "first-admin-password"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert "token" in json.loads(r.read())
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_admin_commands(tmp_path: Path, env: dict[str, str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert run(["db", "upgrade", *data], env).returncode == 0
    synced = run(["endpoints", "sync", *data], env)
    assert synced.returncode == 0 and "added 31" in synced.stdout
    again = run(["endpoints", "sync", *data], env)
    assert "added 0, updated 0, retired 0, unchanged 31" in again.stdout

    env["VCBRIDGE_NEW_PASSWORD"] = "operator-password"
    created = run(["users", "create", "op-nga-son", "--role", "operator",
                   "--endpoint", "HUYEN-NGA-SON", *data], env)
    assert created.returncode == 0, created.stderr
    duplicate = run(["users", "create", "op-nga-son", "--role", "operator",
                     "--endpoint", "HUYEN-NGA-SON", *data], env)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr

    token = run(["endpoints", "token", "HUYEN-NGA-SON", *data], env)
    assert token.returncode == 0 and token.stdout.strip().startswith("vca_")
    unknown = run(["endpoints", "token", "NOWHERE", *data], env)
    assert unknown.returncode == 2 and "NOWHERE" in unknown.stderr


def test_users_create_without_a_terminal_or_password_says_how(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """No terminal to ask on and no VCBRIDGE_NEW_PASSWORD: a clear message, exit 2."""
    result = run(["users", "create", "someone", "--role", "admin", "--data-dir", str(tmp_path)],
                 env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "VCBRIDGE_NEW_PASSWORD" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "vcbridge.sqlite3").exists()  # nothing was written


def test_the_cli_names_its_database_and_says_when_it_starts_a_new_one(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Run from another directory, the default ./var is another database: it says so."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = elsewhere / "var" / "vcbridge.sqlite3"
    first = run(["endpoints", "sync"], env, cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert f"database: sqlite+aiosqlite:///{database}" in first.stderr
    assert "creates a new, empty database" in first.stderr and "--data-dir" in first.stderr
    again = run(["endpoints", "sync"], env, cwd=elsewhere)
    assert str(database) in again.stderr and "new, empty" not in again.stderr


def test_bad_setting_is_named_at_start(tmp_path: Path, env: dict[str, str]) -> None:
    env["VCBRIDGE_MAX_DURATION_HOURS"] = "-3"
    result = run(["db", "upgrade", "--data-dir", str(tmp_path)], env)
    assert result.returncode == 2
    assert "max_duration_hours" in result.stderr
    env.pop("VCBRIDGE_MAX_DURATION_HOURS")
    env["VCBRIDGE_DATABASE_URL"] = "mysql://nope"
    result = run(["db", "upgrade"], env)
    assert result.returncode == 2 and "database_url" in result.stderr
    config = tmp_path / "bad.toml"
    config.write_text('timezone = "Mars/Olympus"\n')
    env.pop("VCBRIDGE_DATABASE_URL")
    env["VCBRIDGE_CONFIG"] = str(config)
    result = run(["db", "upgrade", "--data-dir", str(tmp_path)], env)
    assert result.returncode == 2 and "timezone" in result.stderr
    env["VCBRIDGE_CONFIG"] = str(config) + ".missing"
    result = run(["db", "upgrade"], env)
    assert result.returncode == 2 and "VCBRIDGE_CONFIG" in result.stderr


def test_a_process_with_only_some_roles_needs_postgresql(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # On SQLite only the all-in-one runs: a bridge node or a controller alone would serve
    # a database no other process sees. Refused at start, naming why; nothing started.
    for args in (["bridge-node"], ["serve", "--roles", "api,scheduler"]):
        result = run([*args, "--port", str(free_port()), "--data-dir", str(tmp_path)], env)
        assert result.returncode == 2, result
        assert "needs PostgreSQL" in result.stderr and "roles" in result.stderr
    result = run(["serve", "--roles", "api,media", "--data-dir", str(tmp_path)], env)
    assert result.returncode == 2 and "roles" in result.stderr
    env["VCBRIDGE_DATABASE_URL"] = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    result = run(["bridge-node", "--advertise-url", "node2.example"], env)
    assert result.returncode == 2 and "node_advertise_url" in result.stderr
    assert not (tmp_path / "vcbridge.sqlite3").exists()


def test_postgresql_url_is_honoured(env: dict[str, str]) -> None:
    """`VCBRIDGE_DATABASE_URL` switches the service to PostgreSQL."""
    import asyncio

    from tests.support import scratch_postgres

    async def check() -> None:
        async with scratch_postgres() as url:
            env["VCBRIDGE_DATABASE_URL"] = url
            result = await asyncio.to_thread(run, ["endpoints", "sync"], env)
            assert result.returncode == 0, result.stderr
            assert "added 31" in result.stdout

    try:
        asyncio.run(check())
    except OSError as exc:  # pragma: no cover - reported by scratch_postgres
        skip_or_fail(str(exc))
