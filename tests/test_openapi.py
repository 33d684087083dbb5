"""The OpenAPI document: valid, true to the router, and true to what handlers answer."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import pytest
from aiohttp import ClientResponse, ClientWebSocketResponse, FormData, WSMsgType
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from bridge.signaling import ROOMS
from monitoring.openapi import health_paths
from scheduler.conference_schemas import ConferenceCreate
from scheduler.lifecycle_api import Extension
from scheduler.lifecycle_wiring import BRIDGE, redial_policy
from scheduler.runner import LifecycleRunner
from scheduler.transitions import LifecycleSettings
from tests import document_files
from tests.conftest import Client
from tests.support import bearer
from tests.support import login as log_in
from vcbridge import __version__
from vcbridge.core.api.schemas import EndpointTokenCreate, LoginRequest, UserCreate
from vcbridge.core.app_keys import DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.clock import FixedClock
from vcbridge.openapi_routes import openapi_document
from web.pages import PAGE_ROUTES

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PUBLIC = {
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/openapi.json"),
}


async def _served(client: Client) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def _ref_parts(ref: str) -> list[str]:
    assert ref.startswith("#/"), ref
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (parameters, responses) to its target."""
    while "$ref" in node:
        target: Any = document
        for part in _ref_parts(str(node["$ref"])):
            target = target[part]
        node = target
    return node


async def test_served_document_is_valid_openapi(client: Client) -> None:
    document = await _served(client)
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == __version__
    assert document["servers"] == [{"url": "/"}]
    assert document == openapi_document()


async def test_document_matches_router_both_ways(client: Client) -> None:
    document = await _served(client)
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
        # The browser pages and their static files (web/pages.py) are not API operations.
        and route.resource.canonical not in PAGE_ROUTES
    }
    documented = set(_operations(document))
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations that no route serves"


async def test_security_declared_on_every_non_public_operation(client: Client) -> None:
    document = await _served(client)
    schemes = set(document["components"]["securitySchemes"])
    assert {"bearerAuth", "cookieAuth"} <= schemes
    for key, operation in _operations(document).items():
        if key in PUBLIC:
            assert operation.get("security") == [], key
            continue
        security = operation.get("security")
        assert security, f"{key} declares no security"
        assert all(requirement for requirement in security), f"{key} allows anonymous"
        assert {name for requirement in security for name in requirement} <= schemes
        assert "401" in operation["responses"], key


async def test_operations_are_complete(client: Client) -> None:
    document = await _served(client)
    operation_ids = []
    for (method, path), operation in _operations(document).items():
        operation_ids.append(operation["operationId"])
        assert operation["summary"] and operation["tags"], (method, path)
        parameters = [_deref(document, p) for p in operation.get("parameters", [])]
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), (method, path)
        if "requestBody" in operation:
            for status in ("400", "413", "415", "422"):
                assert status in operation["responses"], (method, path, status)
    assert len(operation_ids) == len(set(operation_ids))
    calendar = document["paths"]["/api/v1/endpoints/{code}/calendar.ics"]["get"]
    assert "text/calendar" in calendar["responses"]["200"]["content"]
    assert "429" in document["paths"]["/api/v1/auth/login"]["post"]["responses"]


class Checker:
    """Checks real answers against the documented response of their operation."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(
        self, response: ClientResponse, method: str, path: str, status: int
    ) -> Any:
        assert response.status == status, await response.text()
        operation = self.document["paths"][path][method.lower()]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {path} answers an undocumented {status}"
        content = _deref(self.document, documented)["content"]
        assert response.content_type in content, (method, path, response.content_type)
        schema = content[response.content_type]["schema"]
        if response.content_type == "application/json":
            body: Any = await response.json()
            self.conforms(body, schema, (method, path, status))
        elif response.content_type.startswith("text/"):
            body = await response.text()
        else:
            body = await response.read()
        self.seen.add((method, path, status))
        return body

    def conforms(self, body: Any, schema: dict[str, Any], where: Any) -> None:
        """Assert that `body` matches `schema` (which may refer to the components)."""
        validator = Draft202012Validator(
            {**schema, "components": self.document["components"]},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (where, errors)

    def upgraded(self, method: str, path: str) -> None:
        """A WebSocket handshake succeeded: its operation must document 101."""
        operation = self.document["paths"][path][method.lower()]
        assert "101" in operation["responses"], f"{method} {path} does not document 101"
        self.seen.add((method, path, 101))

    async def stream(self, ws: ClientWebSocketResponse) -> list[Any]:
        """Ping, then the stream's messages up to the pong, each checked as documented."""
        await ws.send_json({"type": "ping"})
        messages = []
        while True:
            message = await ws.receive(timeout=10)
            assert message.type is WSMsgType.TEXT, message
            body = message.json()
            self.conforms(body, {"$ref": "#/components/schemas/EventStreamMessage"}, body)
            if body["type"] == "pong":
                return messages
            self.conforms(body, {"$ref": "#/components/schemas/BusEvent"}, body)
            messages.append(body)


async def test_answers_match_documented_schemas(
    client: Client, admin: dict[str, str], booker: dict[str, str], clock: FixedClock
) -> None:
    check = Checker(await _served(client))
    conferences = "/api/v1/conferences"
    conference = "/api/v1/conferences/{id}"

    await check(await client.get("/healthz"), "GET", "/healthz", 200)

    login = "/api/v1/auth/login"
    await check(await client.post(login, json={"username": "admin", "password": "nope"}),
                "POST", login, 401)
    await check(await client.post(login, data=b"{", headers={"Content-Type": "application/json"}),
                "POST", login, 400)
    await check(await client.post(login, data=b"x", headers={"Content-Type": "text/plain"}),
                "POST", login, 415)
    await check(await client.post(login, json={"username": "admin"}), "POST", login, 422)
    body = await check(
        await client.post(login, json={"username": "booker1", "password": "pw-booker1-123456"}),
        "POST", login, 200,
    )
    assert body["user"]["role"] == "booker"
    # The cookie session: unsafe requests need the CSRF header.
    body = await check(await client.post("/api/v1/auth/logout"),
                       "POST", "/api/v1/auth/logout", 403)
    assert body["error"]["code"] == "csrf"
    client.session.cookie_jar.clear()  # test as anonymous from here on

    await check(await client.get("/api/v1/auth/me", headers=admin), "GET", "/api/v1/auth/me", 200)
    await check(await client.get("/api/v1/auth/me"), "GET", "/api/v1/auth/me", 401)
    await check(await client.get("/api/v1/audit", headers=booker), "GET", "/api/v1/audit", 403)

    body = await check(await client.get("/api/v1/endpoints?include_retired=true", headers=admin),
                       "GET", "/api/v1/endpoints", 200)
    codes = [e["code"] for e in body["endpoints"]]
    chair, other, third = codes[:3]
    one = "/api/v1/endpoints/{code}"
    await check(await client.get(f"/api/v1/endpoints/{chair}", headers=admin), "GET", one, 200)
    await check(await client.get("/api/v1/endpoints/NO-SUCH", headers=admin), "GET", one, 404)

    users = "/api/v1/users"
    created = await check(
        await client.post(users, headers=admin, json={
            "username": "op1", "password": "pw-op1-123456", "role": "operator",
            "endpoint": chair,
        }),
        "POST", users, 201,
    )
    await check(await client.post(users, headers=admin, json={
        "username": "op1", "password": "pw-op1-123456", "role": "operator", "endpoint": chair,
    }), "POST", users, 409)
    await check(await client.get(users, headers=admin), "GET", users, 200)
    await check(await client.patch(f"{users}/{created['id']}", headers=admin,
                                   json={"full_name": "Nguyễn Văn A"}),
                "PATCH", "/api/v1/users/{id}", 200)
    reset = "/api/v1/users/{id}/password-reset"
    done = await check(await client.post(f"{users}/{created['id']}/password-reset",
                                         headers=admin, json={}), "POST", reset, 200)
    assert done["generated_password"]
    done = await check(await client.post(f"{users}/{created['id']}/password-reset",
                                         headers=admin, json={"password": "pw-op1-123456"}),
                       "POST", reset, 200)
    assert done["generated_password"] is None
    await check(await client.post(f"{users}/{created['id']}/password-reset", headers=admin,
                                  json={"password": "short"}), "POST", reset, 422)
    await check(await client.post(f"{users}/999999/password-reset", headers=admin, json={}),
                "POST", reset, 404)

    tokens = "/api/v1/endpoints/{code}/tokens"
    token = await check(
        await client.post(f"/api/v1/endpoints/{chair}/tokens", headers=admin,
                          json={"scope": "calendar", "label": "Outlook"}),
        "POST", tokens, 201,
    )
    await check(await client.post(f"/api/v1/endpoints/{chair}/tokens", headers=admin,
                                  json={"scope": "login"}), "POST", tokens, 422)
    await check(await client.get(f"/api/v1/endpoints/{chair}/tokens", headers=admin),
                "GET", tokens, 200)

    base = {"title": "Giao ban trực tuyến", "chair": chair, "participants": [chair, other],
            "start": "2026-11-30T08:00:00+07:00", "end": "2026-11-30T10:00:00+07:00"}
    booked = await check(await client.post(conferences, headers=admin, json=base),
                         "POST", conferences, 201)
    clash = await check(
        await client.post(conferences, headers=admin, json=base | {"chair": other}),
        "POST", conferences, 409,
    )
    assert clash["error"]["details"]["conflicts"][0]["conference"] == booked["id"]
    series = await check(
        await client.post(conferences, headers=admin, json=base | {
            "participants": [chair, third], "start": "2026-12-07T08:00:00+07:00",
            "end": "2026-12-07T10:00:00+07:00", "rrule": "FREQ=WEEKLY;COUNT=3",
        }),
        "POST", conferences, 201,
    )
    assert len(series["occurrence_ids"]) == 3
    await check(await client.post(conferences, headers=admin, json=base | {"end": base["start"]}),
                "POST", conferences, 422)

    # Meeting documents: attach (to the whole series), refuse, list, find, read, remove.
    attach = "/api/v1/conferences/{id}/documents"
    document_path = "/api/v1/documents/{id}"
    form = FormData()
    form.add_field("file", document_files.pdf("Biên bản giao ban"), filename="bien-ban.pdf")
    document = await check(await client.post(f"{conferences}/{series['id']}/documents"
                                             "?series=true", data=form, headers=admin),
                           "POST", attach, 201)
    form = FormData()
    form.add_field("file", b"", filename="trong.pdf")
    body = await check(await client.post(f"{conferences}/{series['id']}/documents", data=form,
                                         headers=admin), "POST", attach, 422)
    assert body["error"]["details"]["reason"] == "empty"
    await check(await client.post(f"{conferences}/{series['id']}/documents", json={},
                                  headers=admin), "POST", attach, 415)
    await check(await client.get(f"{conferences}/{series['occurrence_ids'][1]}/documents",
                                 headers=admin), "GET", attach, 200)
    body = await check(await client.get("/api/v1/documents?q=bien%20ban", headers=admin),
                       "GET", "/api/v1/documents", 200)
    assert [d["id"] for d in body["documents"]] == [document["id"]]
    await check(await client.get(f"/api/v1/documents/{document['id']}", headers=admin),
                "GET", document_path, 200)
    await check(await client.get("/api/v1/documents/999999", headers=admin),
                "GET", document_path, 404)
    content = await check(await client.get(f"/api/v1/documents/{document['id']}/content",
                                           headers=admin),
                          "GET", "/api/v1/documents/{id}/content", 200)
    assert content[:5] == b"%PDF-"
    await check(await client.delete(f"/api/v1/documents/{document['id']}", headers=admin),
                "DELETE", document_path, 200)

    await check(await client.get(f"{conferences}?endpoint={chair}&status=scheduled&limit=1",
                                 headers=admin), "GET", conferences, 200)
    await check(await client.get(f"{conferences}?from=nonsense", headers=admin),
                "GET", conferences, 422)
    await check(await client.get(f"{conferences}/{booked['id']}", headers=admin),
                "GET", conference, 200)
    await check(await client.get(f"{conferences}/999999", headers=admin), "GET", conference, 404)
    await check(await client.patch(f"{conferences}/{series['id']}?scope=following",
                                   headers=admin, json={"title": "Giao ban tuần"}),
                "PATCH", conference, 200)
    await check(await client.delete(f"{conferences}/{booked['id']}?scope=sideways",
                                    headers=admin), "DELETE", conference, 422)
    body = await check(await client.delete(f"{conferences}/{booked['id']}", headers=admin),
                       "DELETE", conference, 200)
    assert body["status"] == "cancelled" and body["affected"] == [booked["id"]]

    # The running conference. Booked to open now (10:00 in Hanoi, 15 minutes of setup);
    # `other` chairs, the operator's endpoint `chair` takes part.
    operator = bearer(await log_in(client, "op1", "pw-op1-123456"))
    client.session.cookie_jar.clear()  # logging in set the session cookie
    rollcall = "/api/v1/conferences/{id}/rollcall"
    extend = "/api/v1/conferences/{id}/extend"
    decline = "/api/v1/conferences/{id}/decline"
    today = {"chair": other, "start": "2026-11-27T10:15:00+07:00",
             "end": "2026-11-27T11:00:00+07:00"}
    running = await check(
        await client.post(conferences, headers=admin,
                          json=base | today | {"participants": [other, chair]}),
        "POST", conferences, 201,
    )
    later = await check(
        await client.post(conferences, headers=admin, json=base | {
            "chair": other, "participants": [other, third],
            "start": "2026-11-27T11:30:00+07:00", "end": "2026-11-27T12:00:00+07:00",
        }),
        "POST", conferences, 201,
    )
    at = f"{conferences}/{running['id']}"
    body = await check(await client.get(f"{at}/rollcall", headers=operator),
                       "GET", rollcall, 200)
    assert body["summary_en"].endswith("the room is not open yet"), body
    await check(await client.get(f"{conferences}/999999/rollcall", headers=admin),
                "GET", rollcall, 404)
    await check(await client.post(f"{at}/extend", headers=admin, json={"minutes": 10}),
                "POST", extend, 409)  # not open yet
    await check(await client.post(f"{at}/decline", headers=operator), "POST", decline, 409)

    app = client.app
    lifecycle = LifecycleRunner(
        app[DATABASE], app[EVENT_BUS], clock, app[BRIDGE],
        LifecycleSettings(warn_minutes=5, presence_stale=timedelta(seconds=60)),
        redial_policy(app[SETTINGS]), timedelta(days=1),
    )
    assert (await lifecycle.sync(running["id"])).applied  # the room opens
    await check(await client.post(f"{at}/extend", headers=admin, json={"minutes": 0}),
                "POST", extend, 422)
    await check(await client.post(f"{at}/extend", headers=operator, json={"minutes": 10}),
                "POST", extend, 403)  # a participant, not the chair
    clash = await check(await client.post(f"{at}/extend", headers=admin, json={"minutes": 60}),
                        "POST", extend, 409)
    assert clash["error"]["details"]["conflicts"][0]["conference"] == later["id"]
    body = await check(await client.post(f"{at}/extend", headers=admin, json={"minutes": 10}),
                       "POST", extend, 200)
    assert body["end"] == "2026-11-27T11:10:00+07:00"
    await check(await client.post(f"{at}/decline", headers=admin), "POST", decline, 403)
    body = await check(await client.post(f"{at}/decline", headers=operator),
                       "POST", decline, 200)
    assert body == {"conference": running["id"], "endpoint": chair, "state": "declined"}
    body = await check(await client.get(f"{at}/rollcall", headers=admin), "GET", rollcall, 200)
    assert {e["code"]: e["state"] for e in body["endpoints"]} == {
        other: "pending", chair: "declined"}

    # The media room (open now): refusals are JSON errors before the upgrade.
    signal = "/api/v1/conferences/{id}/signal"
    await check(await client.get(f"{at}/signal"), "GET", signal, 401)
    await check(await client.get(f"{at}/signal", headers=admin), "GET", signal, 403)
    await check(await client.get(f"{conferences}/{later['id']}/signal", headers=operator),
                "GET", signal, 404)  # its endpoint is not part of it
    await check(await client.get(f"{conferences}/{series['id']}/signal", headers=operator),
                "GET", signal, 409)  # not open
    await check(await client.get(f"{at}/signal", headers=operator), "GET", signal, 400)
    await check(await client.get(f"{at}/signal?role=chair", headers=admin), "GET", signal, 422)
    await check(await client.get(f"{at}/signal?role=control", headers=operator),
                "GET", signal, 403)  # a participant's operator, not the chair's
    chair_agent = await check(
        await client.post(f"/api/v1/endpoints/{other}/tokens", headers=admin,
                          json={"scope": "agent"}), "POST", tokens, 201)
    recordings = "/api/v1/conferences/{id}/recordings"
    recording = "/api/v1/conferences/{id}/recordings/{name}"
    body = await check(await client.get(f"{at}/recordings", headers=admin),
                       "GET", recordings, 200)
    assert body == {"conference": running["id"], "recordings": []}
    test_call = "/api/v1/endpoints/{code}/test-call"
    await check(await client.get(f"/api/v1/endpoints/{other}/test-call"), "GET", test_call, 401)
    await check(await client.get(f"/api/v1/endpoints/{other}/test-call", headers=admin),
                "GET", test_call, 403)  # staff have no endpoint to test
    async with client.ws_connect(f"/api/v1/endpoints/{other}/test-call",
                                 headers=bearer(chair_agent["token"])) as ws:
        check.upgraded("GET", test_call)
        assert (await ws.receive_json(timeout=10))["slots"] == ["self"]
        await ws.send_json({"type": "leave"})
        assert (await ws.receive_json(timeout=10))["type"] == "test_call.result"
    async with client.ws_connect(f"{at}/signal", headers=bearer(chair_agent["token"])) as ws:
        check.upgraded("GET", signal)
        assert (await ws.receive_json(timeout=10))["role"] == "chair"
        await ws.send_json({"type": "record", "on": True})
        while (await ws.receive_json(timeout=10)).get("recording") is not True:
            pass
        recorder = app[ROOMS].rooms[running["id"]].recorder
        assert recorder is not None
        name = recorder.name
        body = await check(await client.get(f"{at}/recordings", headers=admin),
                           "GET", recordings, 200)
        assert [(r["id"], r["recording"]) for r in body["recordings"]] == [(name, True)]
        await check(await client.get(f"{at}/recordings/{name}", headers=admin),
                    "GET", recording, 409)  # still being written
        await ws.send_json({"type": "record", "on": False})
        while (await ws.receive_json(timeout=10)).get("recording") is not False:
            pass  # the state with `recording: false` comes once the file is finished
        await ws.send_json({"type": "leave"})
    body = await check(await client.get(f"{at}/recordings", headers=bearer(chair_agent["token"])),
                       "GET", recordings, 200)
    assert [(r["id"], r["recording"]) for r in body["recordings"]] == [(name, False)]
    await check(await client.get(f"{at}/recordings", headers=operator),
                "GET", recordings, 403)  # a participant, not the chair
    await check(await client.get(f"{conferences}/999999/recordings", headers=admin),
                "GET", recordings, 404)
    webm = await check(await client.get(f"{at}/recordings/{name}", headers=admin),
                       "GET", recording, 200)
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    await check(await client.get(f"{at}/recordings/{name}", headers=operator),
                "GET", recording, 403)
    await check(await client.get(f"{at}/recordings/conference-1-20261127T031600Z.webm",
                                 headers=admin), "GET", recording, 404)
    # The record: recordings listed to staff, not to a participant's operator.
    record, record_pdf = "/api/v1/conferences/{id}/record", "/api/v1/conferences/{id}/record.pdf"
    body = await check(await client.get(f"{at}/record", headers=admin), "GET", record, 200)
    assert [r["id"] for r in body["recordings"]] == [name]
    body = await check(await client.get(f"{at}/record", headers=operator), "GET", record, 200)
    assert body["recordings"] is None and body["final"] is False
    await check(await client.get(f"{at}/record"), "GET", record, 401)
    await check(await client.get(f"{conferences}/{later['id']}/record", headers=operator),
                "GET", record, 404)  # its endpoint is not part of it
    pdf = await check(await client.get(f"{at}/record.pdf", headers=operator),
                      "GET", record_pdf, 200)
    assert pdf[:5] == b"%PDF-"
    await check(await client.get(f"{conferences}/999999/record.pdf", headers=admin),
                "GET", record_pdf, 404)

    # The event stream: refused before the upgrade with JSON errors, then the messages.
    events = "/api/v1/events"
    await check(await client.get(events), "GET", events, 401)
    await check(await client.get(f"{events}?after=-1", headers=admin), "GET", events, 422)
    await check(await client.get(events, headers=bearer(token["token"])), "GET", events, 403)
    await check(await client.get(events, headers=admin), "GET", events, 400)  # no upgrade
    async with client.ws_connect(f"{events}?after=0", headers=admin) as ws:
        check.upgraded("GET", events)
        ready = await ws.receive_json(timeout=10)
        check.conforms(ready, {"$ref": "#/components/schemas/EventStreamMessage"}, ready)
        assert ready == {"type": "stream.ready", "after": 0, "reset": False}
        seen = await check.stream(ws)
        types = {e["type"] for e in seen}
        assert {"conference.booked", "conference.updated", "conference.cancelled",
                "conference.opened", "endpoint.declined"} <= types, types
        await ws.send_str("hello")
        refused = await ws.receive_json(timeout=10)
        check.conforms(refused, {"$ref": "#/components/schemas/EventStreamMessage"}, refused)
        assert refused["type"] == "error"
        assert (await ws.receive(timeout=10)).type is WSMsgType.CLOSE
        assert ws.close_code == 1003
    async with client.ws_connect(f"{events}?after=0", headers=operator) as ws:
        await ws.receive_json(timeout=10)
        mine = await check.stream(ws)
        assert {e["conference"] for e in mine} == {
            booked["id"], running["id"], *series["occurrence_ids"]}  # not `later`
        assert {e["endpoint"] for e in mine} <= {None, chair}

    ics = await check(
        await client.get(f"/api/v1/endpoints/{chair}/calendar.ics?token={token['token']}"),
        "GET", "/api/v1/endpoints/{code}/calendar.ics", 200,
    )
    assert "BEGIN:VCALENDAR" in ics
    await check(await client.delete(f"/api/v1/endpoints/{chair}/tokens/{token['id']}",
                                    headers=admin),
                "DELETE", "/api/v1/endpoints/{code}/tokens/{id}", 200)

    await check(await client.get("/api/v1/audit?limit=50", headers=admin),
                "GET", "/api/v1/audit", 200)
    await check(await client.get("/api/v1/audit/actions", headers=admin),
                "GET", "/api/v1/audit/actions", 200)
    await check(await client.get("/api/v1/audit/actions", headers=booker),
                "GET", "/api/v1/audit/actions", 403)
    await check(await client.post("/api/v1/auth/logout", headers=booker),
                "POST", "/api/v1/auth/logout", 200)

    for _ in range(10):
        response = await client.post(login, json={"username": "ghost", "password": "x"})
        if response.status == 429:
            await check(response, "POST", login, 429)
            break
    else:
        raise AssertionError("login was never rate limited")
    await check(await client.post(login, data=b" " * 300_000,
                                  headers={"Content-Type": "application/json"}),
                "POST", login, 413)
    await check(await client.get("/api/v1/openapi.json"), "GET", "/api/v1/openapi.json", 200)
    await check(await client.get("/metrics"), "GET", "/metrics", 200)

    succeeded = {(method, path) for method, path, status in check.seen if status < 300}
    # The health operations have their own live run (tests/test_health_openapi.py).
    health = {(method.upper(), path) for path, item in health_paths().items()
              for method in item}
    assert succeeded == set(_operations(check.document)) - health, (
        "exercise every operation here")


def test_every_operation_documents_the_400_of_a_malformed_request() -> None:
    # Control characters in the URL are refused before routing, so any operation answers 400.
    for key, operation in _operations(openapi_document()).items():
        assert "400" in operation["responses"], key


# Text fields whose rules a validator enforces in code and the document states as a pattern.
TEXT_FIELDS: list[tuple[type[BaseModel], str]] = [
    (LoginRequest, "username"), (UserCreate, "full_name"), (EndpointTokenCreate, "label"),
    (ConferenceCreate, "title"), (ConferenceCreate, "agenda"),
]
# Control characters (C0, DEL, C1), white space and a little of everything else.
TEXT = st.text(st.one_of(st.sampled_from("\x00\x07\t\n\r\x1b \x7f\x85\x9f\xa0\u2028\u3000ab"),
                         st.characters(codec="utf-8")), max_size=12)


@pytest.mark.parametrize(("model", "name"), TEXT_FIELDS,
                         ids=[f"{m.__name__}.{n}" for m, n in TEXT_FIELDS])
@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=TEXT)
def test_documented_text_rules_are_the_validators(
    model: type[BaseModel], name: str, text: str
) -> None:
    """Both directions: a string the document's schema allows is accepted by the
    validator, and one it forbids is refused."""
    field = model.model_fields[name]
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[field.annotation, *field.metadata], config=ConfigDict(strict=True))
    document = openapi_document()
    schema = dict(document["components"]["schemas"][model.__name__]["properties"][name])
    # JSON Schema's patterns are ECMA-262, where "$" is the end of the text; in Python's
    # re (which jsonschema uses) it also matches before a final newline.
    assert schema["pattern"].endswith("$")
    schema["pattern"] = schema["pattern"][:-1] + r"\Z"
    documented = Draft202012Validator(schema).is_valid(text)
    try:
        adapter.validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert documented == accepted, (model.__name__, name, text, schema)


def test_integer_fields_take_whole_json_numbers() -> None:
    # JSON Schema's "integer" includes 10.0, so the strict models take it (not 10.5 or "10").
    assert Extension.model_validate_json('{"minutes": 10.0}').minutes == 10
    for bad in ('{"minutes": 10.5}', '{"minutes": "10"}', '{"minutes": true}'):
        with pytest.raises(ValidationError):
            Extension.model_validate_json(bad)


async def test_query_times_are_rfc3339_exactly(client: Client, admin: dict[str, str]) -> None:
    check = Checker(await _served(client))
    path = "/api/v1/conferences"
    for text in ("2026-11-30T08:00:00+07:00", "2026-11-30t01:00:00z",
                 "2026-11-30T01:00:00.1234567Z", "1900-01-01T00:00:00-00:00"):
        await check(await client.get(path, params={"from": text}, headers=admin),
                    "GET", path, 200)
    # Other ISO 8601 forms, no offset, out of the documented years.
    for text in ("20261130T080000+0700", "2026-11-30 08:00:00+07:00", "2026-11-30",
                 "2026-W48-1T08:00:00+07:00", "2026-11-30T08+07:00", "2026-11-30T08:00:00",
                 "1899-12-31T23:59:59Z", "٢٠٢٦-11-30T08:00:00Z"):
        await check(await client.get(path, params={"from": text}, headers=admin),
                    "GET", path, 422)
