"""What the bridge changes in the SDP between aiortc and Janus's SIP plugin, and what it
reads from a room system's answer.

Janus passes the SDP through to the SIP side (it rewrites addresses and transport, never
the codecs), so what aiortc offers is what the room system chooses from:

- aiortc offers no RFC 4733 telephone-event: the bridge adds it to the audio line, so a
  room system can send its keypad (DTMF `*1`: ask for the floor) in the audio stream;
- aiortc offers two H.264 payload types (profiles 42001f and 42e01f); a room that answers
  one and sends the other has its video dropped. The leg offers one H.264 profile only
  (`h264_preferences`), or none in a VP8-only room;
- an answer that rejects the video line (port 0: an audio-only room, or no common video
  codec) makes aiortc raise: that line is made `inactive` before aiortc reads it, and the
  call goes on with audio only.

Everything the bridge needs from the answer is read here (`read_answer`): the audio codec,
the telephone-event payload type, the video codec or None. A malformed or hostile answer
raises `SipMediaError` with a reason the roll call shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SipMediaReason = Literal["no-common-codec", "malformed"]
AUDIO_CODECS = ("opus", "G722", "PCMU", "PCMA")
VIDEO_CODECS = ("VP8", "H264")
STATIC_NAMES = {0: "PCMU", 8: "PCMA", 9: "G722"}  # RFC 3551 payload types
MAX_SDP = 64 * 1024
RESERVED_PT = "127"  # the stand-in codec's payload type on a rejected line
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([A-Za-z0-9_.-]+)/(\d+)")


class SipMediaError(Exception):
    """A room system's SDP the bridge cannot use; `reason` is what the roll call shows."""

    def __init__(self, reason: SipMediaReason, message: str) -> None:
        super().__init__(message)
        self.reason: SipMediaReason = reason


@dataclass(frozen=True)
class NegotiatedMedia:
    """What a SIP leg carries once the answer is in."""

    audio: str  # one of AUDIO_CODECS
    audio_payload_type: int
    telephone_event: int | None  # its payload type, when the room accepted it
    video: str | None  # one of VIDEO_CODECS, None: no video (rejected or inactive)
    video_payload_type: int | None = None


def _sections(sdp: str) -> list[list[str]]:
    """The session part, then one list of lines per media line."""
    sections: list[list[str]] = [[]]
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _join(sections: list[list[str]]) -> str:
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def add_telephone_event(offer: str) -> tuple[str, int]:
    """The offer with RFC 4733 telephone-event/8000 added to its audio line, and its
    payload type (101 unless taken)."""
    sections = _sections(offer)
    used = {int(pt) for section in sections[1:] for pt in section[0].split()[3:]
            if pt.isdigit()}
    pt = next(p for p in (101, *range(96, 128)) if p not in used)
    for section in sections[1:]:
        if section[0].startswith("m=audio "):
            section[0] += f" {pt}"
            last = max((i for i, line in enumerate(section) if line.startswith(
                ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))), default=len(section) - 1)
            section[last + 1:last + 1] = [f"a=rtpmap:{pt} telephone-event/8000",
                                          f"a=fmtp:{pt} 0-16"]
            break
    return _join(sections), pt


def _names(section: list[str]) -> dict[int, str]:
    names = dict(STATIC_NAMES)
    for line in section:
        match = _RTPMAP.match(line)
        if match:
            names[int(match.group(1))] = match.group(2)
    return names


def _formats(media_line: str) -> list[int]:
    parts = media_line.split()
    if len(parts) < 4:
        raise SipMediaError("malformed", f"malformed media line {media_line[:80]!r}")
    try:
        return [int(p) for p in parts[3:]]
    except ValueError:
        raise SipMediaError("malformed", f"malformed media line {media_line[:80]!r}") from None


def read_answer(answer: str) -> tuple[str, NegotiatedMedia]:
    """The answer as aiortc should read it, and what was negotiated.

    Raises `SipMediaError`: "no-common-codec" when the audio line is rejected or carries
    no codec the bridge mixes; "malformed" when it is not an SDP answer we can read."""
    if not isinstance(answer, str) or len(answer) > MAX_SDP or not answer.startswith("v=0"):
        raise SipMediaError("malformed", "the answer is not an SDP description")
    sections = _sections(answer)
    audio: tuple[str, int] | None = None
    telephone_event: int | None = None
    video: tuple[str, int] | None = None
    audio_lines = 0
    for section in sections[1:]:
        kind, port = section[0][2:].split(" ", 1)[0], section[0].split()[1:2]
        formats = _formats(section[0])
        names = _names(section)
        rejected = port == ["0"] or "a=inactive" in section
        if kind == "audio":
            audio_lines += 1
            if rejected:
                raise SipMediaError("no-common-codec", "the room rejected the audio")
            for pt in formats:
                name = names.get(pt, "")
                if name.lower() == "telephone-event":
                    telephone_event = pt
                elif audio is None and name.lower() in {c.lower() for c in AUDIO_CODECS}:
                    audio = (next(c for c in AUDIO_CODECS if c.lower() == name.lower()), pt)
        elif kind == "video":
            chosen = next((names.get(pt, "").upper() for pt in formats
                           if names.get(pt, "").upper() in VIDEO_CODECS), None)
            if rejected or chosen is None:
                _make_inactive(section, formats)
            else:
                video = (chosen, next(pt for pt in formats
                                      if names.get(pt, "").upper() == chosen))
    if audio_lines != 1:
        raise SipMediaError("malformed", "the answer must have exactly one audio line")
    _bundle_rejected(sections)
    if audio is None:
        raise SipMediaError("no-common-codec", "the room answered no audio codec we mix")
    return _join(sections), NegotiatedMedia(
        audio=audio[0], audio_payload_type=audio[1], telephone_event=telephone_event,
        video=video[0] if video else None, video_payload_type=video[1] if video else None)


def _make_inactive(section: list[str], formats: list[int]) -> None:
    """A rejected line, as aiortc accepts it: a port, a format, and inactive (its transport
    attributes are added by `_bundle_rejected`)."""
    parts = section[0].split()
    # aiortc wants a codec it knows even on an inactive line: VP8 stands in (nothing is
    # ever sent or received on it); a rejected line's own format (often "0") means nothing.
    kind = parts[0][2:]
    stand_in = {"video": "VP8/90000", "audio": "PCMU/8000"}.get(kind)
    parts[1] = "9"
    del formats
    section[0] = " ".join([*parts[:3], RESERVED_PT if stand_in else "0"])
    section[:] = [line for line in section if line not in (
        "a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
        and not line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))]
    if stand_in:
        section.append(f"a=rtpmap:{RESERVED_PT} {stand_in}")
    section.append("a=inactive")
    section.append("a=x-vcbridge-rejected")


_TRANSPORT = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:", "a=rtcp-mux")


def _bundle_rejected(sections: list[list[str]]) -> None:
    """Janus answers a rejected line without transport attributes, which aiortc needs in
    every section: give it those of the first accepted line, and put it in the bundle."""
    marker = "a=x-vcbridge-rejected"
    accepted = next((s for s in sections[1:] if marker not in s), None)
    if accepted is None:
        return
    transport = [line for line in accepted if line.startswith(_TRANSPORT)]
    for section in sections[1:]:
        if marker not in section:
            continue
        section.remove(marker)
        section[:] = [line for line in section if not line.startswith(_TRANSPORT)]
        section.extend(transport)
        mid = next((line[6:] for line in section if line.startswith("a=mid:")), None)
        for index, line in enumerate(sections[0]):
            if line.startswith("a=group:BUNDLE") and mid is not None and mid not in line.split():
                sections[0][index] = f"{line} {mid}"


def with_inactive_rejections(offer: str) -> str:
    """An incoming offer (dial-in) with its rejected lines made inactive, for aiortc."""
    sections = _sections(offer)
    for section in sections[1:]:
        if section[0].split()[1:2] == ["0"]:
            _make_inactive(section, _formats(section[0]))
    _bundle_rejected(sections)
    return _join(sections)
