"""A sound file into the live pipeline: read as mono at the feature rate, fed hop by hop (`kws-hpc live
--wav`), as fast as it goes or at the pace of the audio."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from kws_hpc.errors import KwsError
from kws_hpc.evaluate.detector import Detection
from kws_hpc.evaluate.pipeline import Pipeline
from kws_hpc.features.padding import background_like


def read_audio(path: str | Path, sample_rate: int, min_seconds: float = 0.1,
               log: Callable[[str], None] = print) -> np.ndarray:
    """A sound file as float32 mono at `sample_rate`; channels are averaged and other rates resampled,
    each said once. A file that is not audio, is cut short, or is shorter than `min_seconds` is a KwsError."""
    import soundfile as sf

    from kws_hpc.data.source import BadClip, wav_header

    p = Path(path).expanduser()
    if not p.is_file():
        raise KwsError(f"audio file {p} does not exist")
    try:
        with open(p, "rb") as fh:  # a WAV cut short is refused, not played as far as it goes
            if fh.read(4) == b"RIFF":
                fh.seek(0)
                wav_header(fh, os.fstat(fh.fileno()).st_size)
        x, sr = sf.read(p, dtype="float32", always_2d=True)
    except BadClip as e:
        raise KwsError(f"{p}: {e}; record or copy it again") from None
    except Exception as e:  # libsndfile's errors carry no useful type
        raise KwsError(f"cannot read {p} as audio ({str(e).splitlines()[0]})") from None
    if len(x) < min_seconds * sr:
        raise KwsError(f"{p} holds {len(x)} samples ({len(x) / sr:.3f} s): too short to listen to "
                       f"(at least {min_seconds:g} s)")
    if x.shape[1] > 1:
        log(f"{p.name}: {x.shape[1]} channels mixed down to mono")
    x = x.mean(axis=1)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        log(f"{p.name}: {sr} Hz resampled to {sample_rate} Hz")
        g = gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g).astype(np.float32)
    return x


def run_wav(pipeline: Pipeline, path: str | Path, realtime: bool = False,
            on_detection: Callable[[Detection], None] = lambda d: None,
            log: Callable[[str], None] = print) -> list[Detection]:
    """Feed a file through the pipeline hop by hop, as fast as it goes or at the pace of the audio."""
    x = read_audio(path, pipeline.fc.sample_rate, min_seconds=pipeline.cfg.hop_s, log=log)
    if len(x) < pipeline.window:  # a single short clip: the rest of its window is its background, as in the store
        x = np.concatenate([x, background_like(x, pipeline.window - len(x), np.random.default_rng(1))])
    dets, t0 = [], time.perf_counter()
    for at in range(0, len(x), pipeline.hop):
        for d in pipeline.push(x[at:at + pipeline.hop]):
            on_detection(d)
            dets.append(d)
        if realtime:
            ahead = pipeline.seconds - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
    for d in pipeline.finish():
        on_detection(d)
        dets.append(d)
    return dets
