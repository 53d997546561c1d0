"""Reading run folders for the report: what each run is, how far it got, and groups of seeds.

A run folder holds config.json and history.json while it trains and result.json plus
predictions.npz once it is done (docs/formats.md). Folders without result.json are kept as
incomplete runs with their last finished epoch, never dropped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kws_hpc.errors import KwsError
from kws_hpc.train.rundir import RunDir, best_runs
from kws_hpc.train.rundir import find_runs as find_run_dirs
from kws_hpc.report.compare import mean_std

MODEL_DEFAULTS = {"bidirectional": False, "head": "last", "conv_channels": 0}
HPARAMS = (("model", "hidden"), ("model", "layers"), ("model", "dropout"), ("train", "lr"),
           ("train", "weight_decay"), ("train", "batch_size"), ("train", "schedule"),
           ("train", "label_smoothing"), ("train", "time_masks"), ("train", "freq_masks"))
METRICS = ("test_accuracy", "macro_f1", "params", "seconds_per_epoch", "best_epoch", "epochs_run",
           "best_val_acc", "inference_ms_per_clip")


@dataclass
class Run:
    """One run folder as the report sees it."""

    dir: Path
    config: dict
    history: list = field(default_factory=list)
    result: Optional[dict] = None
    problem: str = ""  # why a folder that looks finished cannot be used (unreadable result.json, ...)
    trial: Optional[dict] = None  # the Optuna trial that trained it: {study, number, state}

    @property
    def folder(self) -> RunDir:
        return RunDir(self.dir)

    @property
    def signature(self) -> str:
        return str(self.config.get("run_signature") or self.dir.name)

    @functools.cached_property
    def tensorboard(self) -> Optional[Path]:
        """The folder of this run's TensorBoard event files (None when it wrote none)."""
        return self.folder.find_tensorboard()

    @property
    def model(self) -> dict:
        return dict(self.config.get("model") or {})

    @property
    def train(self) -> dict:
        return dict(self.config.get("train") or {})

    @property
    def family(self) -> str:
        return str(self.model.get("cell", "?"))

    @property
    def variant(self) -> str:
        return variant_of(self.model)

    @property
    def seed(self):
        return self.train.get("seed")

    @property
    def store_signature(self) -> str:
        return str(self.config.get("store_signature", ""))

    @property
    def complete(self) -> bool:
        return self.result is not None

    @property
    def name(self) -> str:
        """Short display name: family, variant and signature."""
        v = "" if self.variant == "base" else f" {self.variant}"
        return f"{self.family.upper()}{v} ({self.signature[:8]})"

    @property
    def pruned(self) -> bool:
        return not self.complete and (self.trial or {}).get("state") == "pruned"

    @property
    def status(self) -> str:
        """complete, pruned (stopped early by Optuna on purpose) or incomplete."""
        return "complete" if self.complete else "pruned" if self.pruned else "incomplete"

    def state_text(self) -> str:
        """What happened to the run, in words (for the tables and the notes)."""
        if self.complete:
            return f"complete ({self.result.get('stopped', '?')})"
        if self.problem:
            return f"unusable: {self.problem}"
        done = f"{self.last_epoch} of {self.train.get('epochs', '?')} epochs done"
        if self.pruned:
            return f"pruned by Optuna after {done.split(' of ')[0]} epoch(s)"
        resumable = "; resumable from last.pt" if self.folder.last.is_file() else ""
        return f"incomplete: {done}, no result.json{resumable}"

    @property
    def last_epoch(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    @property
    def group_key(self) -> str:
        """Same key = same store, model and training, differing at most in seed (and device)."""
        train = {k: v for k, v in self.train.items() if k not in ("seed", "device")}
        return json.dumps([self.store_signature, self.model, train], sort_keys=True)

    def predictions(self) -> Optional[dict]:
        """The test-split arrays of predictions.npz, or None if the file is missing or unreadable."""
        return self.folder.read_predictions()


def variant_of(model: dict) -> str:
    """What sets a model apart from the plain unidirectional RNN with a last-step head."""
    parts = []
    if model.get("bidirectional"):
        parts.append("bidirectional")
    if int(model.get("conv_channels") or 0) > 0:
        parts.append(f"CRNN {model['conv_channels']}x{model.get('conv_layers', '?')}")
    if model.get("head", "last") != "last":
        parts.append(f"{model['head']} head")
    return " + ".join(parts) or "base"


def load_run(run_dir: str | Path) -> Optional[Run]:
    """A Run from a folder with a run config.json, else None (not a run folder)."""
    folder = RunDir(run_dir)
    config = folder.read_config()
    if config is None or "model" not in config:
        return None
    run = Run(dir=folder.path, config=config, history=folder.read_history())
    if folder.done:
        run.result = folder.read_result()
        if run.result is None:
            run.problem = "its result.json is unreadable"
    return run


def find_runs(runs: Path, trials: tuple = ()) -> list[Run]:
    """Every run folder under `runs` (any depth) plus those Optuna `trials` name ({run_dir, study,
    number, state}), sorted by family, variant and signature."""
    runs = Path(runs).expanduser()
    if not runs.is_dir():
        raise KwsError(f"runs folder {runs} does not exist; train some runs first "
                       f"(kws-hpc train --out {runs})")
    by_dir = {Path(t["run_dir"]).expanduser().resolve(): t for t in trials}
    found = [r for r in (load_run(d.path) for d in find_run_dirs(runs, by_dir)) if r is not None]
    for r in found:
        r.trial = by_dir.get(r.dir)
    if not found:
        raise KwsError(f"no run folders (with config.json) under {runs}; train some runs first "
                       f"(kws-hpc train --out {runs})")
    return sorted(found, key=lambda r: (r.family, r.variant, r.signature))


def hparams(run: Run) -> dict:
    """The hyper-parameters worth showing beside a run's numbers."""
    sections = {"model": run.model, "train": run.train}
    return {name: sections[sec][name] for sec, name in HPARAMS if name in sections[sec]}


def group_runs(runs: list[Run]) -> list[dict]:
    """Complete runs grouped by config (differing only in seed): mean +- std of each metric."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.complete:
            groups.setdefault(r.group_key, []).append(r)
    out = []
    for members in groups.values():
        first = members[0]
        out.append({
            "family": first.family, "variant": first.variant, "store_signature": first.store_signature,
            "runs": [r.signature for r in members], "seeds": [r.seed for r in members],
            "hparams": hparams(first),
            "metrics": {m: mean_std([r.result.get(m) for r in members]) for m in METRICS},
        })
    return sorted(out, key=lambda g: (g["family"], -(g["metrics"]["best_val_acc"]["mean"] or 0)))


def best_by_family(runs: list[Run]) -> dict[str, Run]:
    """Per family, the complete run with the highest validation accuracy (never chosen on test)."""
    by_dir = {r.dir: r for r in runs}
    best = best_runs((r.folder for r in runs if r.complete), key=lambda d: by_dir[d.path].family)
    return {family: by_dir[d.path] for family, d in sorted(best.items())}


def run_row(run: Run) -> dict:
    """One flat row per run for results.csv / results.json (numbers copied from result.json)."""
    row = {"run_signature": run.signature, "status": run.status,
           "family": run.family, "variant": run.variant, "seed": run.seed,
           "store_signature": run.store_signature, "dir": str(run.dir)}
    res = run.result or {}
    row.update({m: res.get(m) for m in METRICS})
    row.update({"device": res.get("device"), "stopped": res.get("stopped"),
                "last_epoch": run.last_epoch, "epochs_planned": run.train.get("epochs"),
                "metrics_csv": str(run.folder.metrics) if run.folder.metrics.is_file() else None,
                "tensorboard": str(run.tensorboard) if run.tensorboard is not None else None,
                "problem": run.problem, "study": (run.trial or {}).get("study"),
                "trial": (run.trial or {}).get("number")})
    row.update({f"hp_{k}": v for k, v in hparams(run).items()})
    return row
