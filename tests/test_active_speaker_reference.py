"""The active-speaker detector decides what its original version did, sample for sample.

`bridge/active_speaker.py` was reworked for speed (issue 16: it runs per audio
packet of every site, 1,550 times a second at 31 sites). Its original, below as
`OriginalDetector` (the code of `main` before the rework, docstrings left out),
is the reference: both are fed the same long random conference (talk spurts,
pauses, coughs, muted sites, sites that stop sending, leave and come back,
jittered and late timestamps, ticks) and must agree on the current speaker
after every sample, on the loudest sites and on every level, exactly."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.active_speaker import FRAME_MS, ActiveSpeakerDetector

# --- the original (main at 95928a1), the reference --------------------------------------

SILENCE_DBOV = -127.0
_SILENCE_POWER = math.pow(10.0, SILENCE_DBOV / 10.0)


def _power(dbov: float) -> float:
    return math.pow(10.0, dbov / 10.0)


def _dbov(power: float) -> float:
    return max(SILENCE_DBOV, 10.0 * math.log10(power)) if power > 0 else SILENCE_DBOV


@dataclass
class _Track:
    power: float
    at_ms: int
    eligible_since: int | None = None


class OriginalDetector:
    def __init__(self, *, speech_threshold_dbov: float = -50.0, smoothing: float = 0.4,
                 min_speech_ms: int = 800, switch_margin_db: float = 6.0,
                 silence_release_ms: int = 1500) -> None:
        self.speech_threshold_dbov = speech_threshold_dbov
        self.smoothing = smoothing
        self.min_speech_ms = min_speech_ms
        self.switch_margin_db = switch_margin_db
        self.silence_release_ms = silence_release_ms
        self._threshold_power = _power(speech_threshold_dbov)
        self._tracks: dict[str, _Track] = {}
        self._current: str | None = None
        self._silent_since: int | None = None
        self._now_ms: int | None = None

    def update(self, code: str, level: int, now_ms: int) -> None:
        if not 0 <= level <= 127:
            raise ValueError(f"an RFC 6464 level is 0..127 (-dBov), not {level}")
        now = self._advance(now_ms)
        track = self._tracks.get(code)
        if track is None:
            track = self._tracks[code] = _Track(power=_SILENCE_POWER, at_ms=now)
        before = self._power_at(track, now)
        if code != self._current and not self._eligible(before, now):
            track.eligible_since = None
        track.power = before + self.smoothing * (_power(-float(level)) - before)
        track.at_ms = now
        if code == self._current:
            if track.power > self._threshold_power:
                self._silent_since = None
            elif self._silent_since is None:
                self._silent_since = now
            self._release_if_silent(now)
            return
        if not self._eligible(track.power, now):
            track.eligible_since = None
            return
        if track.eligible_since is None:
            track.eligible_since = now
        if now - track.eligible_since >= self.min_speech_ms:
            self._switch_to(code)

    def tick(self, now_ms: int) -> None:
        self._advance(now_ms)

    def forget(self, code: str) -> None:
        self._tracks.pop(code, None)
        if code == self._current:
            self._current = None
            self._silent_since = None

    def current(self) -> str | None:
        return self._current

    def loudest(self, n: int, exclude: Iterable[str] = ()) -> list[str]:
        if n < 0:
            raise ValueError("n must not be negative")
        now = self._now_ms
        if now is None or n == 0:
            return []
        excluded = frozenset(exclude)
        speaking = [
            (power, code)
            for code, track in self._tracks.items()
            if code not in excluded
            and (power := self._power_at(track, now)) > self._threshold_power
        ]
        speaking.sort(key=lambda item: (-item[0], item[1]))
        return [code for _, code in speaking[:n]]

    def levels(self) -> dict[str, float]:
        now = self._now_ms
        if now is None:
            return {}
        return {code: _dbov(self._power_at(track, now)) for code, track in self._tracks.items()}

    def _power_at(self, track: _Track, now: int) -> float:
        missed = (now - track.at_ms) // FRAME_MS - 1
        return track.power if missed <= 0 else self._decayed(track.power, missed)

    def _decayed(self, power: float, missed: int) -> float:
        return _SILENCE_POWER + (power - _SILENCE_POWER) * math.pow(1.0 - self.smoothing, missed)

    def _silent_from(self, track: _Track) -> int:
        if track.power <= self._threshold_power:
            return track.at_ms
        missed = 1
        if self.smoothing < 1.0:
            ratio = (self._threshold_power - _SILENCE_POWER) / (track.power - _SILENCE_POWER)
            missed = max(1, math.ceil(math.log(ratio) / math.log(1.0 - self.smoothing)))
            while missed > 1 and self._decayed(track.power, missed - 1) <= self._threshold_power:
                missed -= 1
            while self._decayed(track.power, missed) > self._threshold_power:
                missed += 1
        return track.at_ms + (missed + 1) * FRAME_MS

    def _advance(self, now_ms: int) -> int:
        now = now_ms if self._now_ms is None else max(now_ms, self._now_ms)
        self._now_ms = now
        if self._current is not None and self._silent_since is None:
            silent_from = self._silent_from(self._tracks[self._current])
            if silent_from <= now:
                self._silent_since = silent_from
        self._release_if_silent(now)
        return now

    def _release_if_silent(self, now: int) -> None:
        if self._silent_since is not None and now - self._silent_since >= self.silence_release_ms:
            self._current = None
            self._silent_since = None

    def _eligible(self, power: float, now: int) -> bool:
        if power <= self._threshold_power:
            return False
        if self._current is None:
            return True
        current = self._power_at(self._tracks[self._current], now)
        return _dbov(power) >= _dbov(current) + self.switch_margin_db

    def _switch_to(self, code: str) -> None:
        self._current = code
        self._silent_since = None
        for track in self._tracks.values():
            track.eligible_since = None


# --- a random conference -----------------------------------------------------------------

SITES = [f"SITE-{n:02d}" for n in range(9)]


class Site:
    """One site's microphone: talk spurts and pauses, sometimes muted, sometimes gone."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.talking_until = 0
        self.level = 127
        self.muted = False
        self.dtx = rng.random() < 0.3  # sends nothing while silent (discontinuous tx)
        self.present = True

    def sample(self, t: int) -> int | None:
        """The level of its packet for the frame at `t`, or None for no packet."""
        rng = self.rng
        if t >= self.talking_until and rng.random() < 0.004:
            # Starts talking: a cough, a remark or a long turn.
            self.talking_until = t + rng.choice([100, 200, 400, 780, 820, 1500, 4000, 9000])
            self.level = rng.choice([0, 10, 20, 25, 30, 33, 36, 40, 45, 50, 55])
        if self.muted:
            return 127  # the engine feeds a muted site as silence
        if t < self.talking_until:
            if rng.random() < 0.1:  # gaps between words
                return 127 if not self.dtx else None
            return max(0, min(127, self.level + rng.randint(-3, 3)))
        if self.dtx:
            return None
        return rng.choice([127, 127, 127, 90, 70])  # room noise


def conference(seed: int, seconds: int) -> Iterable[tuple[Any, ...]]:
    """Operations on a detector: ("update", code, level, t), ("tick", t),
    ("forget", code), ("loudest", n, exclude), in the bridge's order."""
    rng = random.Random(seed)
    sites = {code: Site(rng) for code in SITES}
    for t in range(0, seconds * 1000, FRAME_MS):
        if rng.random() < 0.001:  # a stall: one frame stamped up to 3 s late, the next behind it
            t += rng.randint(100, 3000)
        for code, site in sites.items():
            if rng.random() < 0.0005:
                site.muted = not site.muted
            if rng.random() < 0.0003:
                site.present = not site.present
                if not site.present:
                    yield ("forget", code)
            if not site.present:
                continue
            level = site.sample(t)
            if level is None or rng.random() < 0.01:  # lost packets too
                continue
            # Stamped by the site's own task: jitter, sometimes behind what was seen.
            yield ("update", code, level, t + rng.choice([0, 0, 0, 1, 5, 19, 25, -7, -30]))
        yield ("tick", t + rng.randint(0, 19))
        exclude = rng.sample(SITES, rng.choice([0, 0, 0, 1, 2]))
        yield ("loudest", rng.choice([0, 1, 3, 3, 3, 9]), exclude)


PARAMETERS = [
    {},  # the bridge's
    {"smoothing": 1.0, "min_speech_ms": 0, "switch_margin_db": 0.0, "silence_release_ms": 0},
    {"smoothing": 0.9, "min_speech_ms": 200, "switch_margin_db": 3.0, "silence_release_ms": 400},
    {"speech_threshold_dbov": -35.0, "smoothing": 0.1, "min_speech_ms": 1200,
     "switch_margin_db": 10.0, "silence_release_ms": 3000},
]


@pytest.mark.parametrize("kwargs", PARAMETERS)
def test_the_same_decisions_as_the_original(kwargs: dict[str, float]) -> None:
    ours = ActiveSpeakerDetector(**kwargs)  # type: ignore[arg-type]
    reference = OriginalDetector(**kwargs)  # type: ignore[arg-type]
    takeovers = releases = forgets = 0
    previous: str | None = None
    for step, op in enumerate(conference(seed=16, seconds=600)):
        if op[0] == "update":
            _, code, level, t = op
            ours.update(code, level, t)
            reference.update(code, level, t)
        elif op[0] == "tick":
            ours.tick(op[1])
            reference.tick(op[1])
        elif op[0] == "forget":
            forgets += 1
            ours.forget(op[1])
            reference.forget(op[1])
        else:
            _, n, exclude = op
            assert ours.loudest(n, exclude) == reference.loudest(n, exclude), step
            assert ours.levels() == reference.levels(), step
        current = reference.current()
        assert ours.current() == current, (step, op)
        if current != previous:
            takeovers += previous is not None and current is not None
            releases += current is None
            previous = current
    # The conference exercised the hysteresis: a speaker taken over by a louder one,
    # speakers released after their silence, sites leaving (current or not).
    assert takeovers > 10 and releases > 10 and forgets > 5, (takeovers, releases, forgets)


def test_the_reference_is_the_original() -> None:
    # A sanity check of the copy, as tests/test_active_speaker.py has it: speech from
    # the first packet takes the video exactly 800 ms later.
    reference = OriginalDetector()
    for t in range(0, 1500, FRAME_MS):
        reference.update("A", 30, t)
        reference.update("B", 127, t)
        assert reference.current() == ("A" if t >= 800 else None)
