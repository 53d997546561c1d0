"""Export a checkpoint into one self-contained ONNX file for the live detector, checked for parity.

`export_checkpoint` rebuilds the model from the checkpoint alone (refusing one without its label order or
feature config), converts it to ONNX, runs the ONNX graph and the checkpoint on the stored test clips of
the run's store and refuses to write when they differ by more than 1e-4, calibrates the threshold on the
validation split for a false-alarm budget (`evaluate.calibrate`), and writes graph + metadata under a temporary
name, renamed at the end. Several checkpoints of the same labels and feature config export as one graph
that averages their posteriors (`evaluate.scorer`), calibrated as one detector.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kws_hpc import __version__
from kws_hpc.config import FeatureConfig, from_dict, to_dict
from kws_hpc.deploy.onnx_model import FORMAT, FORMAT_VERSION, load_exported, with_metadata
from kws_hpc.errors import KwsError
from kws_hpc.evaluate.calibrate import CALIBRATION_MINUTES, FA_BUDGET, NEGATIVE_MINUTES, calibrate
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.scorer import OnnxScorer, TorchScorer, members, one_thread, to_onnx
from kws_hpc.io import write_bytes
from kws_hpc.train.rundir import RunDir

PARITY_TOLERANCE = 1e-4  # max |logit difference| between the exported graph and the checkpoint
PARITY_CLIPS = 1000  # test clips compared (all when fewer)


def parity(model, scorer, features: np.ndarray, chunk_frames: int = 10, batch: int = 64) -> dict:
    """Max |logit difference| of the exported graph vs the model: full windows and, when it can, stepping."""
    ref = TorchScorer(model)
    diff, agree, stream = 0.0, 0, None
    for i in range(0, len(features), batch):
        x = features[i:i + batch]
        a, b = ref.window(x), scorer.window(x)
        diff = max(diff, float(np.abs(a - b).max()))
        agree += int(np.sum(a.argmax(1) == b.argmax(1)))
    if scorer.can_stream:  # a few clips stepped hop by hop, state carried, against the full window
        x, state, stream = features[:16], None, 0.0
        for t in range(0, x.shape[1], chunk_frames):
            logits, state = scorer.step(x[:, t:t + chunk_frames], state)
        stream = float(np.abs(logits - ref.window(x)).max())
    return {"clips": int(len(features)), "max_abs_diff": diff, "same_argmax": agree / max(1, len(features)),
            "stream_max_abs_diff": stream,
            "stream_clips": min(16, len(features)) if stream is not None else 0}


def _parity_inputs(store: Optional[Path], labels, fc: FeatureConfig, model, what: str
                   ) -> tuple[np.ndarray, str]:
    """Test clips of the store (checked to match the checkpoint), else inputs drawn from its normalisation."""
    from kws_hpc.features.store import check_compatible, load_split, open_store

    if store is not None and Path(store).is_dir():
        info = open_store(store)
        check_compatible(info, labels, fc, what)
        feats = load_split(info.path, "test", expect_signature=info.signature).features[:PARITY_CLIPS]
        if len(feats):
            return feats, f"{len(feats)} test clips of store {info.path}"
    rng = np.random.default_rng(0)
    mean, std = members(model)[0].feat_mean.numpy(), members(model)[0].feat_std.numpy()
    feats = (mean + std * rng.standard_normal((64, fc.frames, fc.n_mels))).astype(np.float32)
    return feats, "64 random inputs at the training normalisation (the run's store is not reachable)"


def _norm(model) -> dict:
    return {"mean": model.feat_mean.tolist(), "std": model.feat_std.tolist(),
            "applied": "inside the graph: (features - mean) / std"}


def _source(ckpt: dict, path: Path, run: Optional[Path]) -> dict:
    out = {"checkpoint": str(path.resolve()), "epoch": ckpt.get("epoch"),
           "best_val_acc": ckpt.get("best_val_acc"),
           "run_signature": ckpt.get("run_signature"), "store_signature": ckpt.get("store_signature")}
    r = RunDir(run).read_result() if run is not None else None
    if r is not None:
        out.update(test_accuracy=r.get("test_accuracy"), macro_f1=r.get("macro_f1"))
    return out


def export_checkpoint(target, out: str | Path, best: Optional[str | Path] = None,
                      store: Optional[str | Path] = None, calibrate_minutes: float = CALIBRATION_MINUTES,
                      detector: Optional[DetectorConfig] = None, log: Callable[[str], None] = print,
                      fa_per_hour: float = FA_BUDGET, negative_minutes: float = NEGATIVE_MINUTES) -> Path:
    """Export RUN/best.pt, a checkpoint file, or the best run under `best` into the ONNX file `out`; a list
    of runs / checkpoints exports them averaged.

    The threshold is the one with the fewest misses on a `calibrate_minutes` validation keyword stream
    whose false alarms on a `negative_minutes` validation stream without keywords stay <= `fa_per_hour`.
    """
    with one_thread():
        return _export(target, out, best, store, (calibrate_minutes, negative_minutes, fa_per_hour),
                       detector, log)


def _load(path: Path, first: Optional[tuple] = None) -> tuple:
    """(model, checkpoint, labels, feature config) of a checkpoint that can be exported (beside `first`'s)."""
    from kws_hpc.train.evaluate import load_checkpoint

    model, ckpt = load_checkpoint(path)
    labels, fc_dict = ckpt.get("labels"), ckpt.get("feature_config")
    if not labels or not fc_dict:  # load_checkpoint refuses these too; never export without them
        raise KwsError(f"checkpoint {path} lacks its label order or feature config; it cannot be exported")
    fc = from_dict(FeatureConfig, fc_dict)
    if model.classifier.out_features != len(labels) or model.feat_mean.numel() != fc.n_mels:
        raise KwsError(f"checkpoint {path}: {len(labels)} labels / {fc.n_mels} mels do not fit the model's "
                       f"{model.classifier.out_features} outputs / {model.feat_mean.numel()} inputs")
    if first is not None and (list(labels) != list(first[2]) or fc != first[3]):
        what = "label order" if list(labels) != list(first[2]) else "feature config"
        raise KwsError(f"checkpoint {path} has another {what} than {first[1]['path']}; models averaged into one "
                       "file must be trained on stores of the same labels and features")
    ckpt["path"] = path
    return model, ckpt, labels, fc


def _export(target, out, best, store, calibration: tuple, detector, log) -> Path:
    from kws_hpc.train.evaluate import checkpoint_path
    from kws_hpc.train.rundir import best_run

    targets = list(target) if isinstance(target, (list, tuple)) else [] if target is None else [target]
    if (not targets) == (best is None):
        raise KwsError("give either a run folder / checkpoint or --best RUNS (one of them)")
    out = Path(out).expanduser()
    if out.suffix.lower() != ".onnx":
        raise KwsError(f"--out {out}: the exported file is ONNX; name it *.onnx")
    paths = [checkpoint_path(t) for t in targets] or [checkpoint_path(best_run(best, log).path)]
    if len(set(p.resolve() for p in paths)) < len(paths):
        raise KwsError("the same checkpoint is given twice; average different runs")
    loaded = [_load(paths[0])]
    loaded += [_load(p, loaded[0]) for p in paths[1:]]
    models = [m for m, _, _, _ in loaded]
    model = models[0] if len(models) == 1 else models
    _, ckpt, labels, fc = loaded[0]
    path = paths[0]
    runs = [p.parent if RunDir(p.parent).is_run else None for p in paths]
    run = runs[0]
    if store is None and run is not None:
        store = (RunDir(run).read_config() or {}).get("store")
    store = Path(store).expanduser() if store else None

    t0 = time.perf_counter()
    graph = to_onnx(model, fc.frames)
    scorer = OnnxScorer(graph)
    feats, where = _parity_inputs(store, labels, fc, models[0], f"checkpoint {path}")
    par = parity(model, scorer, feats)
    par["inputs"] = where
    stream_txt = (f", stepped {par['stream_clips']} clips hop by hop: {par['stream_max_abs_diff']:.2e}"
                  if par["stream_max_abs_diff"] is not None else "")
    log(f"parity on {where}: max |logit difference| {par['max_abs_diff']:.2e} "
        f"(tolerance {PARITY_TOLERANCE:g}), same prediction on {100 * par['same_argmax']:.1f} %{stream_txt}")
    worst = max(par["max_abs_diff"], par["stream_max_abs_diff"] or 0.0)
    if not worst <= PARITY_TOLERANCE:
        raise KwsError(f"exported model differs from checkpoint {', '.join(map(str, paths))} by {worst:.2e} > "
                       f"{PARITY_TOLERANCE:g}; nothing written to {out}")
    minutes, negative_minutes, budget = calibration
    cfg, calib = calibrate(scorer, labels, fc, store if store is not None and store.is_dir() else None,
                           detector or DetectorConfig(), minutes, log, budget, negative_minutes)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(labels),
            "feature_config": to_dict(fc), "model_config": ckpt["model_config"],
            "normalization": _norm(models[0]),
            "detector": cfg.as_dict(), "calibration": calib, "parity": par,
            "streaming": {"state_size": scorer.state_size} if scorer.can_stream else None,
            "source": _source(ckpt, path, run), "exported_by": f"kws-hpc {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if len(models) > 1:
        meta["averaged"] = {"how": "the mean of the members' posteriors (softmax); the graph returns its log",
                            "members": [{"model_config": c["model_config"], "normalization": _norm(m),
                                         "source": _source(c, c["path"], r)}
                                        for (m, c, _, _), r in zip(loaded, runs)]}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, with_metadata(graph, meta))
    load_exported(out)  # the written file opens and describes itself
    log(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {len(labels)} labels, "
        + (f"{len(models)} models averaged, " if len(models) > 1 else "") +
        f"threshold {cfg.threshold:g}, {time.perf_counter() - t0:.1f} s)")
    return out
