"""Optuna studies and workers: one study per model family, many workers on it at once.

A study carries its own description (the `SweepSpec`: store, model, search space, runs folder,
target number of trials), so a worker needs only the storage and the study name; K workers on one
storage run until the study holds exactly `trials` finished (complete or pruned) trials. Every trial
is the same `train()` as `kws-hpc train` and leaves its run folder (trial user attr `run`).

Crashes: workers record a heartbeat; a trial whose heartbeat is older than the grace period (its
worker was killed or pre-empted) is failed by the next worker that looks and re-queued with the
same parameters, so its retry trains into the same run folder and resumes from last.pt.

Storage: the default is a journal file (Optuna's JournalFileBackend, whose lock works on NFS), fit
for many processes on one machine or on a shared filesystem; any RDB URL works too.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the protocol optuna's heartbeat machinery calls
from optuna.trial import TrialState

from .config import ModelConfig, RunConfig, TrainConfig, replace
from .errors import KwsError
from .store import open_store

SPEC_ATTR = "kws_spec"
SWEEPS_DIR = Path(__file__).resolve().parents[1] / "sweeps"
MODEL_FIELDS = set(ModelConfig.__dataclass_fields__) - {"cell"}
TRAIN_FIELDS = set(TrainConfig.__dataclass_fields__) - {"seed", "device"}
SEARCH_KEYS = ("store", "model", "space", "out", "seed")


@dataclass(frozen=True)
class SweepSpec:
    """What a study searches; stored in the study itself (user attr `kws_spec`)."""

    store: str  # feature store folder (absolute)
    model: str  # gru | lstm
    space: dict  # search space: {"params": {...}, "fixed": {...}, "sampler": {...}, "pruner": {...}}
    out: str  # runs folder (absolute); every trial leaves OUT/<run signature>/
    trials: int = 20  # finished (COMPLETE + PRUNED) trials the study aims for
    seed: int = 0  # study seed: worker k's sampler seed derives from it
    workers: int = 1  # workers launched together, all studies (a local worker gets cores / workers threads)
    device: str = "auto"
    heartbeat: int = 30  # seconds between a running trial's heartbeats
    grace: int = 120  # a running trial silent this long is failed and retried


# --- search spaces --------------------------------------------------------------------------------

def find_space(name: str) -> Path:
    """A search-space path: NAME as given, ./sweeps/NAME(.toml), or the checkout's sweeps/NAME(.toml)."""
    candidates = [Path(name).expanduser()]
    if not name.endswith(".toml"):
        candidates += [Path("sweeps") / f"{name}.toml", SWEEPS_DIR / f"{name}.toml"]
    for path in candidates:
        if path.is_file():
            return path
    known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.toml"))) if SWEEPS_DIR.is_dir() else "none"
    raise KwsError(f"no search space {name!r} (looked in ./sweeps and {SWEEPS_DIR}); known: {known}")


def load_space(name: str, epochs: Optional[int] = None) -> dict:
    """Read and check a search space file; `epochs` overrides its fixed epochs."""
    import tomllib

    path = find_space(name)
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KwsError(f"search space {path} is not valid TOML: {e}") from None
    space = {"params": {k: _param(path, k, p) for k, p in raw.get("params", {}).items()},
             "fixed": dict(raw.get("fixed", {})), "sampler": dict(raw.get("sampler", {})),
             "pruner": dict(raw.get("pruner", {"type": "median"}))}
    bad = sorted(k for k in [*space["params"], *space["fixed"]] if k not in MODEL_FIELDS | TRAIN_FIELDS)
    if bad:
        raise KwsError(f"search space {path}: {', '.join(bad)} not a model or training option; "
                       f"use {', '.join(sorted(MODEL_FIELDS | TRAIN_FIELDS))}")
    if epochs is not None:
        space["fixed"]["epochs"] = epochs
    return space


def _param(path: Path, key: str, p) -> dict:
    """Normalise one parameter: a list is categorical; a table has type int|float|categorical."""
    if isinstance(p, list) and p:
        return {"type": "categorical", "choices": p}
    kind = p.get("type") if isinstance(p, dict) else None
    if kind == "categorical" and p.get("choices"):
        return dict(p)
    if kind in ("int", "float") and "low" in p and "high" in p and p["low"] <= p["high"]:
        return dict(p)
    raise KwsError(f"search space {path}: parameter {key!r} needs a list of choices, or "
                   "{type = \"int\"|\"float\", low = .., high = .., log = true|false} with low <= high")


def suggest(trial, space: dict) -> dict:
    """trial.suggest_* for every parameter of the space; returns {name: value}."""
    values = {}
    for name, p in space["params"].items():
        if p["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, p["choices"])
        elif p["type"] == "int":
            values[name] = trial.suggest_int(name, p["low"], p["high"], step=p.get("step", 1),
                                             log=p.get("log", False))
        else:
            values[name] = trial.suggest_float(name, p["low"], p["high"], step=p.get("step"),
                                               log=p.get("log", False))
    return values


def run_config(spec: SweepSpec, params: dict, seed: int = 0, epochs: Optional[int] = None) -> RunConfig:
    """The RunConfig of a parameter set: fixed values, then the parameters, the model family and seed."""
    values = {**spec.space["fixed"], **params}
    model = replace(ModelConfig(cell=spec.model), **{k: v for k, v in values.items() if k in MODEL_FIELDS})
    train = replace(TrainConfig(seed=seed, device=spec.device),
                    **{k: v for k, v in values.items() if k in TRAIN_FIELDS})
    if epochs is not None:
        train = replace(train, epochs=epochs)
    return RunConfig(store=spec.store, model=model, train=train)


# --- storage --------------------------------------------------------------------------------------

def default_storage(out: str | Path = "runs") -> str:
    return str(Path(out).expanduser().resolve() / "studies.journal")


def storage_url(storage: Optional[str], out: str | Path = "runs") -> str:
    """Absolute storage location (jobs may start in another folder): URL, journal or SQLite path."""
    if not storage:
        return default_storage(out)
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(storage[len("sqlite:///"):]).expanduser().resolve())
    if "://" in storage:
        return storage
    path = Path(storage).expanduser().resolve()
    return f"sqlite:///{path}" if path.suffix in (".db", ".sqlite", ".sqlite3") else str(path)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """JournalStorage with Optuna's heartbeat protocol, which Optuna itself gives only RDB storages.

    A heartbeat is a trial system attr holding the time; a RUNNING trial whose last heartbeat (or
    start) is older than the grace period is stale, and `study.optimize` fails and retries it.
    """

    def __init__(self, backend, heartbeat_interval=None, grace_period=None, stale_callback=None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            pass  # the trial finished between two beats

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period or 2 * (self.heartbeat_interval or 60)
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.system_attrs.get("heartbeat")
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is not None and time.time() - last > grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self):
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_callback

    def get_failed_trial_callback(self):  # the name optuna < 4.9 asks for
        return self.stale_callback


def open_storage(url: str, heartbeat: Optional[int] = None, grace: Optional[int] = None):
    """An Optuna storage for `url`: an RDB URL, or a journal file (created if missing).

    With `heartbeat`, running trials record heartbeats and stale ones are failed and retried.
    """
    retry = _retry_callback() if heartbeat else None
    if "://" in url:
        kw = {}
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            kw = {"engine_kwargs": {"connect_args": {"timeout": 60}}}  # many workers wait for the file lock
        callback = {"heartbeat_stale_trial_callback": retry}
        if "heartbeat_stale_trial_callback" not in optuna.storages.RDBStorage.__init__.__code__.co_varnames:
            callback = {"failed_trial_callback": retry}  # optuna < 4.9
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                                              **callback, **kw)
        except Exception as e:  # a driver that is missing, a server that does not answer
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise KwsError(f"cannot open storage {url}: {first}") from None
    path = Path(url)
    if path.is_dir():
        raise KwsError(f"storage {url} is a folder; give a journal file (e.g. {path / 'studies.journal'})")
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return HeartbeatJournalStorage(backend, heartbeat, grace, retry)


def _retry_callback():
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=3, inherit_intermediate_values=True)


# --- studies --------------------------------------------------------------------------------------

def study_name(model: str, store: str | Path) -> str:
    """Default study name: kws-<model>-<store signature>."""
    return f"kws-{model}-{open_store(store).signature}"


def study_id(storage, name: str) -> int:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        names = sorted(s.study_name for s in storage.get_all_studies())
        raise KwsError(f"no study {name!r} in this storage; studies: {', '.join(names) or 'none'} "
                       "(check --storage / --out)") from None


def read_spec(storage, name: str) -> Optional[SweepSpec]:
    """The SweepSpec a study was created with (None for a study made elsewhere)."""
    raw = storage.get_study_user_attrs(study_id(storage, name)).get(SPEC_ATTR)
    return SweepSpec(**raw) if raw else None


def create_sweep(storage, name: str, spec: SweepSpec) -> None:
    """Create the study, or check that the existing one searches the same thing and update its target."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    old = read_spec(storage, name)
    diff = [k for k in SEARCH_KEYS if old is not None and getattr(old, k) != getattr(spec, k)]
    if diff:
        raise KwsError(f"study {name} exists with a different {', '.join(diff)}; "
                       "use --study NAME for a new study, or the same settings to continue it")
    study.set_user_attr(SPEC_ATTR, asdict(spec))


def trials_of(storage, name: str, states=None) -> list:
    return storage.get_all_trials(study_id(storage, name), deepcopy=False, states=states)


def counts(trials) -> dict:
    """Trials by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    out = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def best_trial(storage, name: str):
    """The best complete trial of a study (KwsError when none has completed)."""
    trials = trials_of(storage, name, states=(TrialState.COMPLETE,))
    if not trials:
        raise KwsError(f"study {name} has no complete trial yet; run kws-hpc sweep run first")
    return max(trials, key=lambda t: (t.value, -t.number))


def budget(storage, name: str) -> dict:
    """What a study spent; families compare fairly when `key` matches (store, trials, epochs, space)."""
    spec = read_spec(storage, name)
    c = counts(trials_of(storage, name))
    finished, epochs = c["COMPLETE"] + c["PRUNED"], spec.space["fixed"].get("epochs") if spec else None
    key = json.dumps([spec.store, finished, spec.space], sort_keys=True) if spec else name
    return {"study": name, "finished_trials": finished, "trial_epochs": epochs, "key": key}


# --- the worker -----------------------------------------------------------------------------------

class OverBudget(Exception):
    """This trial was created after the study's budget was already taken by other workers."""


def objective(trial, spec: SweepSpec, log: Callable[[str], None] = print) -> float:
    """Thin adapter: suggest a config, train it (reporting val accuracy per epoch), return best val acc."""
    from .train import run_dir, train

    check_budget(trial, spec)
    cfg = run_config(spec, suggest(trial, spec.space))
    trial.set_user_attr("run", str(run_dir(cfg, spec.out)))

    def on_epoch(epoch: int, entry: dict) -> None:
        trial.report(entry["val_acc"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val acc {entry['val_acc']:.4f} at epoch {epoch}")

    run = train(cfg, out=spec.out, on_epoch=on_epoch, log=lambda m: log(f"[trial {trial.number}] {m}"),
                progress=False)
    result = json.loads((run / "result.json").read_text())
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
    study = optuna.load_study(study_name=name, storage=store, sampler=make_sampler(spec, seed),
                              pruner=make_pruner(spec))
    _set_threads(spec)
    log(f"worker {index} on study {name} (pid {os.getpid()}): target {spec.trials} finished trials")
    done = optuna.study.MaxTrialsCallback(spec.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    mine, errors = [], 0
    while True:
        _fail_stale(study)
        c = counts(study.get_trials(deepcopy=False))
        if c["COMPLETE"] + c["PRUNED"] >= spec.trials:
            break
        if c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] + c["WAITING"] >= spec.trials and not c["WAITING"]:
            time.sleep(min(spec.heartbeat, 5))  # the last trials run elsewhere; stay to retry any that die
            continue
        last: list = []
        if not _one_trial(study, spec, done, last, log):
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


def _one_trial(study, spec: SweepSpec, done, last: list, log) -> bool:
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
        if not started or not study._storage.get_trial(started[0]._trial_id).state.is_finished():
            raise
        last.append(started[0].number)
        return False


def _fail_stale(study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _set_threads(spec: SweepSpec) -> None:
    """One worker's share of the cores: Slurm's allocation, else the machine split between workers."""
    import torch

    n = os.environ.get("SLURM_CPUS_PER_TASK")
    torch.set_num_threads(int(n) if n else max(1, (os.cpu_count() or 1) // max(1, spec.workers)))


def retrain_job(spec: dict, params: dict, seed: int, epochs: int, out: str) -> dict:
    """One retrain of a best configuration (a job: takes plain dicts, returns a small summary)."""
    from .train import train

    run = train(run_config(SweepSpec(**spec), params, seed=seed, epochs=epochs), out=out, progress=False)
    r = json.loads((run / "result.json").read_text())
    return {"seed": seed, "run": str(run), "test_accuracy": r["test_accuracy"], "macro_f1": r["macro_f1"],
            "best_val_acc": r["best_val_acc"], "epochs_run": r["epochs_run"]}


# --- launching ------------------------------------------------------------------------------------

def run_sweep(url: str, specs: dict, workers: int, job, log: Callable[[str], None] = print) -> Optional[dict]:
    """Create the studies and run `workers` workers on each: here (job.executor None) or as one job
    array. Waits unless job.wait is off (then returns None); returns {study: counts}."""
    storage = open_storage(url)
    for name, spec in specs.items():
        create_sweep(storage, name, spec)
        log(f"study {name}: {spec.model}, target {spec.trials} finished trials, {workers} worker(s); "
            f"storage {url}")
    calls = [(url, name, i) for name in specs for i in range(workers)]
    if job.executor is None:
        for call in calls:
            run_worker(*call, log=log)
    elif not _run_jobs(storage, specs, calls, job, log):
        log(f"follow with: kws-hpc sweep ls --storage {url}")
        return None
    final = {name: counts(trials_of(storage, name)) for name in specs}
    short = [n for n, c in final.items() if c["COMPLETE"] + c["PRUNED"] < specs[n].trials]
    if short:
        raise KwsError(f"{', '.join(short)} did not reach the target (see the worker logs above); "
                       "run the same command again to continue")
    return final


def _run_jobs(storage, specs: dict, calls: list, job, log) -> bool:
    """Submit the workers as one array and wait, printing each study's progress when it changes;
    False when job.wait is off (submitted only)."""
    from .launch import result, submit_array, wait

    handles = submit_array(run_worker, calls, job, log)
    if not job.wait:
        return False
    seen: dict = {}

    def progress() -> None:
        for name, spec in specs.items():
            c = counts(trials_of(storage, name))
            line = (f"{name}: {c['COMPLETE'] + c['PRUNED']}/{spec.trials} finished "
                    f"({c['COMPLETE']} complete, {c['PRUNED']} pruned), {c['RUNNING']} running, "
                    f"{c['FAIL']} failed")
            if seen.get(name) != line:
                seen[name] = line
                log(line)

    wait(handles, on_poll=progress, log=log)
    progress()
    for h in handles:
        try:
            result(h)
        except KwsError as e:
            log(f"warning: {e}")
    return True
