"""The worker: runs trials of one study until it holds its target of finished (complete + pruned) trials.

The objective is a thin adapter around `train()`: suggest a config, report validation accuracy per
epoch for pruning, return the best. Workers record heartbeats; between trials a worker fails stale
trials (their worker was killed or pre-empted), which re-queues them with the same parameters, so the
retry trains into the same run folder and resumes from last.pt.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Callable

import optuna
from optuna.trial import TrialState

from kws_hpc.errors import KwsError
from kws_hpc.launch.optuna_compat import trial_state
from kws_hpc.runtime import set_threads
from kws_hpc.sweep.space import run_config, suggest
from kws_hpc.launch.storage import open_storage
from kws_hpc.sweep.studies import SPEC_ATTR, SweepSpec, counts, read_spec, study_id, trials_of


class OverBudget(Exception):
    """This trial was created after the study's budget was already taken by other workers."""


def objective(trial, spec: SweepSpec, log: Callable[[str], None] = print) -> float:
    """Thin adapter: suggest a config, train it (reporting val accuracy per epoch), return best val acc."""
    from kws_hpc.train.loop import run_dir, train
    from kws_hpc.train.epochlog import tensorboard_installed
    from kws_hpc.train.rundir import RunDir

    check_budget(trial, spec)
    cfg = run_config(spec, suggest(trial, spec.space))
    trial.set_user_attr("run", str(run_dir(cfg, spec.out)))

    def on_epoch(epoch: int, entry: dict) -> None:
        trial.report(entry["val_acc"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val acc {entry['val_acc']:.4f} at epoch {epoch}")

    board = trial.study.study_name if spec.tensorboard and tensorboard_installed() else None
    run = train(cfg, out=spec.out, on_epoch=on_epoch, log=lambda m: log(f"[trial {trial.number}] {m}"),
                progress=False, tensorboard=board)
    result = RunDir(run).load()
    for key in ("test_accuracy", "macro_f1", "params", "epochs_run"):
        trial.set_user_attr(key, result.get(key))
    return float(result["best_val_acc"])


def check_budget(trial, spec: SweepSpec) -> None:
    """Refuse a trial numbered past the budget: earlier trials that are finished, running or queued
    already make `spec.trials` (two workers asked at once). It fails before it has parameters."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    earlier = [t for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
    if len(earlier) >= spec.trials:
        trial.set_user_attr("over_budget", True)
        raise OverBudget(f"{len(earlier)} earlier trials already fill the budget of {spec.trials}")


def worker_seed(spec: SweepSpec, index: int, existing: int) -> int:
    """Each worker its own sampler seed, from the study seed, its index and the study's size when it
    starts (a requeued worker must not replay its first proposals)."""
    import numpy as np

    return int(np.random.SeedSequence([spec.seed, index, existing]).generate_state(1)[0])


def make_sampler(spec: SweepSpec, seed: int):
    """Seeded TPE; constant_liar makes parallel workers treat running trials as bad, so they spread out."""
    opts = {"n_startup_trials": 5, "multivariate": True, "constant_liar": True,
            **spec.space.get("sampler", {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, **opts)


def make_pruner(spec: SweepSpec):
    opts = dict(spec.space.get("pruner", {}))
    kind = opts.pop("type", "median")
    defaults = {"n_startup_trials": 3, "n_warmup_steps": 1}
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(**{**defaults, **opts})
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(**{"percentile": 25.0, **defaults, **opts})
    raise KwsError(f"unknown pruner {kind!r} in the search space: use median, percentile or none")


def run_worker(storage: str, name: str, index: int = 0, log: Callable[[str], None] = print) -> dict:
    """Run trials of study `name` until it holds its target of finished trials; returns a summary.

    Between trials the worker fails stale trials (re-queuing them), and while the rest of the budget
    is taken by running trials it waits for them, so a trial whose worker died is still retried.
    """
    t0 = time.time()
    spec = read_spec(open_storage(storage), name)
    if spec is None:
        raise KwsError(f"study {name} was not created by kws-hpc sweep run (no {SPEC_ATTR}); nothing to run")
    store = open_storage(storage, heartbeat=spec.heartbeat, grace=spec.grace)
    seed = worker_seed(spec, index, len(trials_of(store, name)))
    sid = study_id(store, name)
    study = optuna.load_study(study_name=name, storage=store, sampler=make_sampler(spec, seed),
                              pruner=make_pruner(spec))
    threads = set_threads(spec.threads)
    log(f"worker {index} on study {name} (pid {os.getpid()}, {threads} thread(s)): target {spec.trials} "
        "finished trials")
    done = optuna.study.MaxTrialsCallback(spec.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    mine, errors = [], 0
    while True:
        _fail_stale(study)
        c = counts(study.get_trials(deepcopy=False))
        if c["COMPLETE"] + c["PRUNED"] >= spec.trials:
            break
        if c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] + c["WAITING"] >= spec.trials and not c["WAITING"]:
            time.sleep(min(spec.heartbeat, 1))  # the last trials run elsewhere; stay to retry any that die
            continue
        last: list = []
        if not _one_trial(study, store, sid, spec, done, last, log):
            log(f"worker {index}: trial {last[0]} was failed by another worker (no heartbeat seen for "
                f"{spec.grace} s); its retry carries it on")
            continue
        if last[0].user_attrs.get("over_budget"):
            continue
        mine.append(last[0].number)
        errors = errors + 1 if last[0].state == TrialState.FAIL else 0
        if errors >= 3:
            raise KwsError(f"worker {index}: 3 trials in a row failed (last: {last[0].number}); "
                           "see the log above")
    c = counts(study.get_trials(deepcopy=False))
    log(f"worker {index} done: ran trials {mine}; study {name} has {c['COMPLETE']} complete, "
        f"{c['PRUNED']} pruned, {c['FAIL']} failed ({time.time() - t0:.1f} s)")
    return {"study": name, "worker": index, "trials": mine, "seconds": time.time() - t0}


def _one_trial(study, storage, sid: int, spec: SweepSpec, done, last: list, log) -> bool:
    """Run one trial; `last` gets its FrozenTrial. False when another worker failed it meanwhile
    (its heartbeat looked stale), which leaves `last` holding only its number."""
    started: list = []

    def run(trial):
        started.append(trial)
        return objective(trial, spec, log)

    try:
        study.optimize(run, n_trials=1, catch=(Exception,), gc_after_trial=True,
                       callbacks=[done, lambda s, t: last.append(t)])
        return True
    except Exception:
        if not started or not trial_state(storage, sid, started[0].number).is_finished():
            raise
        last.append(started[0].number)
        return False


def _fail_stale(study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
