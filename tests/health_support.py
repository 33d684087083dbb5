"""Helpers of the endpoint-health tests (no tests here).

Each health test module overrides the conftest's `settings` fixture with
`health_settings` (the conftest's `client` is the service's app). The
background sweep runs only every minute on these settings: tests sweep by
hand (`monitor.sweep()`) on the fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitoring.health.monitor import MONITOR, HealthMonitor
from tests.conftest import NOW, Client
from tests.support import ADMIN_PASSWORD
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings

# Settings of the health tests (the conftest's plus deterministic health timing).
HEALTH_SETTINGS: dict[str, Any] = {
    "health_sweep_seconds": 60,
    "health_offline_after_seconds": 120,
    "health_persist_seconds": 10,
    "health_heartbeat_interval_seconds": 5,
    "health_preflight_wait_seconds": 0,
}


def health_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        password_time_cost=1,
        password_memory_kib=64,
        scheduler_enabled=False,
        **(HEALTH_SETTINGS | overrides),
    )


def monitor_of(client: Client) -> HealthMonitor:
    return client.app[MONITOR]


async def agent_token(client: Client, admin: dict[str, str], code: str) -> dict[str, str]:
    response = await client.post(f"/api/v1/endpoints/{code}/tokens", headers=admin,
                                 json={"scope": "agent", "label": "test agent"})
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


def heartbeat(at: datetime = NOW, **changes: Any) -> dict[str, Any]:
    """A healthy heartbeat sent at `at`; keyword arguments replace top-level fields."""
    body: dict[str, Any] = {
        "sent_at": at.isoformat(),
        "devices": {"camera": True, "microphone": True, "speaker": True},
        "cpu_percent": 12.5,
        "network": {"interface": "eth0", "rtt_ms": 18.0},
        "agent_version": "1.0.0",
    }
    body.update(changes)
    return body


def in_call(loss: float = 0.0, **figures: Any) -> dict[str, Any]:
    """Call figures of a good call, with packet loss `loss`."""
    return {"conference": None, "rtt_ms": 40.0, "jitter_ms": 5.0, "packet_loss_ratio": loss,
            "bitrate_in_bps": 1_500_000.0, "bitrate_out_bps": 1_200_000.0, "fps": 25.0,
            "audio_level": 0.1} | figures


async def send(client: Client, headers: dict[str, str], code: str, body: Any,
               clock: FixedClock | None = None, *, step: float = 5.0) -> Any:
    """POST a heartbeat (moving the fixed clock on by `step` seconds first); the response."""
    if clock is not None:
        clock.set(clock.now() + timedelta(seconds=step))
        if isinstance(body, dict) and "sent_at" in body:
            body = body | {"sent_at": clock.now().isoformat()}
    return await client.post(f"/api/v1/endpoints/{code}/heartbeat", json=body, headers=headers)


async def health_of(client: Client, headers: dict[str, str], code: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/health/{code}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def codes(reasons: list[dict[str, Any]]) -> list[str]:
    return [r["code"] for r in reasons]
