"""Hard negatives: the windows of training-speaker audio without keywords on which a model fires.

A trained model runs over a long stream of the training split's speakers with no keyword in it (other
words, noise bursts, background: `evaluate.teststream`); every 1-s window whose best keyword score reaches
`floor` is a false alarm the model is close to making. Their log-mels go to one .npz (`train.negatives`)
that `kws-hpc train --hard-negatives FILE` adds to the training split as `_unknown_`. Only training speakers
are heard, so validation and test stay untouched (BENCHMARKS.md 5i).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kws_hpc.config import UNKNOWN
from kws_hpc.errors import KwsError

MINE_MINUTES = 180.0  # stream length: about 800 events for the 200-speaker corpus's default GRU (5i)
MINE_FLOOR = 0.3  # a window counts when its best keyword score (smoothed, as the detector sees it) reaches this
MINE_SEED = 11  # the stream's seed (calibration and the report use others; the split differs anyway)


def mine(run: str | Path, out: str | Path, minutes: float = MINE_MINUTES, floor: float = MINE_FLOOR,
         seed: int = MINE_SEED, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Write OUT (.npz): the log-mels of every window of a `minutes`-long training-speaker stream without
    keywords where the run's model scores a keyword >= `floor`; returns OUT."""
    from kws_hpc.evaluate.det import SWEEP_BATCH, make_stream
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.pipeline import Pipeline
    from kws_hpc.evaluate.scorer import checkpoint_scorer, one_thread
    from kws_hpc.features.logmel import log_mels
    from kws_hpc.progress import bar
    from kws_hpc.train.negatives import write_hard_negatives
    from kws_hpc.train.rundir import RunDir

    if not minutes > 0 or not 0 < floor < 1:
        raise KwsError(f"--minutes {minutes:g} must be > 0 and --floor {floor:g} in (0, 1)")
    out = _ready(Path(out).expanduser())
    run = RunDir(Path(run).expanduser())
    if not run.best.is_file():
        raise KwsError(f"{run.path} is not a finished run (no best.pt); train it first")
    scorer, labels, fc, ckpt = checkpoint_scorer(run.path)
    if UNKNOWN not in labels:
        raise KwsError(f"run {run.path.name} has no {UNKNOWN} class to teach hard negatives to; build its store "
                       "with `features --extras` and train again")
    store = Path((run.read_config() or {}).get("store", ""))
    log(f"mining: {run.path.name} over {minutes:g} min of training speakers without keywords (floor {floor:g})")
    stream = make_stream(store, "train", minutes, seed, negative=True)
    with one_thread():
        pipe = Pipeline(scorer, labels, fc, DetectorConfig(), record=True, batch=SWEEP_BATCH)
        step = 60 * fc.sample_rate  # a minute at a time, for the progress bar
        with bar(int(np.ceil(len(stream.audio) / step)), "mining", "stream-min", progress) as b:
            for i in range(0, len(stream.audio), step):
                pipe.push(stream.audio[i:i + step])
                b.update()
        pipe.finish()
    times, smoothed = pipe.trace.arrays()
    keywords = [i for i, name in enumerate(labels) if not name.startswith("_")]
    scores = smoothed[:, keywords].max(1) if len(times) else np.zeros(0, np.float32)
    n = fc.clip_samples
    ends = np.round(times * fc.sample_rate).astype(int)
    hot = np.flatnonzero((scores >= floor) & (ends >= n))
    waves = np.stack([stream.audio[e - n:e] for e in ends[hot]]) if len(hot) else np.zeros((0, n), np.float32)
    feats = log_mels(waves.astype(np.float32), fc).astype(fc.dtype)
    write_hard_negatives(out, feats, times[hot], scores[hot], ckpt["store_signature"], run.signature)
    events = int(np.sum(np.diff(times[hot], prepend=-1.0) > 0.5))
    log(f"{len(hot)} windows ({events} events) of {len(times)} hops scored >= {floor:g}: {out}")
    return out


def _ready(out: Path) -> Path:
    """OUT, refused before any mining when it cannot be written: a name that is not *.npz, a folder, or a
    place where its folder cannot be made."""
    if out.suffix.lower() != ".npz" or out.is_dir():
        raise KwsError(f"--out {out}: name a file *.npz (a mine file is numpy's .npz)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KwsError(f"--out {out}: cannot make its folder ({e.strerror or e}); choose another place") from None
    return out
