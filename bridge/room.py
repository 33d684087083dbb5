"""One conference's room: who is in it, the floor, and what each site receives.

The room ties the pure floor state (`floor_control.py`) to the media: who
is audible in the mix, which source each video slot shows, and the state
snapshot every connected client gets after each change. Each site has at
most one connection: a new one replaces the old (the site reconnected) and
keeps its seat, floor and mute state, which live in the floor state, keyed
by endpoint code, not by connection.

The chair may record the conference (`record`): the common audio mix and the
main video (the chair's camera while nothing else is the main video) go to a
WebM file in `recordings_dir`, through `bridge/recorder.py`.

Moderators (an audit `Actor`: a booker or admin at the chair console) connect
in control mode: a `ControlConnection` gets every room state and may send the
chair's actions, on the chair's behalf, and may receive the chair's view of
the video (the floor and one grid slot per site, the chair's own included)
receive-only. It is not a site: no seat, no audio, no roll call, not in the
floor state. Any number of them may be connected beside the chair.

The room's state outlives the process (`bridge/room_state_store.py`): given a
store (`keep_state`), a room restores what its conference's room saved before
(the floor, the queue, mutes, the lock; a recording goes on into a new file),
before it seats anyone, and saves every change after."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bridge import control_messages as messages
from bridge import floor_control as floor
from bridge.audio_engine import AudioEngine
from bridge.coalescer import Coalescer
from bridge.peer_session import IceSettings, OfferError, PeerSession
from bridge.recorder import Recorder, RecordingError
from bridge.room_state_store import RoomStateStore, SavedRoom, StateWriter, restore_floor
from bridge.video_router import VideoSlot, VideoSource
from vcbridge.core.audit import Actor

if TYPE_CHECKING:
    from bridge.sip.audio_codecs import SharedMixEncoder
    from bridge.sip.sip_leg import Hangup, SipLeg

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

# The room state goes out at most this often (seconds): a single change at once, a burst
# of changes as one more state at the end of each interval, always the latest.
STATE_BROADCAST_INTERVAL = 0.1


class RoomHooks(Protocol):
    """What a room reports to the rest of the system (wired by the composition root)."""

    async def attendance(self, conference_id: int, code: str, kind: str) -> None:
        """A site joined, dropped or left (the scheduler's roll call)."""

    async def floor_action(self, conference_id: int, actor: str, action: str,
                           data: dict[str, Any], moderator: Actor | None = None
                           ) -> None:
        """A moderation action took effect (event bus and audit log).

        `actor` is the endpoint the action is attributed to: the site that
        acted, or the chair when `moderator` acted on its behalf (the record
        then names that person)."""


@dataclass(eq=False)
class SiteConnection:
    """One site's live connection: its signaling channel and its peer connections."""

    code: str
    send: Send
    peers: PeerSession
    media_reported: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # The person at this site's console (an operator's login), None for the agent.
    person: Actor | None = None

    @property
    def actor(self) -> str:
        """Who this connection's control messages come from: the site itself."""
        return self.code


@dataclass(eq=False)
class ControlConnection:
    """A moderator's console: room states in, the chair's actions out, and optionally
    the chair's view of the video, receive-only. Holds no seat."""

    label: str  # unique in the room, never an endpoint code ("control:3")
    moderator: Actor
    send: Send
    peers: PeerSession
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def actor(self) -> Actor:
        """Who this connection's control messages come from: the moderator."""
        return self.moderator


class Room:
    """The media room of one open or live conference."""

    def __init__(self, conference_id: int, chair: str, sites: Sequence[str],
                 ice: IceSettings, hooks: RoomHooks, *, frame_ms: int = 20) -> None:
        self.conference_id = conference_id
        self.ice = ice
        self.hooks = hooks
        self.state = floor.new_floor(chair, sites)
        self.connections: dict[str, SiteConnection] = {}
        self.controls: dict[str, ControlConnection] = {}  # by label
        self._control_numbers = itertools.count(1)
        self.sources: dict[str, VideoSource] = {}
        self.audio = AudioEngine(frame_ms=frame_ms, on_speaker_change=self._speaker_changed)
        # The common mix in each SIP codec, encoded once a frame for all its rooms.
        self.shared_mix_encoders: dict[str, SharedMixEncoder] = {}
        self.closed = False
        # Where recordings go (set by the wiring); None: this room cannot record.
        self.recordings_dir: Path | None = None
        self.recorder: Recorder | None = None
        self._finishing: set[str] = set()  # recordings stopped, their files not yet finished
        self._order = list(sites)
        self._broadcasts = Coalescer(self._send_state, STATE_BROADCAST_INTERVAL)
        self._started = False
        # Every file this room recorded into, oldest first (kept with the state).
        self.recording_files: list[str] = []
        self._states: StateWriter | None = None
        self._restored: asyncio.Task[None] | None = None

    # -- the state kept in the database ----------------------------------------------

    def keep_state(self, store: RoomStateStore) -> None:
        """Restore the conference's saved state (in the background: connections wait for
        it, `ready`), then save every change. Call once, after `recordings_dir` is set."""
        if self._states is None:
            self._states = store.writer(self.conference_id)
            self._restored = asyncio.get_running_loop().create_task(self._restore(store))

    async def ready(self) -> None:
        """Wait until the saved state is restored (at once when there is none to wait for)."""
        if self._restored is not None and not self._restored.done():
            with contextlib.suppress(Exception):  # logged by `_restore`
                await asyncio.shield(self._restored)

    async def _restore(self, store: RoomStateStore) -> None:
        booked = list(self._order)
        try:
            saved = await store.load(self.conference_id)
        except Exception:
            log.exception("room %s: reading its saved state failed; it starts afresh",
                          self.conference_id)
            saved = None
        if saved is not None and not self.closed:
            try:
                restored = restore_floor(saved, self.chair, booked)
            except ValueError:
                log.exception("room %s: its saved state is unusable; it starts afresh",
                              self.conference_id)
            else:
                self._apply(restored)  # nobody is seated yet: connections wait for this
                self.recording_files = list(saved.recording_files)
                log.info("room %s: state restored (floor %s, queue %s, muted %s, locked %s, "
                         "recording %s)", self.conference_id, restored.holder,
                         list(restored.queue), sorted(restored.muted), restored.locked,
                         saved.recording)
                if saved.recording:
                    try:
                        await self._resume_recording(saved.recording_finished)
                    except Exception:  # its report: the room must open all the same
                        log.exception("room %s: resuming its recording failed",
                                      self.conference_id)
        self._save_state()

    async def _resume_recording(self, finished: bool) -> None:
        """The room recorded when its previous process stopped: that file was cut (its
        stop is reported now) unless that process `finished` it in order, and the
        recording goes on into a new file."""
        cut = self.recording_files[-1] if self.recording_files else None
        if cut is not None and not finished:
            await self._report(self.chair, "record",
                               {"on": False, "recording": cut, "cause": "interrupted"})
        try:
            recorder = self._start_recorder()
        except RecordingError:
            log.exception("room %s: the recording cannot go on", self.conference_id)
            return
        await self._report(self.chair, "record",
                           {"on": True, "recording": recorder.name, "cause": "resumed"})

    def _save_state(self) -> None:
        """Save the state (write-through, in the background); a closed room saves no more."""
        if self._states is not None and not self.closed and (
                self._restored is None or self._restored.done()
                or asyncio.current_task() is self._restored):
            self._states.put(SavedRoom.of(self.state, self.recorder is not None,
                                          self.recording_files))

    @property
    def chair(self) -> str:
        return self.state.chair

    def start(self) -> None:
        """Start the audio engine (once; a closed room stays stopped)."""
        if not self._started and not self.closed:
            self._started = True
            self.audio.start()

    # -- connections --------------------------------------------------------

    async def connect(self, code: str, send: Send, person: Actor | None = None
                      ) -> SiteConnection:
        """Seat a site (replacing its previous connection); raises FloorError if refused.

        `person`: who is at the site's console when a person's login connected it (the
        chair's actions from it are recorded under that name), None for an agent."""
        await self.ready()
        self._apply(floor.join(self.state, code))
        previous = self.connections.pop(code, None)
        if previous is not None:
            await self._drop_connection(previous, notice={
                "type": "replaced", "message": "this site connected again elsewhere"})
        connection = SiteConnection(code, send, PeerSession(code, self.ice, self._peer_failed),
                                    person=person)
        self.connections[code] = connection
        return connection  # the caller greets the site, then calls `broadcast`

    async def disconnect(self, connection: SiteConnection, *, left: bool) -> None:
        """The site's signaling channel closed (`left`: it said goodbye)."""
        if self.connections.get(connection.code) is not connection:
            return  # already replaced by a newer connection
        del self.connections[connection.code]
        # The seat first, before anything awaits: closing the peer connections takes a
        # while, and a cancelled handler must not leave the site present forever.
        with contextlib.suppress(floor.FloorError):
            self._apply(floor.leave(self.state, connection.code))
        await self._drop_connection(connection)
        if connection.media_reported:
            await self.hooks.attendance(self.conference_id, connection.code,
                                        "left" if left else "dropped")
        await self.broadcast()

    async def _drop_connection(self, connection: SiteConnection,
                               notice: dict[str, Any] | None = None) -> None:
        self.audio.remove_site(connection.code)
        if notice is not None:
            with contextlib.suppress(Exception):
                await connection.send(notice)
        await connection.peers.close()
        connection.closed.set()

    async def connect_sip(self, code: str, on_hangup: Hangup | None = None, *,
                          h264: bool = True) -> SipLeg:
        """Seat a SIP room system (replacing its previous connection) and return its leg,
        to be negotiated by the gateway (`create_offer` / `accept_answer`, or
        `answer_offer`); raises FloorError if refused. `on_hangup(reason)` is called when
        the room ends the call (the chair removed the site, the room closed)."""
        from bridge.sip.sip_leg import SipLeg

        self._apply(floor.join(self.state, code))
        previous = self.connections.pop(code, None)
        if previous is not None:
            await self._drop_connection(previous, notice={
                "type": "replaced", "message": "this site connected again elsewhere"})
        leg = SipLeg(self, code, on_hangup, h264=h264)
        connection = SiteConnection(code, leg.notice, leg.peers)
        leg.connection = connection
        self.connections[code] = connection
        await self.broadcast()
        return leg

    def sip_media_started(self, connection: SiteConnection) -> None:
        """A SIP leg's answer is in: route its video and report it joined once connected."""
        self._reroute()
        self._watch_connected(connection)

    async def disconnect_sip(self, leg: SipLeg, *, left: bool) -> None:
        """A SIP call ended (`left`: the room system hung up; else the call was lost)."""
        if leg.connection is not None:
            await self.disconnect(leg.connection, left=left)

    def _peer_failed(self, peers: PeerSession) -> None:
        connection = self.connections.get(peers.code)
        if connection is not None and connection.peers is peers:
            # The network is gone: close the channel; the site reconnects and keeps its seat.
            asyncio.get_running_loop().create_task(self.disconnect(connection, left=False))
        control = self.controls.get(peers.code)
        if control is not None and control.peers is peers:
            asyncio.get_running_loop().create_task(self.disconnect_control(control))

    async def connect_control(self, moderator: Actor, send: Send) -> ControlConnection:
        """A moderator's console connected. Changes nothing in the floor state; the
        caller greets it, then calls `broadcast` (the state names who moderates)."""
        await self.ready()
        label = f"control:{next(self._control_numbers)}"
        connection = ControlConnection(label, moderator, send,
                                       PeerSession(label, self.ice, self._peer_failed))
        self.controls[label] = connection
        return connection

    async def disconnect_control(self, connection: ControlConnection) -> None:
        """The moderator's console closed its channel (or its video failed)."""
        if self.controls.get(connection.label) is not connection:
            return
        del self.controls[connection.label]
        await connection.peers.close()
        connection.closed.set()
        if not self.closed:
            await self.broadcast()  # one moderator fewer

    # -- media negotiation ------------------------------------------------------

    def slot_names(self, code: str) -> list[str]:
        """The video streams a site receives, in media-line order."""
        if code == self.chair:
            return ["floor"] + [f"grid:{c}" for c in self._order if c != code]
        return ["chair", "floor"]

    def control_slot_names(self) -> list[str]:
        """The video streams a moderator's console may receive: the chair's view,
        plus the chair's own camera (the moderator is not at the chair's site)."""
        return ["floor", f"grid:{self.chair}"] + [
            f"grid:{c}" for c in self._order if c != self.chair]

    async def offer(self, connection: SiteConnection | ControlConnection, kind: object,
                    sdp: object) -> dict[str, Any]:
        """Answer a site's audio or video offer, or a console's receive-only video offer."""
        if isinstance(connection, ControlConnection):
            if kind != "video":
                raise OfferError('a control connection sends nothing and receives video '
                                 'only: pc must be "video"')
            answer, slots = await connection.peers.answer_video(
                sdp, None, self.control_slot_names())
            self._route(connection.label, slots)
            return {"type": "answer", "pc": "video", "sdp": answer,
                    "slots": [s.name for s in slots]}
        code = connection.code
        if kind == "audio":
            answer = await connection.peers.answer_audio(
                sdp, lambda packet: self.audio.on_packet(code, packet))
            assert connection.peers.audio_out is not None
            self.audio.add_site(code, connection.peers.audio_out)
            self._watch_connected(connection)
            return {"type": "answer", "pc": "audio", "sdp": answer}
        if kind == "video":
            source = self.sources.setdefault(code, VideoSource(code))
            answer, slots = await connection.peers.answer_video(
                sdp, source, self.slot_names(code))
            self._reroute()  # a new source may show in other sites' slots too
            self._route_recorder()  # the source it should record may have just arrived
            return {"type": "answer", "pc": "video", "sdp": answer,
                    "slots": [s.name for s in slots]}
        raise OfferError('pc must be "audio" or "video"')

    def _watch_connected(self, connection: SiteConnection) -> None:
        pc = connection.peers.audio_pc
        assert pc is not None

        @pc.on("connectionstatechange")
        async def _connected() -> None:
            if pc.connectionState == "connected" and not connection.media_reported:
                connection.media_reported = True
                await self.hooks.attendance(self.conference_id, connection.code, "joined")

    # -- control ----------------------------------------------------------------

    async def control(self, actor: floor.FloorActor, message: messages.ControlMessage
                      ) -> None:
        """A floor or moderation message from a site or a moderator; raises FloorError
        or RecordingError if refused.

        What is published and audited is the message's defined fields only
        (`messages.stored_fields`), never what else a client may have sent."""
        if isinstance(message, messages.Record):
            await self.record(actor, message.on)
            return
        state = self.state
        match message:
            case messages.FloorRequest():
                new = floor.request_floor(state, floor.site_role(actor))
            case messages.FloorCancel():
                new = floor.cancel_request(state, floor.site_role(actor))
            case messages.FloorRelease():
                new = floor.release_floor(state, floor.site_role(actor))
            case messages.FloorRevoke():
                new = floor.revoke(state, actor)
            case messages.Mute():
                new = floor.mute(state, actor, message.endpoint, message.muted)
            case messages.MuteAll():
                new = floor.mute_all(state, actor, message.muted)
            case messages.Lock():
                new = floor.lock(state, actor, message.locked)
            case messages.Targeted():
                action = {"floor.grant": floor.grant, "floor.refuse": floor.refuse,
                          "admit": floor.admit, "remove": floor.remove}[message.type]
                new = action(state, actor, message.endpoint)
        if new is state:
            return
        self._apply(new)
        if (isinstance(message, messages.Targeted) and message.type == "remove"
                and message.endpoint in self.connections):
            target = message.endpoint
            removed = self.connections.pop(target)
            await self._drop_connection(removed, notice={
                "type": "removed", "message": "the chair removed this site from the room"})
            if removed.media_reported:  # gone on the chair's decision: not redialled
                await self.hooks.attendance(self.conference_id, target, "left")
        await self.broadcast()
        await self._report(actor, message.type, messages.stored_fields(message))

    async def _report(self, actor: floor.FloorActor, action: str, data: dict[str, Any]
                      ) -> None:
        """Publish and audit an action; a moderator's is the chair's, naming the person.

        So is the chair's own when a person runs the chair's console as the chair site:
        the record says who gave the floor, not only from which endpoint."""
        if isinstance(actor, Actor):
            await self.hooks.floor_action(self.conference_id, self.chair, action, data,
                                          moderator=actor)
            return
        connection = self.connections.get(actor)
        person = connection.person if connection is not None and actor == self.chair else None
        await self.hooks.floor_action(self.conference_id, actor, action, data, moderator=person)

    # -- recording --------------------------------------------------------------------

    async def record(self, actor: floor.FloorActor, on: bool) -> None:
        """The chair starts or stops recording; raises FloorError (not the chair) or
        RecordingError (the file cannot be made). Asking for the current state is a no-op."""
        floor.chair_role(self.state, actor)
        if on == (self.recorder is not None):
            return
        if on:
            recorder = self._start_recorder()
            await self.broadcast()
            await self._report(actor, "record", {"on": True, "recording": recorder.name})
        else:
            await self._stop_recording(actor)

    def _start_recorder(self) -> Recorder:
        """A new recording file, fed from now on; raises RecordingError."""
        if self.recordings_dir is None or self.closed:
            raise RecordingError("this room cannot record")
        recorder = Recorder.create(self.recordings_dir, self.conference_id,
                                   frame_samples=self.audio.frame_samples,
                                   on_failure=self._recording_failed)
        recorder.start()
        self.recorder = recorder
        self.recording_files.append(recorder.name)
        self.audio.on_common = recorder.audio
        self._route_recorder()
        self._save_state()
        return recorder

    async def _stop_recording(self, actor: floor.FloorActor, cause: str | None = None
                              ) -> None:
        """Finish the current recording and tell everyone (`cause`: not the chair's doing)."""
        recorder = self.recorder
        if recorder is None:
            return
        self.recorder = None
        self.audio.on_common = None
        self._save_state()
        self._finishing.add(recorder.name)
        try:
            await recorder.stop()
        finally:
            self._finishing.discard(recorder.name)
        data: dict[str, Any] = {"on": False, "recording": recorder.name}
        if cause is not None:
            data["cause"] = cause
        if not self.closed:
            await self.broadcast()
        await self._report(actor, "record", data)

    def recordings_in_progress(self) -> set[str]:
        """Names of the files this room is writing: recording, or being finished."""
        names = set(self._finishing)
        if self.recorder is not None:
            names.add(self.recorder.name)
        return names

    def _recording_failed(self) -> None:
        """The recorder's writer failed (disk full, ...): the room stops recording."""
        if self.recorder is not None and self.recorder.failed:
            asyncio.get_running_loop().create_task(self._stop_recording(self.chair, "failed"))

    def _route_recorder(self) -> None:
        """The recording shows the main video, or the chair's when there is none."""
        if self.recorder is not None:
            self.recorder.show(self.sources.get(self._main() or self.chair))

    # -- state and media routing ---------------------------------------------------

    def _apply(self, new: floor.FloorState) -> None:
        self.state = new
        self.audio.audible = floor.audible(new)
        self._reroute()
        self._save_state()

    def _speaker_changed(self, _speaker: str | None) -> None:
        self._reroute()
        self._broadcasts.request()

    def _main(self) -> str | None:
        return floor.main_video(self.state, self.audio.speaker)

    def _route(self, code: str, slots: Sequence[VideoSlot]) -> None:
        main = self._main()
        for slot in slots:
            if slot.name == "chair":
                shown: str | None = self.chair
            elif slot.name == "floor":
                shown = main if main != code else None  # a site sees itself locally
            elif slot.name == "sip":
                # A room system has one picture: the main video, else the chair (never
                # itself: it shows its own camera locally, as hardware does).
                shown = main if main is not None and main != code else (
                    self.chair if self.chair != code else None)
            else:
                shown = slot.name.removeprefix("grid:")
            slot.show(self.sources.get(shown) if shown else None)

    def _reroute(self) -> None:
        for code, connection in self.connections.items():
            self._route(code, connection.peers.slots)
        for label, control in self.controls.items():
            self._route(label, control.peers.slots)
        self._route_recorder()

    def snapshot(self) -> dict[str, Any]:
        """The room state every client is sent after each change."""
        body: dict[str, Any] = dict(floor.snapshot(self.state))
        body.update(type="state", conference=self.conference_id, speaker=self.audio.speaker,
                    main=self._main(), recording=self.recorder is not None,
                    # Who moderates from a console besides the chair (user names).
                    moderators=sorted({c.moderator.name for c in self.controls.values()}))
        return body

    async def broadcast(self) -> None:
        """Send the room state to every connected site and moderator, coalesced: at once
        after a quiet interval, else folded into one send of the latest state at the end
        of the current interval (`STATE_BROADCAST_INTERVAL`). Returns without waiting."""
        self._broadcasts.request()

    async def _send_state(self) -> None:
        if self.closed:
            return
        message = self.snapshot()
        receivers: list[SiteConnection | ControlConnection] = [
            *self.connections.values(), *self.controls.values()]
        for connection in receivers:
            with contextlib.suppress(Exception):
                await connection.send(message)

    async def close(self, reason: str) -> None:
        """Disconnect everyone (the conference ended).

        The saved state is left as it was: when this process stops while the
        conference goes on ("shutdown"), the room opened again carries on from it
        (recording included); when the conference is over, nothing opens it again."""
        if self._restored is not None and not self._restored.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._restored)
        if self._states is not None:
            await self._states.flush()
        self.closed = True
        await self._broadcasts.close()
        await self.audio.stop()
        if self.recorder is not None:
            try:
                # The file is finished (trailer written) whatever happens to the report.
                await self._stop_recording(self.chair, reason)
            except Exception:
                log.exception("room %s: reporting the end of its recording failed",
                              self.conference_id)
            if reason == "shutdown" and self._states is not None:
                # The conference goes on without this process: the room opened again
                # resumes the recording, and does not report this finished file as cut.
                self._states.put(SavedRoom.of(self.state, True, self.recording_files,
                                              finished=True))
                await self._states.flush()
        for connection in list(self.connections.values()):
            await self._drop_connection(connection, notice={"type": "closed", "reason": reason})
            if connection.media_reported and reason == "shutdown":
                # This bridge process stops while the conference goes on: the
                # sites are dropped, and the scheduler calls them back.
                with contextlib.suppress(Exception):
                    await self.hooks.attendance(self.conference_id, connection.code, "dropped")
        self.connections.clear()
        for control in list(self.controls.values()):
            with contextlib.suppress(Exception):
                await control.send({"type": "closed", "reason": reason})
            await control.peers.close()
            control.closed.set()
        self.controls.clear()
