"""The health routes in the service's OpenAPI document: complete operations, their
events described, and true to what the handlers answer (tests/test_openapi.py checks
the document against the router both ways)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from monitoring.health.monitor import MONITOR
from monitoring.openapi import EVENT_TYPES as HEALTH_EVENT_TYPES
from monitoring.openapi import health_paths
from tests.conftest import Client
from tests.health_support import agent_token, health_settings, heartbeat, send
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings
from vcbridge.openapi_routes import openapi_document

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(database_url, tmp_path)


def test_health_operations_are_complete() -> None:
    document = openapi_document()
    validate(document)
    for path, item in health_paths().items():
        for method, operation in item.items():
            assert operation["summary"] and operation["tags"] and operation["security"]
            assert "401" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(operation["responses"])
            in_path = set()
            for parameter in operation.get("parameters", []):
                if "$ref" in parameter:
                    name = parameter["$ref"].rsplit("/", 1)[1]
                    parameter = document["components"]["parameters"][name]
                if parameter["in"] == "path":
                    in_path.add(parameter["name"])
            assert in_path == set(re.findall(r"{(\w+)}", path)), path


def test_event_types_are_described() -> None:
    event_types = HEALTH_EVENT_TYPES
    assert set(event_types) == {"endpoint.health", "conference.readiness"}
    for text, keys in event_types.values():
        assert text and keys
    documented = openapi_document()["components"]["schemas"]["BusEvent"]
    assert set(event_types) <= set(documented["properties"]["type"]["enum"])


class Checker:
    def __init__(self) -> None:
        self.document = openapi_document()
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(self, response: ClientResponse, method: str, path: str, status: int
                       ) -> Any:
        assert response.status == status, await response.text()
        self.seen.add((method, path, status))
        documented = self.document["paths"][path][method]["responses"][str(status)]
        if "$ref" in documented:
            documented = self.document["components"]["responses"][
                documented["$ref"].rsplit("/", 1)[1]]
        content = documented["content"]
        assert response.content_type in content
        if response.content_type != "application/json":
            return await response.text()
        body = await response.json()
        schema = content[response.content_type]["schema"]
        validator = Draft202012Validator({**schema, "components": self.document["components"]},
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (method, path, status, errors)
        return body


async def test_answers_match_the_fragment(client: Client, admin: dict[str, str],
                                          clock: FixedClock) -> None:
    check = Checker()
    code = "HUYEN-NGA-SON"
    agent = await agent_token(client, admin, code)
    beat = "/api/v1/endpoints/{code}/heartbeat"
    test_call = {"ok": False, "at": clock.now().isoformat(), "audio_packets": 1,
                 "video_frames": 0, "loss": 0.5, "rtt_ms": None}
    body = heartbeat(devices={"camera": False, "microphone": True, "speaker": True},
                     call={"conference": 3, "rtt_ms": 500.0, "packet_loss_ratio": 0.1},
                     test_call=test_call)
    await check(await send(client, agent, code, body, clock), "post", beat, 200)
    await check(await send(client, agent, code, body, clock, step=0.1), "post", beat, 429)
    await check(await send(client, agent, "UBND-TINH", body, clock), "post", beat, 403)
    await check(await send(client, agent, code, {"sent_at": 5}, clock), "post", beat, 422)
    await check(await client.get("/api/v1/health", headers=admin), "get", "/api/v1/health", 200)
    detail = "/api/v1/health/{code}"
    clock.set(clock.now() + timedelta(minutes=5))  # offline, with a transition and a sample
    await client.app[MONITOR].sweep()
    answer = await check(await client.get(f"/api/v1/health/{code}", headers=admin),
                         "get", detail, 200)
    assert answer["samples"] and answer["transitions"]
    await check(await client.get("/api/v1/health/NOPE", headers=admin), "get", detail, 404)
    history = "/api/v1/health/{code}/history"
    answer = await check(await client.get(f"/api/v1/health/{code}/history?hours=1",
                                          headers=admin), "get", history, 200)
    assert answer["minutes"] == 60 and answer["transitions"]
    await check(await client.get(f"/api/v1/health/{code}/history?hours=169", headers=admin),
                "get", history, 422)
    await check(await client.get(f"/api/v1/health/{code}/history", headers=agent),
                "get", history, 403)
    await check(await client.get("/api/v1/health/NOPE/history", headers=admin),
                "get", history, 404)
    grafana = "/api/v1/monitoring/grafana-dashboard.json"
    answer = await check(await client.get(grafana, headers=admin), "get", grafana, 200)
    assert answer["panels"]
    await check(await client.get(grafana, headers=agent), "get", grafana, 403)
    report = "/api/v1/reports/availability"
    await check(await client.get(f"{report}?month=2026-11", headers=admin), "get", report, 200)
    await check(await client.get(f"{report}?format=csv", headers=admin), "get", report, 200)
    await check(await client.get(f"{report}?format=csv&lang=vi", headers=admin),
                "get", report, 200)
    await check(await client.get(f"{report}?format=csv&lang=fr", headers=admin),
                "get", report, 422)
    await check(await client.get(f"{report}?month=11-2026", headers=admin), "get", report, 422)
    # The document forbids these (pattern), so the service refuses them too: an empty
    # month is not "this month", and 00 or 13 is no month.
    for month in ("", "2026-00", "2026-13", "1999-12", "٢٠٢٦-١١"):
        body = await check(await client.get(report, params={"month": month}, headers=admin),
                           "get", report, 422)
        assert "month" in body["error"]["message"], body
    # Control characters in the query string: refused before the handler, as documented.
    body = await check(await client.get(report, params={"month": "2026-11\x00"},
                                        headers=admin), "get", report, 400)
    assert "control characters" in body["error"]["message"]
    start = clock.now() + timedelta(hours=2)
    booked = await client.post("/api/v1/conferences", headers=admin, json={
        "title": "Họp", "chair": "UBND-TINH", "participants": ["UBND-TINH", code],
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    assert booked.status == 201
    readiness = "/api/v1/conferences/{id}/readiness"
    answer = await check(await client.get(
        f"/api/v1/conferences/{(await booked.json())['id']}/readiness", headers=admin),
        "get", readiness, 200)
    assert answer["total"] == 2
    succeeded = {(method.upper(), path) for method, path, status in check.seen if status < 300}
    operations = {(method.upper(), path)
                  for path, item in health_paths().items() for method in item}
    assert succeeded == operations, "exercise every health operation here"
