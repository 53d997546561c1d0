"""Studies: one per model family, each carrying its own `SweepSpec`, so a worker needs only its name.

The spec is stored as the study user attr `kws_spec`; `budget` says what a study spent, so two
families are compared only when they had the same (store, finished trials, space).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import optuna
from optuna.trial import TrialState

from kws_hpc.errors import KwsError
from kws_hpc.features.store import open_store

SPEC_ATTR = "kws_spec"
METRIC = "val_accuracy"  # the objective: the best validation accuracy of the trial's run
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
    workers: int = 1  # workers launched together, all studies
    device: str = "auto"
    threads: Optional[int] = None  # torch threads per worker (None: the cores the worker's process may use)
    tensorboard: bool = True  # trials write TensorBoard event files to OUT/tensorboard/<study>/ (if installed)
    heartbeat: int = 30  # seconds between a running trial's heartbeats
    grace: int = 120  # a running trial silent this long is failed and retried


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
    if study.metric_names != [METRIC]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC])  # what the dashboard and the plots call the objective
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
    from kws_hpc.sweep.space import run_config

    spec = read_spec(storage, name)
    c = counts(trials_of(storage, name))
    finished, epochs = c["COMPLETE"] + c["PRUNED"], run_config(spec, {}).train.epochs if spec else None
    key = json.dumps([spec.store, finished, spec.space], sort_keys=True) if spec else name
    return {"study": name, "finished_trials": finished, "trial_epochs": epochs, "key": key}


def check_budgets(storage, names: list, allow: bool = False, log=print) -> None:
    """Studies on the same store are compared only with the same budget: KwsError (or, with `allow`,
    a warning) naming what differs."""
    by_store: dict = {}
    for n in names:
        spec = read_spec(storage, n)
        by_store.setdefault(spec.store if spec else n, []).append(budget(storage, n))
    for budgets in by_store.values():
        if len({b["key"] for b in budgets}) <= 1:
            continue
        what = "; ".join(f"{b['study']}: {b['finished_trials']} finished trials, {b['trial_epochs']} epochs"
                         for b in budgets)
        msg = f"the studies' budgets differ ({what}; or their search space)"
        if not allow:
            raise KwsError(msg + ": a fair comparison needs the same; run the smaller sweep further "
                                 "(same command, more --trials) or pass --allow-unmatched")
        log(f"warning: {msg}")
