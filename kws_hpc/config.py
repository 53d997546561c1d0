"""Frozen configurations and the signatures that name what they produce.

Every stage is described by a small frozen dataclass. The signature of a config
(a short hash of its JSON) names the feature store or run folder it produced, so
asking for the same thing twice finds it instead of recomputing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

SEED12 = ("yes", "no", "bird", "cat", "dog", "up", "down", "left", "right", "stop", "go", "forward")
V2_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND = "_background_noise_"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front-end, shared by the offline feature job and the live detector."""

    sample_rate: int = 16000  # Hz; clips at any other rate are skipped, not resampled
    clip_seconds: float = 1.0  # clips are padded or trimmed to this length
    n_fft: int = 400  # 25 ms window
    hop_length: int = 160  # 10 ms hop
    n_mels: int = 40
    frames: int = 100  # exactly this many frames per clip (the STFT's extra frame is dropped)
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6  # log(max(mel, floor)) keeps silence finite
    dtype: str = "float16"  # on-disk dtype of the features (float16 halves the store)

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


@dataclass(frozen=True)
class DataConfig:
    """Which clips make up the store: vocabulary, split rule, quotas, augmentation."""

    vocab: str = "seed12"  # seed12 | v2-12 | digits | all | comma list of words
    split: str = "hash"  # hash (the data set's sha1 rule) | official (validation/testing lists)
    val_percent: float = 10.0
    test_percent: float = 10.0
    quota_train: Optional[int] = None  # per-class caps per split (None = no cap)
    quota_val: Optional[int] = None
    quota_test: Optional[int] = None
    extras: bool = False  # add _silence_ and _unknown_ classes to any vocabulary (v2-12 always has them)
    unknown_percent: float = 10.0  # _unknown_ and _silence_ each get this share of a split's keyword clips
    augment: int = 0  # augmented copies of each training clip (noise at random SNR + time shift)
    augment_snr_db: tuple = (0.0, 20.0)
    augment_shift_ms: float = 100.0
    seed: int = 0  # sampling of _unknown_/_silence_ and augmentation

    def quota(self, split: str) -> Optional[int]:
        return {"train": self.quota_train, "val": self.quota_val, "test": self.quota_test}[split]


@dataclass(frozen=True)
class ModelConfig:
    """RNN classifier; GRU and LSTM differ only in `cell`."""

    cell: str = "gru"  # gru | lstm
    hidden: int = 128
    layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.1  # between RNN layers and before the head
    head: str = "attention"  # last | mean | attention: how the sequence is pooled into one vector
    conv_channels: int = 0  # >0 adds a small conv front-end (CRNN) with this many channels
    conv_layers: int = 2
    clip_norm: bool = True  # subtract each clip's mean log-mel first: invariant to recording level


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation; defaults follow the reference report (Adam 1e-3, clip 1.0, 20 epochs, patience 10)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 10  # early stopping on validation accuracy
    label_smoothing: float = 0.0
    schedule: str = "none"  # none | cosine | onecycle | plateau
    time_masks: int = 2  # SpecAugment: number of time masks per example
    time_mask_width: int = 10  # frames
    freq_masks: int = 2  # SpecAugment: number of frequency masks per example
    freq_mask_width: int = 6  # mel bins
    stream_aug: float = 0.5  # share of clips made to look like live windows (augment.stream_windows)
    partial_words: float = 0.1  # share of those cut to part of a word and labelled _unknown_
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | mps (not part of the run signature)
    amp: bool = False  # mixed precision on CUDA


def to_dict(cfg: Any) -> dict:
    """Plain JSON-ready dict of a (possibly nested) config dataclass."""
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps(d))


def from_dict(cls, d: dict):
    """Build `cls` from a dict, ignoring unknown keys and restoring tuples."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for k, v in d.items():
        if k in names:
            kw[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def signature(*parts: Any, length: int = 12) -> str:
    """Short stable hash of configs, dicts and strings (the name of what they produce)."""
    payload = [to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:length]


def replace(cfg, **changes):
    """dataclasses.replace that accepts only known fields (a typo is an error, not a no-op)."""
    known = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(changes) - known)
    if bad:
        raise ValueError(f"unknown {type(cfg).__name__} field(s): {', '.join(bad)}")
    return dataclasses.replace(cfg, **changes)


@dataclass(frozen=True)
class RunConfig:
    """A training run: which store, which model, how it is trained."""

    store: str  # path of the feature store folder
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def signature(self, store_signature: str) -> str:
        train = {k: v for k, v in to_dict(self.train).items() if k not in ("device",)}
        return signature(store_signature, self.model, train)
