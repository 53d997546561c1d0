"""Scoring detections against a stream's truth: hits, misses, false alarms per hour, latency, voice gate.

A detection is a hit when a truth word with the same label has its onset at most `tolerance_s` before the
detection (and not after it); detections are matched in time order to the earliest such word, and each
truth word is matched at most once. Every other detection is a false alarm (a substitution when it fell on
another keyword). Truth rows whose word is not one of the model's keywords (other words, noise bursts)
are never expected, so a detection on them is a false alarm. On a negative stream (no keyword in the
truth) every detection is a false alarm and the hit and miss rates do not apply (NaN; None in JSON).

A DET curve pairs, per threshold, the miss rate on a positive stream with the false alarms per hour on a
negative one; `pick_by_budget` chooses the operating point on it for a false-alarm budget.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from kws_hpc.evaluate.detector import Detection, DetectorConfig, replay
from kws_hpc.evaluate.teststream import TruthEvent

TOLERANCE_S = 1.5  # a word may be detected up to this long after its onset
# Every 0.01 from 0.05 to 0.94, every 0.002 to 0.988, every 0.001 to 0.999: a budget of a few false alarms
# per hour sits on the steep top end of the curve (the demo's GRU went from 10 per hour to none between 0.97
# and 0.98, and its misses grew by a third between 0.99 and 0.999).
THRESHOLDS = tuple(float(t) for t in np.round(np.r_[np.arange(0.05, 0.945, 0.01), np.arange(0.95, 0.9895, 0.002),
                                                    np.arange(0.990, 0.9995, 0.001)], 3))
SHOWN = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)  # printed


@dataclass
class Score:
    keywords: int  # truth words that are model keywords
    hits: int
    false_alarms: int
    substitutions: int  # false alarms that fell on another keyword (also counted there)
    seconds: float  # stream duration
    latencies: list = field(default_factory=list)  # detection time - onset, per hit
    per_class: dict = field(default_factory=dict)  # label -> {truth, hits, false_alarms}
    confused: dict = field(default_factory=dict)  # false alarms by the word under them (`(quiet)`: none)

    @property
    def misses(self) -> int:
        return self.keywords - self.hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.keywords if self.keywords else float("nan")

    @property
    def miss_rate(self) -> float:
        return self.misses / self.keywords if self.keywords else float("nan")

    @property
    def fa_per_hour(self) -> float:
        return self.false_alarms * 3600.0 / self.seconds if self.seconds > 0 else float("nan")

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(misses=self.misses, hit_rate=self.hit_rate if self.keywords else None,
                 miss_rate=self.miss_rate if self.keywords else None, fa_per_hour=self.fa_per_hour,
                 latency_mean=float(np.mean(self.latencies)) if self.latencies else None,
                 latency_median=self.latency(50) if self.latencies else None,
                 latency_p90=self.latency(90) if self.latencies else None)
        return d

    def confusions(self, most: int = 8) -> str:
        """'off 3, house 2, _noise_ 1' (the words false alarms fell on), or '' without false alarms."""
        top = sorted(self.confused.items(), key=lambda kv: (-kv[1], kv[0]))[:most]
        return ", ".join(f"{w} {n}" for w, n in top)

    def summary(self) -> str:
        if not self.keywords:  # a negative stream: only false alarms can happen
            return (f"no keywords in {self.seconds / 60:.2f} min: {self.false_alarms} false alarms "
                    f"({self.fa_per_hour:.2f} per hour)")
        lat = (f"latency median {self.latency(50):.2f} s, mean {np.mean(self.latencies):.2f} s, "
               f"p90 {self.latency(90):.2f} s" if self.latencies else "latency n/a")
        return (f"{self.keywords} keywords: {self.hits} hits ({100 * self.hit_rate:.1f} %), "
                f"{self.misses} misses, {self.false_alarms} false alarms ({self.fa_per_hour:.1f} per hour, "
                f"{self.substitutions} substitutions) in {self.seconds / 60:.2f} min; {lat}")


def score(detections: Sequence[Detection], truth: Sequence[TruthEvent], labels: Sequence[str], seconds: float,
          tolerance_s: float = TOLERANCE_S) -> Score:
    """Match detections to truth keywords (see the module doc) and count."""
    keywords = {lab for lab in labels if not lab.startswith("_")}
    expected = sorted((e for e in truth if e.word in keywords), key=lambda e: e.onset)
    used = [False] * len(expected)
    per = {lab: {"truth": 0, "hits": 0, "false_alarms": 0} for lab in sorted(keywords)}
    for e in expected:
        per[e.word]["truth"] += 1
    hits, fas, subs, lat, confused = 0, 0, 0, [], {}
    events = sorted(truth, key=lambda e: e.onset)
    onsets = [e.onset for e in expected]
    under = _Under(events, tolerance_s)
    for d in sorted(detections, key=lambda d: d.time):
        # the expected words whose onset lies in [time - tolerance, time]: bisect a little wider, then the rule
        lo, hi = bisect.bisect_left(onsets, d.time - tolerance_s - 1e-6), bisect.bisect_right(onsets, d.time + 1e-6)
        near = [i for i in range(lo, hi) if onsets[i] <= d.time + 1e-9 <= onsets[i] + tolerance_s + 2e-9]
        match = next((i for i in near if not used[i] and expected[i].word == d.label), None)
        if match is None:
            fas += 1
            subs += any(expected[i].word != d.label for i in near)
            per.setdefault(d.label, {"truth": 0, "hits": 0, "false_alarms": 0})["false_alarms"] += 1
            word = under(d.time)
            confused[word] = confused.get(word, 0) + 1
            continue
        used[match] = True
        hits += 1
        per[d.label]["hits"] += 1
        lat.append(round(d.time - expected[match].onset, 4))
    return Score(keywords=len(expected), hits=hits, false_alarms=fas, substitutions=subs, seconds=seconds,
                 latencies=lat, per_class=per, confused=confused)


class _Under:
    """The word a detection at `time` fell on: the latest event (by onset) that began before it and ended
    at most `tolerance_s` earlier (a detector fires after the word), else `(quiet)`; events sorted by onset."""

    def __init__(self, events: Sequence[TruthEvent], tolerance_s: float):
        self.events, self.tolerance = events, tolerance_s
        self.onsets = [e.onset for e in events]
        self.longest = max((e.offset - e.onset for e in events), default=0.0)

    def __call__(self, time: float) -> str:
        i = bisect.bisect_right(self.onsets, time + 1e-9) - 1
        # an event that began before time - longest - tolerance ended too early to be under it (1 s to spare)
        while i >= 0 and self.onsets[i] >= time - self.longest - self.tolerance - 1.0:
            e = self.events[i]
            if e.onset <= time + 1e-9 and time <= e.offset + self.tolerance + 1e-9:
                return e.word
            i -= 1
        return "(quiet)"


def sweep(times, smoothed: np.ndarray, labels, cfg: DetectorConfig, truth, seconds: float,
          thresholds: Sequence[float] = THRESHOLDS, tolerance_s: float = TOLERANCE_S
          ) -> list[tuple[float, Score]]:
    """Score a recorded trace under each global threshold (smoothing and gate unchanged)."""
    rows = []
    for t in thresholds:
        at_t = dataclasses.replace(cfg, threshold=float(t), class_thresholds={})
        dets = replay(times, smoothed, labels, at_t)
        rows.append((float(t), score(dets, truth, labels, seconds, tolerance_s)))
    return rows


def pick_threshold(rows: list[tuple[float, Score]], fa_weight: float = 1.0) -> float:
    """The middle of the widest run of thresholds with the fewest misses + fa_weight * false alarms."""
    cost = np.array([s.misses + fa_weight * s.false_alarms for _, s in rows])
    best = np.flatnonzero(cost <= cost.min() + 1e-9)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    return rows[int(widest[len(widest) // 2])][0]


def sweep_rows(rows: list[tuple[float, Score]]) -> list[dict]:
    """A sweep as JSON rows: threshold, miss and hit rate (None without keywords), false alarms (per hour)."""
    return [{"threshold": t, "miss_rate": r.miss_rate if r.keywords else None,
             "hit_rate": r.hit_rate if r.keywords else None, "false_alarms": r.false_alarms,
             "fa_per_hour": r.fa_per_hour} for t, r in rows]


class DetPoint(NamedTuple):
    """One threshold of a DET curve: miss rate on keyword audio, false alarms per hour on audio without."""

    threshold: float
    miss_rate: float
    fa_per_hour: float


def det_curve(positive: list[tuple[float, Score]], negative: list[tuple[float, Score]]) -> list[DetPoint]:
    """Pair the sweeps of a positive and a negative stream (the same thresholds) into a DET curve."""
    if [t for t, _ in positive] != [t for t, _ in negative]:
        raise ValueError("the two sweeps were made at different thresholds")
    return [DetPoint(t, p.miss_rate, n.fa_per_hour) for (t, p), (_, n) in zip(positive, negative)]


def pick_by_budget(curve: Sequence[DetPoint], budget: float) -> tuple[DetPoint, bool]:
    """(the operating point for a false-alarm budget, whether it meets the budget).

    Among the thresholds whose false alarms per hour are <= `budget`, the lowest miss rate; ties go to
    the fewest false alarms per hour, then to the middle of the widest run of neighbouring thresholds
    left (the point farthest from where either figure changes, so the least sensitive to the validation
    sample). When no threshold meets the budget: the fewest false alarms per hour, ties to the lowest miss
    rate, then the same middle.
    """
    if not curve:
        raise ValueError("an empty DET curve")
    pts = [(i, p) for i, p in enumerate(curve) if p.miss_rate == p.miss_rate]  # NaN: nothing to miss
    pts = pts or list(enumerate(curve))
    ok = [(i, p) for i, p in pts if p.fa_per_hour <= budget + 1e-9]
    by_miss, by_fa = (lambda p: p.miss_rate), (lambda p: p.fa_per_hour)
    keys = (by_miss, by_fa) if ok else (by_fa, by_miss)
    left = ok or pts
    for key in keys:
        best = min(key(p) for _, p in left)
        left = [(i, p) for i, p in left if key(p) <= best + 1e-12]
    idx = np.array([i for i, _ in left])
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    widest = max(runs, key=len)
    return curve[int(widest[len(widest) // 2])], bool(ok)


def miss_at(curve: Sequence[DetPoint], budget: float) -> DetPoint | None:
    """The lowest-miss point within `budget` false alarms per hour (as `pick_by_budget`), None when none is."""
    point, met = pick_by_budget(curve, budget)
    return point if met else None


def vad_score(flags: np.ndarray, truth: Sequence[TruthEvent], frame_s: float = 0.01,
              clip_s: float = 1.0) -> dict:
    """How the voice gate's frame flags line up with the truth: recall on words, activity elsewhere.

    `speech_recall`: share of word frames (keywords and other words, onset to offset) marked voice;
    `words_reached`: share of words with at least one voice frame (a word without one cannot be detected);
    `clip_active`: share of the rest of the words' clips (their own recorded background) marked voice;
    `noise_active`: same on noise bursts; `quiet_active`: same on the stream's background between events.
    """
    flags = np.asarray(flags, bool)
    n = len(flags)
    speech, clip, noise = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    reached = []

    def span(a: float, b: float) -> slice:
        i = int(a / frame_s)
        return slice(i, max(i + 1, int(np.ceil(b / frame_s))))

    for e in truth:
        if e.kind == "noise":
            noise[span(e.onset, e.offset)] = True
            continue
        clip[span(e.clip_start, max(e.offset, e.clip_start + clip_s))] = True
        speech[span(e.onset, e.offset)] = True
        if int(e.onset / frame_s) < n:
            reached.append(bool(flags[span(e.onset, e.offset)].any()))
    clip &= ~speech
    noise &= ~(speech | clip)
    quiet = ~(speech | clip | noise)

    def share(mask):
        return float(flags[mask].mean()) if mask.any() else float("nan")

    return {"speech_recall": share(speech),
            "words_reached": float(np.mean(reached)) if reached else float("nan"),
            "clip_active": share(clip), "noise_active": share(noise), "quiet_active": share(quiet),
            "frames": n}
