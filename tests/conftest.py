"""Shared fixtures: a small generated Speech Commands tree, the feature store built from it, runs trained
on it and one exported; helpers for the live detector's tests.

The tree is made of real 16-kHz WAV files whose "words" are tone patterns (each word its own pitch
contour, each speaker its own base pitch and timing), so a model can learn them in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_sample"
TINY_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "house", "tree"]


def speaker_id(i: int) -> str:
    return hashlib.sha1(f"tone-speaker-{i}".encode()).hexdigest()[:8]


def tone_word(word: str, speaker: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """About 0.5 s of a word-specific two-tone contour, placed at a random offset in 1 s."""
    k = TINY_WORDS.index(word) if word in TINY_WORDS else len(word)
    base = 200 + 15 * (speaker % 7)
    n = int(sr * rng.uniform(0.4, 0.6))
    f0, f1 = base * (1 + 0.25 * k), base * (1 + 0.25 * ((k * 5) % len(TINY_WORDS)))
    phase = 2 * np.pi * np.cumsum(np.linspace(f0, f1, n)) / sr
    tone = np.sin(phase) * np.hanning(n)
    out = np.zeros(sr, np.float32)
    start = int(rng.integers(0, sr - n))
    out[start:start + n] = 0.5 * tone
    out += 0.01 * rng.standard_normal(sr).astype(np.float32)
    return out


def make_tree(root: Path, words=TINY_WORDS, speakers: int = 20, noise: bool = True, seed: int = 0) -> Path:
    """Write `root/<word>/<speaker>_nohash_0.wav` for every word and speaker (+ background noise)."""
    rng = np.random.default_rng(seed)
    for w in words:
        (root / w).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            sf.write(root / w / f"{speaker_id(s)}_nohash_0.wav", tone_word(w, s, rng), 16000, subtype="PCM_16")
    if noise:
        (root / "_background_noise_").mkdir(exist_ok=True)
        sf.write(root / "_background_noise_" / "white.wav", 0.1 * rng.standard_normal(16000 * 20), 16000,
                 subtype="PCM_16")
    return root


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tiny") / "speech_commands")


@pytest.fixture(scope="session")
def tiny_store(tiny_tree, tmp_path_factory) -> Path:
    """A complete store of 10 tone words (comma vocabulary), built in-process."""
    from kws_hpc.config import DataConfig
    from kws_hpc.features.build import build_store

    cfg = DataConfig(vocab=",".join(TINY_WORDS[:10]))
    return build_store(tiny_tree, cfg, out=tmp_path_factory.mktemp("features"), workers=0, progress=False,
                       log=lambda m: None)


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    """A GRU (hidden 16) trained for 2 epochs on the tiny store: a real run folder."""
    from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
    from kws_hpc.train.loop import train

    cfg = RunConfig(store=str(tiny_store), model=ModelConfig(hidden=16, layers=1, head="last", clip_norm=False,
                                                               conv_channels=0),
                    train=TrainConfig(epochs=2, device="cpu"))
    return train(cfg, out=tmp_path_factory.mktemp("runs"), log=lambda m: None, progress=False)


@pytest.fixture(scope="session")
def tiny_lstm_run(tiny_store, tmp_path_factory) -> Path:
    """An LSTM (hidden 8, mean head) trained for 1 epoch on the tiny store."""
    from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
    from kws_hpc.train.loop import train

    cfg = RunConfig(store=str(tiny_store), train=TrainConfig(epochs=1, device="cpu", seed=1),
                    model=ModelConfig(cell="lstm", hidden=8, layers=1, head="mean", clip_norm=False, conv_channels=0))
    return train(cfg, out=tmp_path_factory.mktemp("runs2"), log=lambda m: None, progress=False)


@pytest.fixture(scope="session")
def exported(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported, its threshold calibrated on short validation streams."""
    from kws_hpc.deploy.export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    return export_checkpoint(tiny_run, out, calibrate_minutes=0.5, negative_minutes=1.0, log=lambda m: None)


# The live detector's tests: a signal the voice gate hears, and a scorer that needs no model.

def tone_bursts(seconds: float, bursts=(), noise: float = 1e-3, seed: int = 0, sr: int = 16000) -> np.ndarray:
    """Quiet noise with 300-Hz tone bursts [(start_s, end_s)] at amplitude 0.3."""
    x = noise * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    for a, b in bursts:
        t = np.arange(int(a * sr), int(b * sr))
        x[t] += 0.3 * np.sin(2 * np.pi * 300 * t / sr)
    return x.astype(np.float32)


class LoudScorer:
    """Scores the labels (yes, no, _unknown_): "yes" when the window holds a loud frame, else "_unknown_";
    counts its calls."""

    can_stream = False

    def __init__(self):
        self.calls = 0

    def window(self, feats):
        self.calls += 1
        return np.array([[5.0, 0.0, 0.0] if feats[0].max() > 0 else [0.0, 0.0, 5.0]], np.float32)


def event_scalars(folder: Path) -> dict:
    """{tag: [(step, value)]} of the TensorBoard event files in `folder`, read as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
