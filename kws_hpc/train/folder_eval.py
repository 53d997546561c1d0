"""Scoring a checkpoint on any Speech Commands layout folder (or .tar.gz), no store built by hand.

Each `<word>/<file>.wav` whose word is one of the model's keywords counts as that keyword; any other
word counts as `_unknown_` when the model has that class and is left out otherwise (said in the result).
Clips are read in one pass (also from an archive), padded the way the model's store padded them (zeros
for a store made before `--pad`) and turned into log-mels with the
model's own feature config, then scored like `evaluate --store`. `split` picks the clips: `all`, or one
split by the data set's hash rule (`rule="hash"`) or its official lists (`rule="official"`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from kws_hpc.config import BACKGROUND, SILENCE, UNKNOWN, FeatureConfig, from_dict
from kws_hpc.errors import KwsError

BATCH = 256  # clips decoded and featurised at a time


def _clips(source, labels: list, split: str, rule: str, percents: tuple) -> tuple[list, Counter]:
    """[(path, label index)] of the folder's clips the model can be scored on, and why others were not.
    The hash rule uses the run's store's validation and test percentages."""
    from kws_hpc.data.split import _official_lists, hash_split

    try:
        lists = _official_lists(source) if split != "all" and rule == "official" else None
    except KwsError:
        raise KwsError(f"--rule official needs validation_list.txt and testing_list.txt in {source.location}; "
                       "use --rule hash or --split all") from None
    index = {lab: i for i, lab in enumerate(labels)}
    out, left = [], Counter()
    for e in source.files():
        word, _, name = e.path.partition("/")
        if not name or word == BACKGROUND or not name.lower().endswith(".wav"):
            continue
        if split != "all":
            where = hash_split(e.path, *percents) if lists is None else \
                "val" if e.path in lists[0] else "test" if e.path in lists[1] else "train"
            if where != split:
                continue
        label = word if word in index and not word.startswith("_") else UNKNOWN if UNKNOWN in index else None
        if label is None:
            left["word not in the model's labels"] += 1
            continue
        out.append((e.path, index[label]))
    return out, left


def evaluate_folder(checkpoint: str | Path, data: str | Path, split: str = "all", rule: str = "hash",
                    device: str = "cpu", log: Callable[[str], None] = print) -> dict:
    """Accuracy, macro-F1, per-class metrics and confusion of a checkpoint on the clips of `data`."""
    from kws_hpc.data.source import BadClip, decode_wav, open_source
    from kws_hpc.features.logmel import log_mels
    from kws_hpc.features.padding import clip_rng, pad_clip
    from kws_hpc.runtime import get_device
    from kws_hpc.train.evaluate import checkpoint_path, load_checkpoint, metrics, predict

    if split not in ("all", "train", "val", "test") or rule not in ("hash", "official"):
        raise KwsError(f"--split {split} / --rule {rule}: use all|train|val|test and hash|official")
    model, ckpt = load_checkpoint(checkpoint)
    labels = list(ckpt["labels"])
    fc = from_dict(FeatureConfig, ckpt["feature_config"])
    data_cfg = ckpt.get("data_config") or {}
    pad = data_cfg.get("pad", "zeros")  # a store made before --pad padded with zeros
    seed = int(data_cfg.get("seed", 0))
    percents = (float(data_cfg.get("val_percent", 10.0)), float(data_cfg.get("test_percent", 10.0)))
    source = open_source(data)
    clips, left = _clips(source, labels, split, rule, percents)
    if not clips:
        words = ", ".join(sorted({lab for lab in labels if not lab.startswith("_")}))
        raise KwsError(f"no clip of {data} ({split}) can be scored: the model knows {words}"
                       f"{' and _unknown_' if UNKNOWN in labels else ''}; give a folder of <word>/<clip>.wav")
    dev = get_device(device)
    model = model.to(dev)
    label_of = dict(clips)
    y_true, y_pred, bad, waves, ys = [], [], [], [], []

    def score() -> None:
        feats = log_mels(np.stack(waves), fc)
        y_pred.extend(predict(model, torch.from_numpy(feats), dev)[0].argmax(1).tolist())
        y_true.extend(ys)
        waves.clear()
        ys.clear()
        log(f"scored {len(y_true) + len(bad)}/{len(clips)} clips")

    for path, payload in source.iter_bytes(list(label_of)):  # one pass, also over an archive
        try:
            wave = decode_wav(payload, fc.sample_rate)
        except BadClip as e:
            bad.append({"path": path, "reason": str(e)})
            continue
        waves.append(pad_clip(wave, fc.clip_samples, pad, clip_rng(path, seed)))
        ys.append(label_of[path])
        if len(waves) == BATCH:
            score()
    if waves:
        score()
    if not y_true:
        raise KwsError(f"every clip of {data} is unusable ({bad[0]['reason']}, ...); check the files")
    out = {"checkpoint": str(checkpoint_path(checkpoint)), "data": str(Path(data).resolve()), "split": split,
           "rule": rule, "pad": pad, "clips": len(y_true), "left_out": dict(left), "bad_clips": bad,
           "not_scored": [SILENCE] if SILENCE in labels else []}
    out.update(metrics(np.asarray(y_true), np.asarray(y_pred), labels))
    return out
