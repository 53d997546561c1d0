"""The run folder: the one owner of `runs/<run signature>/` and every file in it (docs/formats.md).

`RunDir` names the files (config.json, config.toml, history.json, metrics.csv, best.pt, last.pt, result.json,
predictions.npz, and the run's TensorBoard folder beside it),
reads and writes them atomically, and says what state the run is in; `find_runs` lists the run folders
under a folder, and `best_run` picks the finished run with the best validation accuracy (never test).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from kws_hpc import io
from kws_hpc.errors import KwsError


@dataclass(frozen=True)
class RunDir:
    """One run folder; the files may or may not exist yet."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).expanduser())

    # --- the files ----------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def recipe(self) -> Path:
        """config.toml: the `[train]` config table that trains this run (`kws-hpc train --config`)."""
        return self.path / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    def tensorboard_dir(self, group: str) -> Path:
        """Where this run's TensorBoard event files go: RUNS/tensorboard/<group>/<signature>/ (group: a
        study's name for its trials), so one `tensorboard --logdir RUNS` shows every run by group."""
        return self.path.parent / "tensorboard" / group / self.signature

    def find_tensorboard(self) -> Optional[Path]:
        """The folder holding this run's event files, in whichever group it was trained (None: none)."""
        root = self.path.parent / "tensorboard"
        if not root.is_dir():
            return None
        found = sorted(p.parent for p in root.glob(f"**/{self.signature}/events.out.tfevents.*"))
        return found[0] if found else None

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def signature(self) -> str:
        return self.path.name

    # --- state --------------------------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        """A folder that a training run has started in (it has config.json)."""
        return self.config.is_file()

    @property
    def done(self) -> bool:
        return self.result.is_file()

    @property
    def resumable(self) -> bool:
        return self.last.is_file() and not self.done

    # --- reading ------------------------------------------------------------------------------
    def read_config(self) -> Optional[dict]:
        c = io.read_json(self.config)
        return c if isinstance(c, dict) else None

    def read_history(self) -> list:
        h = io.read_json(self.history)
        return h if isinstance(h, list) else []

    def read_result(self) -> Optional[dict]:
        """result.json when it is there and readable, else None."""
        r = io.read_json(self.result)
        return r if isinstance(r, dict) and "test_accuracy" in r else None

    def read_predictions(self) -> Optional[dict]:
        """The test-split arrays of predictions.npz, or None if the file is missing or unreadable."""
        import numpy as np

        try:
            with np.load(self.predictions, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None

    def load(self) -> dict:
        """A finished run: result.json plus `config`, `history` and `run_dir` (KwsError otherwise)."""
        result = self.read_result()
        if result is None:
            if self.result.is_file():
                raise KwsError(f"run {self.path}: result.json is unreadable; delete it and re-run kws-hpc "
                               "train with the same options to score the run again")
            state = "has not finished (no result.json)" if self.path.is_dir() else "does not exist"
            raise KwsError(f"run {self.path} {state}; run kws-hpc train with the same options to finish it")
        return {**result, "config": self.read_config() or {}, "history": self.read_history(),
                "run_dir": str(self.path)}

    # --- writing ------------------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        io.write_json(self.config, config)

    def write_recipe(self, text: str) -> None:
        io.write_text(self.recipe, text)

    def write_history(self, history: list) -> None:
        io.write_json(self.history, history)

    def write_result(self, result: dict) -> None:
        io.write_json(self.result, result)

    def write_predictions(self, **arrays) -> None:
        io.write_npz(self.predictions, **arrays)

    def save_checkpoint(self, checkpoint: dict, best: bool = False) -> None:
        io.save_torch(checkpoint, self.best if best else self.last)

    def lock(self, log=None):
        """The run's inter-process lock: one trainer per run folder at a time."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise KwsError(f"cannot create the runs folder {self.path.parent} ({e.strerror or e}); "
                           "choose another --out") from None
        return io.lock(self.path, what=f"run {self.signature}", log=log)


def load_run(path: str | Path) -> dict:
    """A finished run as one dict: result.json plus `config`, `history` and `run_dir`."""
    return RunDir(path).load()


def find_runs(root: str | Path, extra: Iterable[Path] = ()) -> list[RunDir]:
    """Every run folder (with config.json) under `root`, at any depth, plus `extra` ones; sorted, unique."""
    root = Path(root).expanduser()
    dirs = {p.parent.resolve() for p in root.rglob("config.json")} if root.is_dir() else set()
    dirs |= {Path(d).expanduser().resolve() for d in extra if (Path(d) / "config.json").is_file()}
    return [RunDir(d) for d in sorted(dirs) if RunDir(d).read_config() is not None]


def best_runs(runs: Iterable[RunDir], key: Callable[[RunDir], object] = lambda run: None,
              need_checkpoint: bool = False) -> dict:
    """{key(run): the finished run with the highest best_val_acc}; an exact tie goes to the higher test
    accuracy, then to the first run in path order. `need_checkpoint` skips runs without best.pt."""
    best: dict = {}
    for run in sorted(runs, key=lambda r: str(r.path)):
        r = run.read_result()
        if r is None or (need_checkpoint and not run.best.is_file()):
            continue
        k, score = key(run), (float(r.get("best_val_acc") or -1), float(r.get("test_accuracy") or -1))
        if k not in best or score > best[k][0]:
            best[k] = (score, run)
    return {k: v[1] for k, v in best.items()}


def best_run(root: str | Path, log: Callable[[str], None] = print) -> RunDir:
    """The finished run (result.json + best.pt) under `root` with the best validation accuracy."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise KwsError(f"runs folder {root} does not exist; give the --out folder of kws-hpc train")
    runs = find_runs(root)
    best = best_runs(runs, need_checkpoint=True).get(None)
    if best is None:
        unfinished = sum(1 for r in runs if not r.done)
        raise KwsError(f"no finished run (result.json + best.pt) under {root}"
                       + (f"; {unfinished} unfinished run(s) there: let them finish" if unfinished else ""))
    r = best.read_result()
    done = sum(1 for run in runs if run.done)
    log(f"best of {done} run(s): {best.path} (val acc {r['best_val_acc']:.4f}, "
        f"test acc {r['test_accuracy']:.4f})")
    return best
