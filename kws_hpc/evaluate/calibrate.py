"""Choosing the detection threshold on the validation split, so the exported file carries a measured one.

Best: the run's corpus is reachable (the store's summary.json names it). Two streams are made in memory
from the validation speakers' clips: a keyword stream (60 % keywords, the rest other words and noise) and
a negative stream (other words, near-misses, noise and quiet; no keyword). The live pipeline runs over
each once and the recorded posteriors are replayed under every threshold (`scoring.THRESHOLDS`); the
threshold chosen is the one with the lowest miss rate on the keyword stream whose false alarms per hour on
the negative stream stay within the budget (`--fa-per-hour`, default 2; ties: see `pick_by_budget`).
When none does, the one with the fewest false alarms per hour, and the log says so.

The negative stream is 30 min by default: one false alarm is then 2 per hour, so the default budget is
resolved (a 20-min stream could only tell 0 from 3 per hour); a 60-min one chose no better thresholds
(BENCHMARKS.md 5f). The export of the demo's GRU, both streams included, takes ~28 s (det.py).

Next best: only the store is reachable; the clip-level rule (fewest misjudged validation clips), with no
budget. Otherwise the default threshold stays. Smoothing, refractory time and the voice gate keep their
tuned defaults.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kws_hpc.config import FeatureConfig
from kws_hpc.evaluate.det import corpus_of, make_stream, stream_sweep
from kws_hpc.evaluate.detector import DetectorConfig, softmax
from kws_hpc.evaluate.scoring import THRESHOLDS, det_curve, pick_by_budget, pick_threshold

CALIBRATION_SEED = 20250  # the validation keyword stream's seed (report streams use other seeds)
NEGATIVE_SEED = 20251  # the validation negative stream's seed
CALIBRATION_MINUTES = 10.0  # ~260 keywords; a 3-min stream holds ~75, so a few words decide the threshold
NEGATIVE_MINUTES = 30.0  # one false alarm = 2 per hour (see the module doc)
FA_BUDGET = 2.0  # false alarms per hour the chosen threshold may give on the negative stream


def calibrate(scorer, labels: list, fc: FeatureConfig, store: Optional[Path], cfg: DetectorConfig,
              minutes: float = CALIBRATION_MINUTES, log: Callable[[str], None] = print,
              fa_per_hour: float = FA_BUDGET, negative_minutes: float = NEGATIVE_MINUTES
              ) -> tuple[DetectorConfig, dict]:
    """(detector config with the chosen threshold, a description of how it was chosen and its figures)."""
    if store is not None and minutes > 0 and corpus_of(store) is not None:
        return _on_streams(scorer, labels, fc, Path(store), cfg, (minutes, negative_minutes), fa_per_hour, log)
    if store is not None and (Path(store) / "val.h5").is_file():
        why = "no validation stream asked" if minutes <= 0 else "the store's corpus is not reachable"
        return _on_clips(scorer, labels, Path(store), cfg, log, why, fa_per_hour)
    log(f"threshold: default {cfg.threshold:.2f} (no store to calibrate on; budget not applied)")
    return cfg, {"method": "default", "threshold": cfg.threshold, "fa_per_hour_budget": fa_per_hour}


def _on_streams(scorer, labels, fc, store: Path, cfg, minutes: tuple, budget: float, log
                ) -> tuple[DetectorConfig, dict]:
    from kws_hpc.errors import KwsError

    try:
        pos_stream = make_stream(store, "val", minutes[0], CALIBRATION_SEED, negative=False)
    except KwsError as e:  # e.g. a validation split without some keyword: fall back to the clips
        return _on_clips(scorer, labels, store, cfg, log, f"no validation stream: {e}", budget)
    pos = stream_sweep(scorer, labels, fc, cfg, pos_stream)
    neg, neg_info = None, {}
    try:
        if minutes[1] <= 0:
            raise KwsError("none asked")
        neg_stream = make_stream(store, "val", minutes[1], NEGATIVE_SEED, negative=True)
        neg = stream_sweep(scorer, labels, fc, cfg, neg_stream)
        neg_info = neg_stream.describe()
    except KwsError as e:  # false alarms on the keyword stream are false alarms too
        neg_info = {"skipped": f"no negative validation stream ({e}); false alarms counted on the keyword stream"}
        log(f"threshold: {neg_info['skipped']}")
    curve = det_curve(pos, neg or pos)
    point, met = pick_by_budget(curve, budget)
    t = point.threshold
    p, n = dict(pos)[t], dict(neg or pos)[t]
    where = (f"{minutes[0]:g}-min keyword and {minutes[1]:g}-min negative validation streams" if neg
             else f"a {minutes[0]:g}-min keyword validation stream")
    log(f"threshold {t:g} chosen for a budget of {budget:g} false alarms/h on {where}: "
        f"miss rate {100 * p.miss_rate:.1f} % ({p.misses} of {p.keywords} keywords), "
        f"{n.fa_per_hour:.1f} false alarms/h ({n.false_alarms})")
    if not met:
        log(f"no threshold keeps false alarms within {budget:g}/h on the validation streams: "
            f"took {t:g}, the fewest ({n.fa_per_hour:.1f}/h)")
    if neg is not None:
        neg_info.update(false_alarms=n.false_alarms, fa_per_hour=n.fa_per_hour, confused=n.confused)
    info = {"method": "validation_streams", "threshold": t, "fa_per_hour_budget": budget, "budget_met": met,
            "miss_rate": p.miss_rate, "hit_rate": p.hit_rate, "fa_per_hour": n.fa_per_hour,
            "corpus": str(corpus_of(store)), "split": "val",
            "positive": {**pos_stream.describe(), "keywords": p.keywords, "hits": p.hits,
                         "false_alarms": p.false_alarms, "fa_per_hour": p.fa_per_hour},
            "negative": neg_info,
            "curve": [list(r) for r in curve]}
    return dataclasses.replace(cfg, threshold=t, class_thresholds={}), info


def _on_clips(scorer, labels, store: Path, cfg, log, why: str, budget: float) -> tuple[DetectorConfig, dict]:
    from kws_hpc.features.store import load_split

    val = load_split(store, "val")
    if not len(val.labels):
        log(f"threshold: default {cfg.threshold:.2f} (the store's validation split is empty)")
        return cfg, {"method": "default", "threshold": cfg.threshold, "fa_per_hour_budget": budget}
    keywords = np.array([i for i, lab in enumerate(labels) if not lab.startswith("_")])
    probs = softmax(np.concatenate([scorer.window(val.features[i:i + 256])
                                    for i in range(0, len(val.features), 256)]))
    best = keywords[np.argmax(probs[:, keywords], axis=1)]
    conf = probs[np.arange(len(best)), best]
    right = best == val.labels
    costs = [int(np.sum(right & (conf < t)) + np.sum(~right & (conf >= t))) for t in THRESHOLDS]
    rows = [(float(t), _Cost(c)) for t, c in zip(THRESHOLDS, costs)]
    chosen = pick_threshold(rows)
    log(f"threshold {chosen:.2f} chosen on {len(best)} validation clips "
        f"({min(costs)} clips misjudged; {why}; the budget of {budget:g}/h needs streams)")
    info = {"method": "validation_clips", "threshold": chosen, "fa_per_hour_budget": budget,
            "clips": int(len(best)), "misjudged": int(min(costs))}
    return dataclasses.replace(cfg, threshold=chosen, class_thresholds={}), info


@dataclasses.dataclass
class _Cost:
    """A clip-level cost shaped like a Score for `pick_threshold` (misses carry it all)."""

    misses: int
    false_alarms: int = 0
