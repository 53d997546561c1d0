"""What `sweep ls|show|best` print: studies and trials as tables (from the storage, read-only)."""

from __future__ import annotations

from kws_hpc.sweep.studies import counts, read_spec, trials_of
from kws_hpc.text import fmt, table


def studies_table(storage, url: str, names: list | None = None) -> str:
    """One row per study: model, target, trials by state, best value and trial."""
    rows = []
    for name in sorted(s.study_name for s in storage.get_all_studies()):
        if names is not None and name not in names:
            continue
        trials = trials_of(storage, name)
        c, spec = counts(trials), read_spec(storage, name)
        done = [t for t in trials if t.state.name == "COMPLETE"]
        best = max(done, key=lambda t: (t.value, -t.number)) if done else None
        rows.append([name, spec.model if spec else "-", spec.trials if spec else "-", c["COMPLETE"],
                     c["PRUNED"], c["FAIL"], c["RUNNING"], c["WAITING"],
                     f"{best.value:.4f}" if best else "-", best.number if best else "-"])
    if not rows:
        return f"no studies in {url}"
    return table(["STUDY", "MODEL", "TARGET", "COMPLETE", "PRUNED", "FAILED", "RUNNING", "WAITING", "BEST",
                  "TRIAL"], rows)


def study_dicts(storage, names: list | None = None) -> list[dict]:
    """One JSON-ready dict per study: model, target, trials by state, best value and trial."""
    out = []
    for name in sorted(s.study_name for s in storage.get_all_studies()):
        if names is not None and name not in names:
            continue
        trials = trials_of(storage, name)
        spec = read_spec(storage, name)
        done = [t for t in trials if t.state.name == "COMPLETE"]
        best = max(done, key=lambda t: (t.value, -t.number)) if done else None
        out.append({"study": name, "model": spec.model if spec else None, "target": spec.trials if spec else None,
                    "trials": counts(trials), "best_value": best.value if best else None,
                    "best_trial": best.number if best else None})
    return out


def trials_table(storage, name: str) -> str:
    """A study's trials: number, state, value, seconds, parameters, run folder, note."""
    trials = trials_of(storage, name)
    keys = sorted({k for t in trials for k in t.params})
    rows = []
    for t in trials:
        note = "over budget" if t.user_attrs.get("over_budget") else ""
        if t.system_attrs.get("failed_trial") is not None:
            note = f"retry of {t.system_attrs['failed_trial']}"
        rows.append([t.number, t.state.name, "-" if t.value is None else f"{t.value:.4f}", _duration(t),
                     *[fmt(t.params[k]) if k in t.params else "-" for k in keys],
                     t.user_attrs.get("run", "-"), note])
    body = table(["#", "STATE", "VALUE", "SECONDS", *keys, "RUN", "NOTE"], rows) if rows else "(no trials)"
    return f"study {name}: {len(trials)} trials\n{body}"


def trial_dicts(storage, name: str) -> list[dict]:
    """A study's trials as JSON-ready dicts."""
    return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "seconds": None if _duration(t) == "-" else float(_duration(t)), "run": t.user_attrs.get("run"),
             "user_attrs": t.user_attrs, "retry_of": t.system_attrs.get("failed_trial")}
            for t in trials_of(storage, name)]


def retrain_table(summary: dict) -> str:
    """The retrained seeds of a best configuration and their mean +- std."""
    runs = summary["retrain"]
    rows = [[r["seed"], f"{r['test_accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['best_val_acc']:.4f}",
             r["epochs_run"], r["run"]] for r in runs]
    return (table(["SEED", "TEST ACC", "MACRO-F1", "VAL ACC", "EPOCHS", "RUN"], rows)
            + f"\n  {summary['model']} test accuracy {summary['test_accuracy_mean']:.4f} +- "
              f"{summary['test_accuracy_std']:.4f} over {len(runs)} seeds")


def _duration(t) -> str:
    if t.datetime_start is None or t.datetime_complete is None:
        return "-"
    return f"{(t.datetime_complete - t.datetime_start).total_seconds():.1f}"
