"""The detector's decision logic, free of audio I/O and of any model: voice gate, smoothing, triggers.

Per hop (say every 100 ms) the live pipeline hands over the new samples and, when the voice gate is open,
the model's posteriors for the last second. `EnergyVAD` marks 10-ms frames as voice when they rise a
margin above an adaptive noise floor; `Smoother` averages the posteriors of the last few hops (a closed
gate counts as no evidence); `Trigger` fires the best keyword when its smoothed posterior reaches its
threshold (after a short hold in which a more confident keyword may take over) and no detection happened
within the refractory time. `_silence_` and `_unknown_` never fire.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from kws_hpc.config import from_dict, to_dict
from kws_hpc.errors import KwsError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Posteriors from logits over the last axis (one window [C] or a batch [N, C])."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that turns posteriors into detections; the export stores the values it used.

    The defaults were chosen on validation-speaker streams of the synthetic corpus: 0.3 s smoothing and a
    1-s refractory time were at or within noise of the fewest misses + false alarms; the threshold is
    calibrated per model at export; the voice margin made no measurable difference there. A hold of
    0.2-0.3 s helped a model trained without stream windows and cost models trained with them a few
    hits, so it is off.
    """

    hop_s: float = 0.1  # the 1-s window advances (and the model runs) this often
    threshold: float = 0.6  # smoothed posterior a keyword needs to fire (export calibrates it)
    class_thresholds: dict = field(default_factory=dict)  # per-keyword overrides of `threshold`
    smooth_s: float = 0.3  # posteriors are averaged over the hops of this long
    refractory_s: float = 1.0  # after a detection nothing fires for this long (one word, one trigger)
    hold_s: float = 0.0  # after the first crossing, wait this long and fire the most confident keyword
    vad: bool = True  # run the model only when the window holds voice
    vad_margin_db: float = 10.0  # a frame is voice this far above the noise floor ...
    vad_min_db: float = -65.0  # ... and above this absolute level (dBFS)
    vad_rise_db_s: float = 3.0  # the noise floor climbs at most this fast; it drops at once
    vad_min_voice_s: float = 0.05  # voice the window must hold before the model runs
    streaming: bool = False  # step the RNN hop by hop, carrying its state (reset on silence)
    preroll_s: float = 0.3  # streaming: reset after this much silence; restart this far before the voice

    def threshold_for(self, label: str) -> float:
        return float(self.class_thresholds.get(label, self.threshold))

    def check(self) -> "DetectorConfig":
        """Refuse values that cannot work, with the option to fix."""
        rules = [(0 < self.hop_s <= 1.0, f"--hop {self.hop_s}: use 0 < hop <= 1 s"),
                 (0 <= self.threshold <= 1, f"--threshold {self.threshold}: use a probability in [0, 1]"),
                 (self.smooth_s >= 0, f"--smooth {self.smooth_s}: use >= 0 s"),
                 (self.refractory_s >= 0, f"--refractory {self.refractory_s}: use >= 0 s"),
                 (self.hold_s >= 0, f"--hold {self.hold_s}: use >= 0 s"),
                 (self.preroll_s >= 0, f"preroll {self.preroll_s}: use >= 0 s"),
                 (not self.streaming or self.vad, "--streaming resets the RNN on silence and needs the voice "
                                                  "gate; drop --no-vad")]
        bad = [msg for ok, msg in rules if not ok]
        if bad:
            raise KwsError(bad[0])
        return self

    def as_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        """From a stored dict; keys this version does not know are ignored."""
        return from_dict(cls, d)


@dataclass(frozen=True)
class Detection:
    time: float  # seconds into the stream when it fired (end of the window that crossed)
    label: str
    confidence: float  # the smoothed posterior


class EnergyVAD:
    """10-ms frame energy against a noise floor that drops at once and climbs slowly.

    The floor follows the quiet frames, so a steady background (fan, hum) stops counting as voice after
    a moment; `floor_db` and the voice flags can be logged and scored against a stream's truth.
    """

    def __init__(self, cfg: DetectorConfig, frame: int = 160, sample_rate: int = 16000):
        self.margin, self.min_db, self.frame = cfg.vad_margin_db, cfg.vad_min_db, frame
        self.rise = cfg.vad_rise_db_s * frame / sample_rate  # dB per frame
        self.floor_db: Optional[float] = None
        self._rest = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Voice flags (bool) for every whole frame the new samples complete."""
        x = np.concatenate([self._rest, np.asarray(samples, np.float32)])
        n = len(x) // self.frame
        self._rest = x[n * self.frame:]
        if n == 0:
            return np.zeros(0, bool)
        frames = x[: n * self.frame].astype(np.float64).reshape(n, self.frame)
        energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
        flags = np.zeros(n, bool)
        for i, e in enumerate(energy):
            floor = e if self.floor_db is None else min(e, self.floor_db + self.rise)
            self.floor_db = max(floor, -120.0)
            flags[i] = e > self.floor_db + self.margin and e > self.min_db
        return flags


class Gate:
    """Open while the last window of frames holds at least `min_voice` voice frames."""

    def __init__(self, window_frames: int, min_voice: int):
        self.flags: deque = deque(maxlen=window_frames)
        self.min_voice = max(1, min_voice)
        self.closed_frames = window_frames  # consecutive frames without voice (none heard yet)

    def push(self, flags: np.ndarray) -> bool:
        for f in flags:
            self.flags.append(bool(f))
            self.closed_frames = 0 if f else self.closed_frames + 1
        return sum(self.flags) >= self.min_voice


class Smoother:
    """Mean of the posteriors of the last `n` hops; a hop without a model run adds zeros."""

    def __init__(self, n: int, classes: int):
        self.history: deque = deque(maxlen=max(1, n))
        self.classes = classes

    def push(self, probs: Optional[np.ndarray]) -> np.ndarray:
        none = np.zeros(self.classes, np.float32)
        self.history.append(none if probs is None else np.asarray(probs, np.float32))
        return np.mean(self.history, axis=0)

    def reset(self) -> None:
        self.history.clear()


class Trigger:
    """Fire the best keyword at or above its threshold, at most once per refractory time.

    With a hold time, the first crossing only opens a decision: for `hold_s` more the trigger keeps the
    keyword with the highest smoothed posterior that reached its threshold, then fires that one. A word
    that enters the window is often heard as another for a hop or two; the whole word wins.
    """

    def __init__(self, labels: Sequence[str], cfg: DetectorConfig):
        self.labels = list(labels)
        self.keywords = np.array([i for i, lab in enumerate(self.labels) if not lab.startswith("_")])
        if len(self.keywords) == 0:
            raise KwsError(f"the model has no keyword class (labels {self.labels})")
        unknown = sorted(set(cfg.class_thresholds) - set(self.labels))
        if unknown:
            raise KwsError(f"thresholds given for {', '.join(unknown)}, which the model does not know "
                           f"(its labels: {', '.join(self.labels)})")
        self.thresholds = np.array([cfg.threshold_for(lab) for lab in self.labels], np.float32)
        self.refractory, self.hold = cfg.refractory_s, cfg.hold_s
        self.ready_at = -math.inf
        self.pending: Optional[tuple[float, int, float]] = None  # (opened at, keyword, posterior)

    def __call__(self, t: float, smoothed: np.ndarray) -> Optional[Detection]:
        above = self.keywords[smoothed[self.keywords] >= self.thresholds[self.keywords]]
        k = int(above[np.argmax(smoothed[above])]) if len(above) else -1
        if self.pending is not None:
            opened, _, p = self.pending
            if k >= 0 and smoothed[k] > p:
                self.pending = (opened, k, float(smoothed[k]))
            return self.flush(t) if t >= opened + self.hold - 1e-9 else None
        if k < 0 or t < self.ready_at - 1e-9:
            return None
        self.pending = (t, k, float(smoothed[k]))
        return self.flush(t) if self.hold <= 0 else None

    def flush(self, t: float) -> Optional[Detection]:
        """Fire the open decision now (at the end of a hold, or of the stream); None when there is none."""
        if self.pending is None:
            return None
        _, k, p = self.pending
        self.pending = None
        self.ready_at = t + self.refractory
        return Detection(time=round(t, 6), label=self.labels[k], confidence=p)


def replay(times: Sequence[float], smoothed: np.ndarray, labels: Sequence[str], cfg: DetectorConfig) -> list:
    """Detections a recorded trace of smoothed posteriors gives under `cfg` (for threshold sweeps).

    Without a hold the trigger's decisions are found with array operations: the hops where a keyword
    is at its threshold, then one step per detection past the refractory time (what `Trigger` decides
    hop by hop, at a small fraction of the cost when a sweep replays an hour 120 times)."""
    if cfg.hold_s > 0:
        return replay_hops(times, smoothed, labels, cfg)
    trigger = Trigger(labels, cfg)  # checks the labels and thresholds, and holds them
    times = np.asarray(times, np.float64)
    smoothed = np.asarray(smoothed)
    if not len(times):
        return []
    kw = trigger.keywords
    scores = smoothed[:, kw]
    above = scores >= trigger.thresholds[kw]
    cand = np.flatnonzero(above.any(axis=1))
    best = kw[np.where(above[cand], scores[cand], -np.inf).argmax(axis=1)]  # first of the highest, as Trigger
    at = times[cand]
    out, i, ready = [], 0, -math.inf
    while i < len(cand):
        if at[i] < ready - 1e-9:  # inside the refractory time: go to the first hop past it
            i = int(np.searchsorted(at, ready - 1e-9, side="left"))
            continue
        h, k = cand[i], int(best[i])
        out.append(Detection(time=round(float(at[i]), 6), label=trigger.labels[k],
                             confidence=float(smoothed[h, k])))
        ready = float(at[i]) + trigger.refractory
        i += 1
    return out


def replay_hops(times: Sequence[float], smoothed: np.ndarray, labels: Sequence[str], cfg: DetectorConfig) -> list:
    """`replay` hop by hop through `Trigger` (any hold time)."""
    trigger = Trigger(labels, cfg)
    out = [trigger(t, p) for t, p in zip(times, smoothed)]
    if len(times):
        out.append(trigger.flush(float(times[-1])))
    return [d for d in out if d is not None]
