"""DET measurements: the live pipeline over a keyword stream and a stream without keywords, every threshold.

The field reports a keyword spotter with two numbers from two kinds of audio: the miss rate on audio full
of keywords and the false alarms per hour on long audio without any (other words, noise, quiet). Both
streams here come from one split's speakers of the store's corpus (`evaluate.teststream`); the pipeline runs
over each once, recording its smoothed posteriors, and the recording is replayed under every threshold.
Export calibration uses the validation split, the report the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from kws_hpc.config import FeatureConfig
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.scoring import THRESHOLDS, DetPoint, Score, det_curve, sweep

SWEEP_BATCH = 64  # windows per model run when a stream is swept offline

# Measured with the demo's exported GRU on one thread: its export (40 stream-minutes: the pipeline once over
# each stream, model batched, then 120 thresholds replayed) takes ~28 s, 65 s hop by hop (BENCHMARKS.md 5g).
# The voice gate is open on ~98 % of a negative stream's hops: words or noise follow every second or two.


def corpus_of(store: Path) -> Optional[Path]:
    """The corpus a store was built from, when it is still where the store says."""
    from kws_hpc.features.store import read_summary

    data = (read_summary(store) or {}).get("data")
    return Path(data) if data and Path(data).exists() else None


@dataclass
class Stream:
    """One stream in memory: samples, truth and how it was made."""

    audio: object  # float32 samples at 16 kHz
    truth: list  # TruthEvent rows
    minutes: float
    seed: int
    negative: bool

    def describe(self) -> dict:
        kinds = {k: sum(e.kind == k for e in self.truth) for k in ("keyword", "other", "noise")}
        return {"minutes": self.minutes, "seed": self.seed, "keyword_share": 0.0 if self.negative else 0.6,
                "events": kinds}


def make_stream(store: Path, split: str, minutes: float, seed: int, negative: bool) -> Stream:
    """A stream of `split`'s speakers from the store's corpus: keywords (60 %), or none at all."""
    from kws_hpc.evaluate.teststream import stream_audio
    from kws_hpc.errors import KwsError

    corpus = corpus_of(store)
    if corpus is None:
        raise KwsError(f"the corpus of store {store} is not reachable")
    mix = {"keyword_share": 0.0} if negative else {}
    audio, truth = stream_audio(corpus, minutes, seed, store=store, split=split, **mix)
    return Stream(audio, truth, minutes, seed, negative)


def stream_trace(scorer, labels: Sequence[str], fc: FeatureConfig, cfg: DetectorConfig, stream: Stream):
    """(hop times, smoothed posteriors, seconds) of the live pipeline once over the stream (the model on
    `SWEEP_BATCH` windows at a time: the same trace as hop by hop, several times faster)."""
    from kws_hpc.evaluate.pipeline import Pipeline

    pipe = Pipeline(scorer, labels, fc, cfg, record=True, batch=SWEEP_BATCH)
    pipe.push(stream.audio)
    pipe.finish()
    times, smoothed = pipe.trace.arrays()
    return times, smoothed, pipe.seconds


def stream_sweep(scorer, labels: Sequence[str], fc: FeatureConfig, cfg: DetectorConfig, stream: Stream,
                 thresholds: Sequence[float] = THRESHOLDS) -> list[tuple[float, Score]]:
    """Run the live pipeline over the stream once and score its trace under every threshold."""
    times, smoothed, seconds = stream_trace(scorer, labels, fc, cfg, stream)
    return sweep(times, smoothed, labels, cfg, stream.truth, seconds, thresholds)


def trace_curve(traces: tuple, labels, cfg: DetectorConfig, positive: Stream, negative: Stream
                ) -> tuple[list[DetPoint], list, list]:
    """(DET curve, positive sweep, negative sweep) of recorded (positive, negative) traces."""
    pos = sweep(*traces[0][:2], labels, cfg, positive.truth, traces[0][2])
    neg = sweep(*traces[1][:2], labels, cfg, negative.truth, traces[1][2])
    return det_curve(pos, neg), pos, neg


def averaged_traces(traces: list) -> tuple:
    """The traces of a graph averaging the models' posteriors, from each model's own: the smoothing is a
    mean over hops and the voice gate hears the audio only, so the mean of the smoothed posteriors is the
    averaged graph's smoothed posterior (same hops)."""
    out = []
    for per_model in zip(*traces):  # one stream at a time
        times, _, seconds = per_model[0]
        if any(len(t) != len(times) or (t != times).any() for t, _, _ in per_model):
            raise ValueError("the models' traces do not share their hops")
        out.append((times, sum(s for _, s, _ in per_model) / len(per_model), seconds))
    return tuple(out)


def measure(scorer, labels, fc, cfg: DetectorConfig, positive: Stream, negative: Stream) -> tuple:
    """((positive trace, negative trace), DET curve, positive sweep, negative sweep) of one model."""
    traces = (stream_trace(scorer, labels, fc, cfg, positive), stream_trace(scorer, labels, fc, cfg, negative))
    return (traces, *trace_curve(traces, labels, cfg, positive, negative))
