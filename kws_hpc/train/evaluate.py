"""Scoring a model on a split, and reading runs and checkpoints back.

`load_checkpoint` rebuilds the model from the checkpoint file alone (model config, label order,
feature config and normalisation are all inside it); `evaluate` scores it on any compatible store.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from kws_hpc.config import ModelConfig, from_dict
from kws_hpc.errors import KwsError
from kws_hpc.train.models import KwsRNN, build_model
from kws_hpc.train.rundir import RunDir

EVAL_BATCH = 512


@torch.no_grad()
def predict(model: KwsRNN, features: torch.Tensor, device: torch.device, amp: bool = False,
            batch_size: int = EVAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, C] and penultimate embeddings [N, D] (float32, on the CPU) in eval mode."""
    model.eval()
    logits, embeds = [], []
    for i in range(0, len(features), batch_size):
        x = features[i:i + batch_size].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            e = model.embed(x)
            z = model.classifier(e)
        logits.append(z.float().cpu())
        embeds.append(e.float().cpu())
    if not logits:
        return torch.zeros(0, model.classifier.out_features), torch.zeros(0, model.classifier.in_features)
    return torch.cat(logits), torch.cat(embeds)


def metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = true)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    per_class = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                       "support": int(s[i])} for i, lab in enumerate(labels)}
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).astype(int).tolist(),
        "labels": list(labels),
    }


def inference_ms(model: KwsRNN, features: torch.Tensor, clips: int = 50, warmup: int = 5) -> float:
    """Median milliseconds of a batch-1 forward pass on the CPU with one thread (a laptop's view)."""
    m = copy.deepcopy(model).cpu().float().eval()
    x = features[:max(1, clips)].cpu().float()
    if len(x) == 0:
        return float("nan")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        with torch.inference_mode():
            for i in range(warmup):
                m(x[i % len(x)].unsqueeze(0))
            for i in range(clips):
                t0 = time.perf_counter()
                m(x[i % len(x)].unsqueeze(0))
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(threads)
    return float(statistics.median(times))


def checkpoint_path(path: str | Path) -> Path:
    """A run folder means its best.pt; a file is taken as it is."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = RunDir(p).best
    if not p.is_file():
        raise KwsError(f"checkpoint {p} does not exist; give a run folder with best.pt or a .pt file")
    return p


def load_checkpoint(path_or_run_dir: str | Path, map_location="cpu") -> tuple[KwsRNN, dict]:
    """Rebuild the model from a checkpoint alone; returns (model in eval mode, the checkpoint dict).

    Refuses (KwsError) a file that is not a checkpoint or lacks its label order or feature config.
    """
    p = checkpoint_path(path_or_run_dir)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated file or a foreign pickle: one clear line either way
        raise KwsError(f"{p} is not a readable checkpoint ({type(e).__name__}: {e})".splitlines()[0]) from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise KwsError(f"{p} is not a kws-hpc checkpoint (no model or model_config)")
    missing = [k for k in ("labels", "feature_config") if not ckpt.get(k)]
    if missing:
        raise KwsError(f"checkpoint {p} lacks {' and '.join(missing)}; it cannot be used safely. "
                       "Re-train or re-export it with this version")
    cfg = from_dict(ModelConfig, ckpt["model_config"])
    model = build_model(cfg, int(ckpt["feature_config"]["n_mels"]), len(ckpt["labels"]))
    model.load_state_dict(ckpt["model"])
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval(), ckpt


def evaluate_checkpoint(checkpoint: str | Path, store: str | Path, split: str = "test", device: str = "cpu") -> dict:
    """Score a checkpoint on a store's split; refuses a store with other labels or feature config."""
    from kws_hpc.runtime import get_device
    from kws_hpc.features.store import check_compatible, load_split, open_store

    dev = get_device(device)
    model, ckpt = load_checkpoint(checkpoint, map_location="cpu")
    info = open_store(store)
    what = f"checkpoint {checkpoint_path(checkpoint)}"
    check_compatible(info, ckpt["labels"], ckpt["feature_config"], what=what)
    data = load_split(info.path, split, expect_signature=info.signature)
    logits, _ = predict(model.to(dev), torch.from_numpy(data.features), dev)
    y_pred = logits.argmax(1).numpy()
    out = {"checkpoint": str(checkpoint_path(checkpoint)), "store": str(info.path), "split": split,
           "clips": int(len(data.labels))}
    out.update(metrics(data.labels, y_pred, ckpt["labels"]))
    return out
