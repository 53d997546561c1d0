"""Optuna studies for the report: open the storage, summarise each study, draw its figures.

The storage is an Optuna JournalStorage file (the sweeps' default, `<runs>/studies.journal`) or any
RDB URL. Each trial may carry the folder of the run it trained as a user attribute; the report uses
it to link a study's best trial to its run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

from kws_hpc.train.rundir import RunDir

DEFAULT_JOURNAL = "studies.journal"
RUN_ATTRS = ("run", "run_dir", "run_folder", "run_path")


def open_storage(spec: str):
    """An Optuna storage, read as the sweeps name it: an RDB URL (`sqlite:///x.db`, `postgresql://...`),
    a `.db`/`.sqlite` file, or a journal file. Nothing is created: a missing file is an error."""
    from kws_hpc.launch.storage import open_storage as open_sweep_storage
    from kws_hpc.launch.storage import storage_url

    return open_sweep_storage(storage_url(spec), create=False)


def default_storage(runs: Path) -> Optional[str]:
    path = Path(runs) / DEFAULT_JOURNAL
    return str(path) if path.is_file() else None


def trial_run_dir(trial) -> Optional[str]:
    """The run folder a trial trained, from its user attributes (None if it names none)."""
    for key in RUN_ATTRS:
        value = trial.user_attrs.get(key)
        if isinstance(value, str) and value:
            return value
    for value in trial.user_attrs.values():
        if isinstance(value, str) and RunDir(value).is_run:
            return value
    return None


def trial_runs(study) -> list[dict]:
    """The run folders the study's trials trained: {run_dir, study, number, state}."""
    return [{"run_dir": trial_run_dir(t), "study": study.study_name, "number": t.number,
             "state": t.state.name.lower()} for t in study.get_trials(deepcopy=False) if trial_run_dir(t)]


def load_studies(storage) -> list:
    """Every study in the storage, by name."""
    import optuna

    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    return [optuna.load_study(study_name=n, storage=storage) for n in names]


def summarize(study) -> dict:
    """Counts by state, the best trial's value, parameters and run folder."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(1 for t in trials if t.state == s) for s in TrialState}
    out = {"name": study.study_name, "directions": [d.name.lower() for d in study.directions],
           "trials": len(trials), "states": {k: v for k, v in states.items() if v}, "best": None}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        best = study.best_trial
        out["best"] = {"number": best.number, "value": best.value, "params": dict(best.params),
                       "run_dir": trial_run_dir(best)}
    return out


def study_figures(study, fig_dir: Path, stem: str, save) -> dict:
    """Optimisation history, parameter importances and intermediate values; a reason for each one missing.

    `save(fig, path)` writes a figure; returns {kind: path or "why not"}.
    """
    import matplotlib
    import optuna

    from kws_hpc.report.figures import pyplot

    pyplot()  # the Agg backend must be chosen before optuna's plotting module imports pyplot
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    out: dict = {}
    if len(study.directions) > 1:
        reason = "multi-objective study: history and importances need a single objective"
        return {"history": reason, "importance": reason}
    plots = {"history": (ovm.plot_optimization_history, 2),
             "importance": (ovm.plot_param_importances, 2),
             "intermediate": (ovm.plot_intermediate_values, 1)}
    varying = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    for kind, (plot, need) in plots.items():
        if len(complete) < need:
            out[kind] = f"needs at least {need} complete trial(s), the study has {len(complete)}"
            continue
        if kind == "importance" and not varying:
            out[kind] = "no parameter varies across the complete trials"
            continue
        if kind == "intermediate" and not any(t.intermediate_values for t in study.trials):
            out[kind] = "no trial reported intermediate values (no pruning curve)"
            continue
        # optuna's plots switch the global style to ggplot: keep that inside this block
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                fig = plot(study).figure
            except Exception as e:  # optuna refuses odd studies (e.g. all values equal) with various errors
                out[kind] = f"optuna could not draw it: {e}"
                continue
            if kind == "intermediate" and len(study.trials) > 12 and fig.axes[0].get_legend():
                fig.axes[0].get_legend().remove()  # one legend entry per trial: unreadable for a real sweep
            fig.set_size_inches(7.5, 4.2)
            fig.tight_layout()
            out[kind] = save(fig, fig_dir / f"{stem}_{kind}.png")
    return out
