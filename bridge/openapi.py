"""The bridge's share of the OpenAPI document: the signaling WebSocket (a documented
WebSocket operation), the pre-flight test call, recordings, and the floor.* events."""

from __future__ import annotations

from bridge.responses import (
    RECORDING_NAME_EXAMPLE,
    RECORDING_NAME_PATTERN,
    Recording,
    RecordingList,
)
from vcbridge.core.event_types import EventType, described
from vcbridge.core.http.openapi import (
    ENDPOINT_CODE,
    NOT_AN_UPGRADE,
    WEBSOCKET_HEADERS,
    ApiPart,
    Schema,
    error,
    errors,
    json_content,
    operation,
    param,
    query,
)

# The file name of a recording: bridge/recorder.py's NAME_PATTERN (a test keeps them equal).
RECORDING_NAME: Schema = {"type": "string", "pattern": RECORDING_NAME_PATTERN,
                          "examples": [RECORDING_NAME_EXAMPLE]}

SIGNAL_DESCRIPTION = (
    "The bridge's signaling WebSocket: a site (an endpoint's agent or operator) joins the "
    "conference's media room, negotiates its audio and video peer connections, follows the "
    "room state and, as chair, moderates (floor, mute, lock, admit, remove, record). The "
    "messages are described in docs/signaling.md.\n\n"
    "The caller must act for one endpoint (an operator's login token or session, or the "
    "endpoint's agent token) booked in the conference or admitted by the chair. Checks "
    "happen before the upgrade, so a refused connection gets an ordinary JSON error instead "
    "of `101`: 400 when the request is not a WebSocket upgrade, 403 for a caller bound to no "
    "endpoint, 404 for an unknown conference or one the endpoint is not part of, 409 when "
    "the conference is not open or live (the room opens `setup_minutes` before the start), "
    "429 when the caller connected to this room too often within a minute.\n\n"
    "With `role=control` a person moderates without being a site (docs/signaling.md, "
    "\"Control mode\"): an admin or booker for any conference, or the chair endpoint's "
    "operator. No seat, no media sent, not in the roll call; the room state, the chair's "
    "moderation messages on its behalf (published with `data.by` naming the person, audited "
    "under the person's name), and optionally the chair's view of the video, receive-only. "
    "403 for another caller who may see the conference, 422 for an unknown `role`."
)

EVENT_TYPES = described(frozenset({
    EventType.FLOOR_REQUEST,
    EventType.FLOOR_CANCEL,
    EventType.FLOOR_RELEASE,
    EventType.FLOOR_GRANT,
    EventType.FLOOR_REFUSE,
    EventType.FLOOR_REVOKE,
    EventType.FLOOR_MUTE,
    EventType.FLOOR_MUTE_ALL,
    EventType.FLOOR_LOCK,
    EventType.FLOOR_ADMIT,
    EventType.FLOOR_REMOVE,
    EventType.FLOOR_RECORD,
    EventType.CONFERENCE_ROOM_PLACED,
    EventType.BRIDGE_NODE_DEAD,
}))


def _paths() -> dict[str, Schema]:
    return {
        "/api/v1/endpoints/{code}/test-call": {"get": operation(
            "testCall", "A short echo test call to the bridge (WebSocket)", "bridge",
            {"101": {
                "description": "Switching Protocols: the bridge sends `joined` (slots "
                "`[\"self\"]`), answers the audio and video offers and sends the site's "
                "own media back; after `leave` (or 20 s) it sends `test_call.result` "
                "(audio packets and video frames it received) and `closed`.",
                "headers": {"Upgrade": {"schema": {"const": "websocket"}}},
            },
             "400": NOT_AN_UPGRADE,
             **errors(401, 403, 404)},
            parameters=[param("EndpointCode")],
            description="The pre-flight check of an endpoint agent (docs/signaling.md, "
            "\"Test call\"): only the endpoint itself (its agent or operator token); "
            "403 for anyone else.",
        )},
        "/api/v1/conferences/{id}/signal": {"get": operation(
            "joinRoom", "Join the conference's media room (signaling WebSocket)", "bridge",
            {"101": {
                "description": "Switching Protocols: the WebSocket is open; the bridge sends "
                "`joined`, then the room state (docs/signaling.md).",
                "headers": WEBSOCKET_HEADERS,
            },
             "400": NOT_AN_UPGRADE,
             **errors(401, 403, 404, 409, 422),
             "429": error(
                 "This site (or moderator) connected to the room too often within a minute "
                 "(setting signaling_joins_per_minute; code rate_limited).",
                 headers={"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                          "description": "Seconds to wait."}}),
             "503": error(
                 "Bridge nodes (PostgreSQL): the conference is running but no bridge node "
                 "can take its room now (every node full, draining or down; code "
                 "no_bridge_node).",
                 headers={"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                          "description": "Seconds to wait."}})},
            parameters=[param("ConferenceId"), query(
                "role", {"type": "string", "enum": ["site", "control"], "default": "site"},
                "`site`: an endpoint joins with its media; `control`: a moderator's console "
                "(no seat, no media sent).")],
            description=SIGNAL_DESCRIPTION,
        )},
        "/api/v1/conferences/{id}/recordings": {"get": operation(
            "listRecordings", "The conference's recordings", "bridge",
            {"200": json_content(RecordingList, "Every recording of the conference."),
             **errors(401, 403, 404)},
            parameters=[param("ConferenceId")],
            description="The chair starts and stops recording in the room (signaling message "
            "`record`). Readable by admins, bookers and IT staff and by the chair endpoint "
            "(its operator or agent); 403 for another participant, 404 for an unknown "
            "conference or one the caller may not see.",
        )},
        "/api/v1/conferences/{id}/recordings/{name}": {"get": operation(
            "downloadRecording", "Download a recording (WebM)", "bridge",
            {"200": {
                "description": "The WebM file (Opus audio, VP8 video), as an attachment.",
                "content": {"video/webm": {"schema": {"type": "string",
                                                      "contentMediaType": "video/webm"}}},
                "headers": {"Content-Disposition": {
                    "schema": {"type": "string"},
                    "description": "attachment; filename=\"<name>\""}},
            },
             **errors(401, 403, 404, 409)},
            parameters=[param("ConferenceId"), param("RecordingName")],
            description="Who may download: as for the listing. 404 for a name that is not in "
            "the conference's listing; 409 while the recording is still being written.",
        )},
    }


def part() -> ApiPart:
    """The bridge's paths, schemas and events."""
    return ApiPart(
        paths=_paths(),
        models=(Recording, RecordingList),
        parameters={"RecordingName": {
            "name": "name", "in": "path", "required": True, "schema": RECORDING_NAME,
            "description": "The recording's `id` from the listing.",
        }},
        event_types=EVENT_TYPES,
        event_data={
            "endpoint": ENDPOINT_CODE | {"description": "floor.*: the site acted upon."},
            "muted": {"type": "boolean", "description": "floor.mute, floor.mute_all."},
            "locked": {"type": "boolean", "description": "floor.lock."},
            "on": {"type": "boolean", "description": "floor.record: started or stopped."},
            "recording": RECORDING_NAME | {"description": "floor.record: the file."},
            "cause": {"type": "string", "enum": ["ended", "cancelled", "shutdown", "failed",
                                                  "interrupted", "resumed", "moved"],
                      "description": "floor.record: why the bridge stopped or started the "
                      "recording itself (absent when the chair did); after a restart or a "
                      "move of the room, interrupted (the cut file) then resumed (the new "
                      "file); moved: a node that lost the room stopped its file."},
            "node": {"type": "string", "description": "conference.room_placed: the bridge "
                     "node holding the room; bridge_node.dead: the node declared dead."},
            "url": {"type": "string", "description": "conference.room_placed: the node's "
                    "base URL for the signaling WebSocket."},
            "generation": {"type": "integer", "minimum": 1,
                           "description": "conference.room_placed: +1 at each move."},
            "previous": {"type": "string", "description": "conference.room_placed: the node "
                         "the room was on before (absent for a first placement)."},
            "incarnation": {"type": "integer", "minimum": 1,
                            "description": "bridge_node.dead: which start of the node."},
            "rooms": {"type": "array", "items": {"type": "integer"},
                      "description": "bridge_node.dead: the conferences whose rooms it "
                      "held."},
        },
    )
