"""Choosing the detection threshold on the validation split, so the exported file carries a measured one.

Best: the run's corpus is reachable (the store's summary.json names it). A stream is made in memory from
the validation speakers' clips (keywords, other words, noise), the live pipeline runs over it once, and
the recorded posteriors are replayed under every threshold from 0.30 to 0.99; the threshold in the middle
of the widest run with the fewest misses + false alarms wins. Next best: only the store is reachable; the
same rule on the validation clips one by one (correct keyword accepted vs anything else accepted).
Otherwise the defaults stay. Smoothing, refractory time and the voice gate keep their tuned defaults.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kws_hpc.config import FeatureConfig
from kws_hpc.deploy.detector import DetectorConfig, softmax
from kws_hpc.deploy.scoring import THRESHOLDS, pick_threshold, sweep

CALIBRATION_SEED = 20250  # the validation stream's seed (report streams use other seeds)
CALIBRATION_MINUTES = 10.0  # ~260 keywords; a 3-min stream holds ~75, so a few words decide the threshold


def corpus_of(store: Path) -> Optional[Path]:
    """The corpus a store was built from, when it is still where the store says."""
    from kws_hpc.features.store import read_summary

    data = (read_summary(store) or {}).get("data")
    return Path(data) if data and Path(data).exists() else None


def calibrate(scorer, labels: list, fc: FeatureConfig, store: Optional[Path], cfg: DetectorConfig,
              minutes: float = CALIBRATION_MINUTES,
              log: Callable[[str], None] = print) -> tuple[DetectorConfig, dict]:
    """(detector config with the chosen threshold, a description of how it was chosen)."""
    if store is not None and minutes > 0 and corpus_of(store) is not None:
        return _on_stream(scorer, labels, fc, Path(store), cfg, minutes, log)
    if store is not None and (Path(store) / "val.h5").is_file():
        why = "no validation stream asked" if minutes <= 0 else "the store's corpus is not reachable"
        return _on_clips(scorer, labels, Path(store), cfg, log, why)
    log(f"threshold: default {cfg.threshold:.2f} (no store to calibrate on)")
    return cfg, {"method": "default", "threshold": cfg.threshold}


def _on_stream(scorer, labels, fc, store: Path, cfg, minutes, log) -> tuple[DetectorConfig, dict]:
    from kws_hpc.errors import KwsError
    from kws_hpc.deploy.pipeline import Pipeline
    from kws_hpc.data.teststream import stream_audio

    corpus = corpus_of(store)
    try:
        audio, truth = stream_audio(corpus, minutes, CALIBRATION_SEED, store=store, split="val")
    except KwsError as e:  # e.g. a validation split without some keyword: fall back to the clips
        return _on_clips(scorer, labels, store, cfg, log, f"no validation stream: {e}")
    pipe = Pipeline(scorer, labels, fc, cfg, record=True)
    pipe.push(audio)
    times, smoothed = pipe.trace.arrays()
    rows = sweep(times, smoothed, labels, cfg, truth, pipe.seconds)
    chosen = pick_threshold(rows)
    s = dict(rows)[chosen]
    log(f"threshold {chosen:.2f} chosen on a {minutes:g}-min validation stream: {s.summary()}")
    info = {"method": "validation_stream", "threshold": chosen, "minutes": minutes, "seed": CALIBRATION_SEED,
            "corpus": str(corpus), "keywords": s.keywords, "hit_rate": s.hit_rate,
            "fa_per_hour": s.fa_per_hour,
            "curve": [[t, r.hit_rate, r.fa_per_hour] for t, r in rows]}
    return dataclasses.replace(cfg, threshold=chosen, class_thresholds={}), info


def _on_clips(scorer, labels, store: Path, cfg, log, why: str) -> tuple[DetectorConfig, dict]:
    from kws_hpc.features.store import load_split

    val = load_split(store, "val")
    if not len(val.labels):
        log(f"threshold: default {cfg.threshold:.2f} (the store's validation split is empty)")
        return cfg, {"method": "default", "threshold": cfg.threshold}
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
        f"({min(costs)} clips misjudged; {why})")
    info = {"method": "validation_clips", "threshold": chosen, "clips": int(len(best)),
            "misjudged": int(min(costs))}
    return dataclasses.replace(cfg, threshold=chosen, class_thresholds={}), info


@dataclasses.dataclass
class _Cost:
    """A clip-level cost shaped like a Score for `pick_threshold` (misses carry it all)."""

    misses: int
    false_alarms: int = 0
