"""Retraining the best configuration of a study with several seeds and the full schedule.

`retrain_best` is what `kws-hpc sweep best --retrain` runs; the demo builds its calls with
`retrain_call` and runs both families side by side with `retrain`. Each retrain is an ordinary
`train()` run in the runs folder, so a second call finds it done.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

from kws_hpc.io import write_json
from kws_hpc.sweep.space import run_config
from kws_hpc.launch.storage import open_storage
from kws_hpc.sweep.studies import SweepSpec, best_trial, budget, read_spec


def retrain_job(spec: dict, params: dict, seed: int, epochs: int, out: str, study: Optional[str] = None) -> dict:
    """One retrain of a best configuration (a job: takes plain dicts, returns a small summary); its curves
    go to TensorBoard under OUT/tensorboard/<study>/retrain/ when the study's trials had theirs there."""
    from kws_hpc.train.loop import train
    from kws_hpc.train.epochlog import tensorboard_installed
    from kws_hpc.train.rundir import RunDir

    sweep = SweepSpec(**spec)
    board = f"{study}/retrain" if study and sweep.tensorboard and tensorboard_installed() else None
    run = train(run_config(sweep, params, seed=seed, epochs=epochs), out=out, progress=False, tensorboard=board)
    r = RunDir(run).load()
    return {"seed": seed, "run": str(run), "test_accuracy": r["test_accuracy"], "macro_f1": r["macro_f1"],
            "best_val_acc": r["best_val_acc"], "epochs_run": r["epochs_run"]}


def retrain_call(storage, name: str, seed: int, epochs: int, out: str | Path) -> tuple:
    """The arguments of `retrain_job` for the best trial of study `name`."""
    return (asdict(read_spec(storage, name)), dict(best_trial(storage, name).params), seed, epochs, str(out), name)


def retrain_runs(calls: list[tuple], job=None, log: Callable[[str], None] = print) -> Optional[list[dict]]:
    """Run `retrain_job(*call)` for each call: here (no executor) or as one job array, waiting for them;
    None when the job is submitted without waiting."""
    from kws_hpc.launch.executors import result, submit, submit_array, wait

    if job is None or job.executor is None:
        return [submit(retrain_job, *call) for call in calls]
    handles = submit_array(retrain_job, calls, job, log)
    if not job.wait:
        return None
    wait(handles, log=log)
    return [result(h) for h in handles]


def retrain_best(url: str, name: str, seeds: int = 3, epochs: int = 20, out: Optional[str] = None, job=None,
                 log: Callable[[str], None] = print) -> Optional[dict]:
    """Retrain the best trial of study `name` with seeds 0..seeds-1 and write OUT/best-<study>.json.

    `out` defaults to the study's runs folder. Returns what the file holds (None when not waiting)."""
    storage = open_storage(url)
    spec, trial = read_spec(storage, name), best_trial(storage, name)
    out = out or spec.out
    runs = retrain_runs([retrain_call(storage, name, seed, epochs, out) for seed in range(seeds)], job, log)
    if runs is None:
        return None
    acc = [r["test_accuracy"] for r in runs]
    spent = {k: v for k, v in budget(storage, name).items() if k in ("finished_trials", "trial_epochs")}
    summary = {"study": name, "storage": url, "model": spec.model, "store": spec.store,
               "best_trial": trial.number, "best_value": trial.value, "params": trial.params,
               "trial_run": trial.user_attrs.get("run"), "epochs": epochs, "budget": spent, "retrain": runs,
               "test_accuracy_mean": statistics.mean(acc),
               "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0}
    path = Path(out) / f"best-{name}.json"
    write_json(path, summary)
    summary["path"] = str(path)
    return summary
