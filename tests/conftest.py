"""Shared fixtures: a small generated Speech Commands tree and the feature store built from it.

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
