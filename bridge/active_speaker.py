"""Who is speaking, from RFC 6464 audio levels, with hysteresis. No I/O, no clock.

Each site's audio packets carry its level in -dBov: 0 is the loudest, 127 is
silence. The bridge feeds one sample per site per 20 ms packet; the detector
smooths them and decides the active speaker (the main video in open
discussion) and the loudest few (the streams the mixer decodes).

The main video must not flap on a cough or a chair scraping, nor drop out
between two sentences, so the decision has hysteresis on both sides:

- to take over, a site must be speaking and louder than the current speaker
  by `switch_margin_db` (or merely speaking, when there is no current one),
  without interruption, for `min_speech_ms`;
- the current speaker stays until it has been silent for `silence_release_ms`
  (or someone takes over), so pauses between sentences do not release it.

Smoothing is exponential, per 20 ms sample, on *power* (not on dB): a loud
frame weighs what it is worth and a silent one adds nothing, so the level
rises within a frame or two and falls by a steady number of dB per frame
(about 2.2 dB with the default 0.4). Speech then reads as one level through
the short gaps between words, and a burst fades out quickly enough that a
200 ms cough, however loud, is counted as speech for well under
`min_speech_ms` (it fades below -50 dBov from full scale within 0.5 s).

A site that sends nothing (discontinuous transmission, a lost stream) is
treated as silent for every 20 ms frame it missed, beyond one frame of jitter.
All times are the caller's `now_ms` (any monotonic millisecond clock); a
sample stamped earlier than one already seen counts as arriving at the latest
time seen, since the samples of different sites are stamped by different
tasks."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

FRAME_MS = 20  # one RTP audio packet: the smoothing step
SILENCE_DBOV = -127.0  # the quietest level RFC 6464 can express
_SILENCE_POWER = math.pow(10.0, SILENCE_DBOV / 10.0)


def _power(dbov: float) -> float:
    return math.pow(10.0, dbov / 10.0)


# Each RFC 6464 level's linear power, worked out once (the same floats as `_power`).
_LEVEL_POWER = tuple(_power(-float(level)) for level in range(128))


def _dbov(power: float) -> float:
    return max(SILENCE_DBOV, 10.0 * math.log10(power)) if power > 0 else SILENCE_DBOV


@dataclass
class _Track:
    """One site's smoothed level and its bid for the floor video (mutable: updated in place)."""

    power: float  # smoothed linear power at `at_ms`
    at_ms: int  # when the last sample arrived
    # Since when the site has been continuously louder than the current speaker
    # by the margin (speaking, when there is no current speaker); None if not.
    eligible_since: int | None = None


# Stands for "no current speaker's track" (so the attribute needs no None check).
_NO_TRACK = _Track(power=_SILENCE_POWER, at_ms=0)


class ActiveSpeakerDetector:
    """Active-speaker detection for one room.

    Mutable, unlike the bridge's other state machines: it is fed 50 samples
    per second per site (1,550 a second for a full province), and a new
    object per sample would only feed the garbage collector. It is owned by
    one room's task and never shared, so the mutation stays local."""

    def __init__(
        self,
        *,
        speech_threshold_dbov: float = -50.0,
        smoothing: float = 0.4,
        min_speech_ms: int = 800,
        switch_margin_db: float = 6.0,
        silence_release_ms: int = 1500,
    ) -> None:
        """Parameters (all times in milliseconds):

        - `speech_threshold_dbov`: a smoothed level louder than this is speech.
        - `smoothing`: weight of each new 20 ms sample in the smoothed power,
          in (0, 1]; 1 means no smoothing.
        - `min_speech_ms`: how long a site must keep its lead before it
          becomes the speaker.
        - `switch_margin_db`: the lead, in dB, over the current speaker.
        - `silence_release_ms`: how long the current speaker may be silent
          before it is released (and `current()` is None)."""
        if not SILENCE_DBOV < speech_threshold_dbov <= 0:
            raise ValueError("speech_threshold_dbov must be in (-127, 0] dBov")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        if min_speech_ms < 0 or silence_release_ms < 0:
            raise ValueError("min_speech_ms and silence_release_ms must not be negative")
        if switch_margin_db < 0:
            raise ValueError("switch_margin_db must not be negative")
        self.speech_threshold_dbov = speech_threshold_dbov
        self.smoothing = smoothing
        self.min_speech_ms = min_speech_ms
        self.switch_margin_db = switch_margin_db
        self.silence_release_ms = silence_release_ms
        self._threshold_power = _power(speech_threshold_dbov)
        self._tracks: dict[str, _Track] = {}
        self._current: str | None = None
        # The current speaker's track (`_NO_TRACK` when there is none).
        self._current_track = _NO_TRACK
        # When the current speaker fell silent; None while it speaks.
        self._silent_since: int | None = None
        # When the current speaker's track, as last updated, falls silent
        # (`_silent_from`); None until worked out again after it changed.
        self._silent_from_ms: int | None = None
        self._now_ms: int | None = None

    # --- feeding ---------------------------------------------------------

    def update(self, code: str, level: int, now_ms: int) -> None:
        """One audio-level sample of `code` (RFC 6464: 0 loudest .. 127 silence) at `now_ms`."""
        # Called per packet of every site (1,550 a second at 31 sites): the work is
        # inline and a silent site's sample ends after a few comparisons (measured at
        # 31 sites: 1.74 µs a call before, 0.43 µs now). The arithmetic is the
        # original's, step for step, so the decisions are the same
        # (tests/test_active_speaker_reference.py compares it with the original).
        if not 0 <= level <= 127:
            raise ValueError(f"an RFC 6464 level is 0..127 (-dBov), not {level}")
        # The clock and the current speaker's release, as `_advance` (inline).
        last = self._now_ms
        now = now_ms if last is None or now_ms > last else last
        self._now_ms = now
        current = self._current
        if current is not None:
            silent_since = self._silent_since
            if silent_since is None:
                silent_from = self._silent_from_ms
                if silent_from is None:
                    silent_from = self._silent_from_ms = self._silent_from(self._current_track)
                if silent_from <= now:
                    silent_since = self._silent_since = silent_from
            if silent_since is not None and now - silent_since >= self.silence_release_ms:
                self._release()
                current = None
        track = self._tracks.get(code)
        if track is None:
            track = self._tracks[code] = _Track(power=_SILENCE_POWER, at_ms=now)
        before = track.power
        missed = (now - track.at_ms) // FRAME_MS - 1
        if missed > 0:  # as `_power_at`
            before = self._decayed(before, missed)
        power = track.power = before + self.smoothing * (_LEVEL_POWER[level] - before)
        track.at_ms = now
        threshold = self._threshold_power
        if code == current:
            self._silent_from_ms = None  # its track changed
            if power > threshold:
                self._silent_since = None
            elif self._silent_since is None:
                self._silent_since = now
            self._release_if_silent(now)
            return
        # Its bid for the floor video: it is speaking, and (when there is a current
        # speaker) louder than the current speaker by the margin, now and before this
        # sample. The current speaker's level is worked out only for a speaking site.
        if power <= threshold:
            track.eligible_since = None
            return
        if current is None:
            was_eligible = before > threshold
        else:
            bar = _dbov(self._power_at(self._current_track, now)) + self.switch_margin_db
            if not _dbov(power) >= bar:
                track.eligible_since = None
                return
            was_eligible = before > threshold and _dbov(before) >= bar
        since = track.eligible_since
        if since is None or not was_eligible:
            # No lead yet, or it fell back during a gap in its samples: a new lead.
            since = track.eligible_since = now
        if now - since >= self.min_speech_ms:
            self._switch_to(code)

    def tick(self, now_ms: int) -> None:
        """Let time pass without a sample, so a current speaker whose stream went
        quiet (or stopped) is released on time even when no site is sending."""
        self._advance(now_ms)

    def forget(self, code: str) -> None:
        """Drop `code` (it left, or is muted and no longer mixed); releases it if current."""
        self._tracks.pop(code, None)
        if code == self._current:
            self._release()

    # --- reading ---------------------------------------------------------

    def current(self) -> str | None:
        """The active speaker as of the latest sample or tick; None when nobody is speaking."""
        return self._current

    def loudest(self, n: int, exclude: Iterable[str] = (), within_db: float | None = None
                ) -> list[str]:
        """The `n` loudest sites now speaking (smoothed level above the threshold), loudest
        first, leaving out `exclude`; ties in code order, so the mixer's choice is stable.
        With `within_db`, only those at most that many dB below the loudest."""
        if n < 0:
            raise ValueError("n must not be negative")
        now = self._now_ms
        if now is None or n == 0:
            return []
        excluded = frozenset(exclude)
        threshold = self._threshold_power
        speaking: list[tuple[float, str]] = []
        for code, track in self._tracks.items():
            power = track.power
            missed = (now - track.at_ms) // FRAME_MS - 1
            # As `_power_at`, inline: this runs for every site every tick (31 sites:
            # 5.6 µs a call with the method calls, 3.5 µs so).
            if missed > 0:
                power = self._decayed(power, missed)
            if power > threshold and code not in excluded:
                speaking.append((-power, code))
        speaking.sort()  # loudest first, ties in code order
        chosen = speaking[:n]
        if within_db is not None and chosen:
            quietest = -chosen[0][0] * 10.0 ** (-within_db / 10.0)
            chosen = [entry for entry in chosen if -entry[0] >= quietest]
        return [code for _, code in chosen]

    def levels(self) -> dict[str, float]:
        """Each known site's smoothed level in dBov (-127 .. 0) as of the latest time seen."""
        now = self._now_ms
        if now is None:
            return {}
        return {code: _dbov(self._power_at(track, now)) for code, track in self._tracks.items()}

    # --- internals ---------------------------------------------------------

    def _power_at(self, track: _Track, now: int) -> float:
        """`track`'s smoothed power at `now`, counting each missed frame as silence.

        A sample up to one frame late is jitter, not a missed frame, so a
        regular stream never decays between its samples."""
        missed = (now - track.at_ms) // FRAME_MS - 1
        return track.power if missed <= 0 else self._decayed(track.power, missed)

    def _decayed(self, power: float, missed: int) -> float:
        """`power` after `missed` silent frames."""
        return _SILENCE_POWER + (power - _SILENCE_POWER) * math.pow(1.0 - self.smoothing, missed)

    def _silent_from(self, track: _Track) -> int:
        """When `track`, with no more samples, falls to the threshold or below."""
        if track.power <= self._threshold_power:
            return track.at_ms
        missed = 1
        if self.smoothing < 1.0:
            ratio = (self._threshold_power - _SILENCE_POWER) / (track.power - _SILENCE_POWER)
            missed = max(1, math.ceil(math.log(ratio) / math.log(1.0 - self.smoothing)))
            # The logarithms may land a frame off the crossing: settle it on the
            # same arithmetic as `_power_at`, so both always agree.
            while missed > 1 and self._decayed(track.power, missed - 1) <= self._threshold_power:
                missed -= 1
            while self._decayed(track.power, missed) > self._threshold_power:
                missed += 1
        # `_power_at` counts `missed` frames from at_ms + (missed + 1) frames on.
        return track.at_ms + (missed + 1) * FRAME_MS

    def _advance(self, now_ms: int) -> int:
        """Move the clock to `now_ms` (never back) and release a current speaker silent too long."""
        now = now_ms if self._now_ms is None else max(now_ms, self._now_ms)
        self._now_ms = now
        if self._current is not None and self._silent_since is None:
            if self._silent_from_ms is None:
                self._silent_from_ms = self._silent_from(self._current_track)
            if self._silent_from_ms <= now:
                self._silent_since = self._silent_from_ms
        self._release_if_silent(now)
        return now

    def _release_if_silent(self, now: int) -> None:
        """No current speaker any more once it has been silent `silence_release_ms`."""
        if self._silent_since is not None and now - self._silent_since >= self.silence_release_ms:
            self._release()

    def _release(self) -> None:
        """No current speaker (challengers keep their lead: against nobody, speaking is
        enough)."""
        self._current = None
        self._current_track = _NO_TRACK
        self._silent_since = None
        self._silent_from_ms = None

    def _switch_to(self, code: str) -> None:
        self._current = code
        self._current_track = self._tracks[code]
        self._silent_since = None
        self._silent_from_ms = None
        # Leads were measured against the previous speaker; they start over.
        for track in self._tracks.values():
            track.eligible_since = None
