"""Response bodies of the bridge's API: a conference's recordings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vcbridge.core.http.render import LocalTime, ResponseModel

# The file name of a recording: bridge/recorder.py's NAME_PATTERN (a test keeps them equal).
RECORDING_NAME_PATTERN = r"^conference-[0-9]+-[0-9]{8}T[0-9]{6}Z\.webm$"
RECORDING_NAME_EXAMPLE = "conference-12-20261127T031500Z.webm"


class Recording(ResponseModel):
    """One recording: a WebM file with the conference's common audio mix (Opus) and its
    main video (VP8)."""

    id: Annotated[str, Field(
        pattern=RECORDING_NAME_PATTERN, examples=[RECORDING_NAME_EXAMPLE],
        description="The file name: conference-<id>-<UTC start>.webm.")]
    started: Annotated[LocalTime, Field(description="When the recording started.")]
    size: Annotated[int, Field(ge=0, description="Bytes.")]
    duration: Annotated[float | None, Field(
        ge=0, description="Seconds; null while it is being written, or for a file cut short "
        "(the bridge stopped without finishing it: it plays up to where it was cut).")]
    recording: Annotated[bool, Field(description="True while the bridge is still writing it.")]


class RecordingList(ResponseModel):
    """GET /api/v1/conferences/{id}/recordings."""

    conference: int
    recordings: Annotated[list[Recording], Field(description="Oldest first.")]
