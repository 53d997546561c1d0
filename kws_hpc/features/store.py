"""The HDF5 feature store: written once per signature, read whole into memory by training.

Layout of `OUT/<signature>/`: `train.h5`, `val.h5`, `test.h5`, `clips.tsv`, `summary.json` (and
`config.toml`, the `[features]` table of the command that built it). Each .h5
holds `features` [N, frames, n_mels], `labels` [N], `speaker` and `path` strings [N], `augmented` [N]
(0 = original, k = k-th augmented copy); train.h5 also `noise` [M, frames, n_mels], 1-s windows of the
training stretch of the background noise (the trainer's augmentation; absent without noise files), and
each file describes itself in attributes: `labels` (JSON class
order), `config` (feature config JSON), `data_config`, `signature`, `fingerprint`, and in train.h5
the per-mel `mean` and `std`. Files are written under a temporary name and renamed when complete;
summary.json is written last and marks the store complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from kws_hpc.config import SPLITS, DataConfig, FeatureConfig, from_dict, to_dict
from kws_hpc.errors import KwsError
from kws_hpc.io import read_json, temp_name

FORMAT_VERSION = 1
SUMMARY = "summary.json"  # written last: its presence marks the store complete
RECIPE = "config.toml"  # the [features] table of the command that built it (kws-hpc features --config reads it)
MANIFEST = "clips.tsv"  # one row per file seen (kws_hpc.data.split writes and reads the rows)
PARTIAL = ".partial"  # suffix of a split file being written (a killed job leaves one; the next run removes it)


@dataclass
class StoreInfo:
    """What a store says about itself (read from summary.json and train.h5)."""

    path: Path
    signature: str
    labels: list
    feature_config: FeatureConfig
    data_config: DataConfig
    fingerprint: str
    mean: np.ndarray
    std: np.ndarray
    summary: dict


@dataclass
class SplitData:
    """One split, read into memory."""

    features: np.ndarray  # [N, frames, n_mels] float32
    labels: np.ndarray  # [N] int64
    speakers: list
    paths: list
    augmented: np.ndarray  # [N] int8


def split_file(store_dir: Path, split: str) -> Path:
    return Path(store_dir) / f"{split}.h5"


def read_summary(store_dir: str | Path) -> Optional[dict]:
    """summary.json of a store, or None when it is missing or unreadable."""
    s = read_json(Path(store_dir) / SUMMARY)
    return s if isinstance(s, dict) else None


def is_complete(store_dir: Path) -> bool:
    return (store_dir / SUMMARY).is_file() and all(split_file(store_dir, s).is_file() for s in SPLITS)


def chunk_sums(chunk: np.ndarray, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel sum and sum of squares (float64) of stored features [rows, frames, n_mels]."""
    c64 = chunk.astype(np.float64).reshape(-1, n_mels)
    return c64.sum(0), np.einsum("ij,ij->j", c64, c64)


class SplitWriter:
    """One split file being written: chunks of features arrive in row order (from any number of places
    in a job), the per-mel mean and std accumulate in float64 as they pass, and `close` renames the
    finished file into place; `abort` removes it. `meta` holds the per-row arrays (labels, speaker,
    path, augmented); `with_stats` adds the mean and std (train.h5)."""

    def __init__(self, path: Path, n: int, meta: dict, attrs: dict, cfg: FeatureConfig, with_stats: bool,
                 noise: Optional[np.ndarray] = None):
        import h5py

        self.path, self.n, self.attrs, self.cfg, self.with_stats = Path(path), n, attrs, cfg, with_stats
        self.tmp = temp_name(self.path, PARTIAL)
        self.pos, self.s1, self.s2 = 0, np.zeros(cfg.n_mels), np.zeros(cfg.n_mels)
        self.f = h5py.File(self.tmp, "w")
        self.ds = self.f.create_dataset("features", shape=(n, cfg.frames, cfg.n_mels), dtype=cfg.dtype,
                                        chunks=(max(1, min(n, 256)), cfg.frames, cfg.n_mels) if n else None)
        self.f.create_dataset("labels", data=np.asarray(meta["labels"], dtype=np.int32))
        self.f.create_dataset("augmented", data=np.asarray(meta["augmented"], dtype=np.int8))
        str_t = h5py.string_dtype()
        self.f.create_dataset("speaker", data=np.asarray(meta["speaker"], dtype=object), dtype=str_t)
        self.f.create_dataset("path", data=np.asarray(meta["path"], dtype=object), dtype=str_t)
        if noise is not None and len(noise):
            self.f.create_dataset("noise", data=noise.astype(cfg.dtype))

    def append(self, chunk: np.ndarray, sums: Optional[tuple] = None) -> None:
        """Write the next rows; `sums` = `chunk_sums(chunk)` when the caller (a worker) already has them."""
        self.ds[self.pos:self.pos + len(chunk)] = chunk
        if self.with_stats:
            s1, s2 = sums if sums is not None else chunk_sums(chunk, self.cfg.n_mels)
            self.s1 += s1
            self.s2 += s2
        self.pos += len(chunk)

    def close(self) -> None:
        """Check every row arrived, write the attributes, and rename the file into place."""
        if self.pos != self.n:
            self.abort()
            raise RuntimeError(f"{self.path.name}: wrote {self.pos} rows, expected {self.n}")
        for k, v in self.attrs.items():
            self.f.attrs[k] = v
        if self.with_stats:
            count = max(1, self.n * self.cfg.frames)
            mean = self.s1 / count
            self.f.attrs["mean"] = mean.astype(np.float32)
            self.f.attrs["std"] = np.sqrt(np.maximum(self.s2 / count - mean ** 2, 1e-12)).astype(np.float32)
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def split_attrs(signature: str, fingerprint: str, labels: list, feat_cfg: FeatureConfig,
                data_cfg: DataConfig, split: str) -> dict:
    return {
        "signature": signature, "fingerprint": fingerprint, "split": split, "format_version": FORMAT_VERSION,
        "labels": json.dumps(labels), "config": json.dumps(to_dict(feat_cfg)),
        "data_config": json.dumps(to_dict(data_cfg)),
    }


DATASETS = ("features", "labels", "speaker", "path", "augmented")


def expected_rows(summary: dict, split: str) -> Optional[int]:
    """Rows a split file must hold according to summary.json (None when it does not say)."""
    try:
        total = int(summary["counts"][split]["total"])
    except (KeyError, TypeError, ValueError):
        return None
    return total * (1 + int(summary.get("augmented_copies") or 0)) if split == "train" else total


def check_split(path: Path, signature: str, rows: Optional[int] = None) -> str:
    """'' when the split file opens, belongs to store `signature`, holds all its datasets (`rows` rows,
    when given) and its last row reads; otherwise what is wrong with it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("signature") != signature:
                return f"belongs to store {f.attrs.get('signature')}, not {signature}"
            missing = [d for d in DATASETS if d not in f]
            if missing:
                return f"lacks the dataset(s) {', '.join(missing)}"
            n = len(f["labels"])
            if any(len(f[d]) != n for d in DATASETS):
                return "has datasets of different lengths"
            if rows is not None and n != rows:
                return f"holds {n} rows where summary.json says {rows}"
            if n:
                f["features"][n - 1]  # a file cut short fails here
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, RuntimeError on damaged files
        first = (str(e).splitlines() or [type(e).__name__])[0]
        return f"is unreadable or truncated ({first})"
    return ""


def problems(store_dir: Path, signature: Optional[str] = None) -> dict[str, str]:
    """{file name: what is wrong} for a store whose files are all there (empty when it is sound)."""
    summary = read_summary(store_dir)
    if summary is None or not (signature or summary.get("signature")):
        return {SUMMARY: "is unreadable"}
    signature = signature or summary["signature"]
    out = {}
    for split in SPLITS:
        why = check_split(split_file(store_dir, split), signature, expected_rows(summary, split))
        if why:
            out[f"{split}.h5"] = why
    return out


def open_store(store_dir: str | Path) -> StoreInfo:
    """Open a complete, sound store; a missing, unfinished or damaged one is a clear error."""
    import h5py

    p = Path(store_dir).expanduser()
    if not p.is_dir():
        raise KwsError(f"feature store {p} does not exist; build it with kws-hpc features --data PATH")
    if not is_complete(p):
        missing = [n for n in [SUMMARY] + [f"{s}.h5" for s in SPLITS] if not (p / n).is_file()]
        raise KwsError(f"feature store {p} is unfinished (missing {', '.join(missing)}); "
                       "re-run kws-hpc features with the same options to complete it")
    bad = problems(p)
    if bad:
        name, why = next(iter(bad.items()))
        raise KwsError(f"feature store {p}: {name} {why}; re-run kws-hpc features with the same options "
                       "(it rebuilds damaged files)")
    summary = read_summary(p)
    with h5py.File(split_file(p, "train"), "r") as f:
        a = dict(f.attrs)
    return StoreInfo(
        path=p, signature=str(a["signature"]), labels=json.loads(a["labels"]),
        feature_config=from_dict(FeatureConfig, json.loads(a["config"])),
        data_config=from_dict(DataConfig, json.loads(a["data_config"])),
        fingerprint=str(a["fingerprint"]), mean=np.asarray(a["mean"], np.float32),
        std=np.asarray(a["std"], np.float32), summary=summary,
    )


def load_split(store_dir: str | Path, split: str, expect_signature: Optional[str] = None) -> SplitData:
    """Read a whole split into memory (float32); checks the file belongs to the expected store."""
    import h5py

    if split not in SPLITS:
        raise KwsError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    path = split_file(store_dir, split)
    if not path.is_file():
        raise KwsError(f"{path} is missing; re-run kws-hpc features to complete the store")
    try:
        with h5py.File(path, "r") as f:
            if expect_signature is not None and f.attrs.get("signature") != expect_signature:
                raise KwsError(f"{path} belongs to store {f.attrs.get('signature')}, expected {expect_signature}")
            return SplitData(
                features=f["features"][...].astype(np.float32),
                labels=f["labels"][...].astype(np.int64),
                speakers=[s.decode() if isinstance(s, bytes) else s for s in f["speaker"][...]],
                paths=[s.decode() if isinstance(s, bytes) else s for s in f["path"][...]],
                augmented=f["augmented"][...],
            )
    except KwsError:
        raise
    except Exception as e:  # a file damaged after open_store checked it
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise KwsError(f"{path} is unreadable or truncated ({first}); re-run kws-hpc features with the same "
                       "options (it rebuilds damaged files)") from None


def load_noise(store_dir: str | Path) -> Optional[np.ndarray]:
    """The store's background-noise windows [M, frames, n_mels] float32 (None when it has none)."""
    import h5py

    try:
        with h5py.File(split_file(store_dir, "train"), "r") as f:
            return f["noise"][...].astype(np.float32) if "noise" in f else None
    except OSError:
        return None


def check_compatible(info: StoreInfo, labels: list, feature_config: dict | FeatureConfig, what: str) -> None:
    """Refuse a store whose label order or feature config differs from `what` (a checkpoint, say)."""
    if list(info.labels) != list(labels):
        raise KwsError(f"{what} was trained on labels {labels} but store {info.path} has {info.labels}; "
                       "use a store built with the same vocabulary")
    theirs = to_dict(feature_config) if not isinstance(feature_config, dict) else feature_config
    ours = to_dict(info.feature_config)
    diff = [f"{k}: {theirs.get(k)} vs {ours.get(k)}" for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)]
    if diff:
        raise KwsError(f"{what} used a different feature config than store {info.path} ({'; '.join(diff)}); "
                       "rebuild the store with the checkpoint's feature settings")


def summarize(clips, labels, sig, fingerprint, data, feat_cfg, data_cfg, seconds, noise: Optional[dict] = None
              ) -> dict:
    """summary.json of a finished store: its configs, class counts per split, skipped and bad clips, and
    `noise`: the background noise files read and those that could not be ({path, reason})."""
    from collections import Counter

    from kws_hpc.data import split as D

    skipped = Counter(c.reason.split(":")[0] for c in clips if c.reason)
    bad = [{"path": c.path, "reason": c.reason} for c in clips
           if c.reason and not c.reason.startswith(("word not in", "unknown word not", "over quota"))]
    return {
        "signature": sig, "fingerprint": fingerprint, "data": str(Path(data).resolve()), "labels": labels,
        "feature_config": to_dict(feat_cfg), "data_config": to_dict(data_cfg),
        "counts": D.split_counts(clips, labels, data_cfg),
        "augmented_copies": data_cfg.augment,
        "clips_seen": len([c for c in clips if c.label != D.SILENCE]),
        "skipped": dict(skipped), "bad_clips": bad,
        "noise": noise if noise is not None else {"files": [], "unreadable": []}, "seconds": round(seconds, 2),
    }


def log_summary(summary: dict, log) -> None:
    """The feature job's closing lines."""
    c = summary["counts"]
    log(f"store {summary['signature']}: {len(summary['labels'])} classes, train {c['train']['total']}"
        f" (+{summary['augmented_copies']}x augmented), val {c['val']['total']}, test {c['test']['total']} clips"
        f" in {summary['seconds']:.1f} s")
    if summary["bad_clips"]:
        log(f"skipped {len(summary['bad_clips'])} unusable clip(s); reasons in clips.tsv and summary.json")
