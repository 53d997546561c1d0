"""`kws-hpc sweep run|worker|ls|show|best|dashboard`: Optuna sweeps over GRU and LSTM runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..errors import KwsError
from ..launch import add_executor_options, job_options

STORAGE_HELP = ("Optuna storage: a journal file (.journal/.log, safe for many workers and on NFS), a SQLite "
                "file (.db) or any RDB URL (sqlite:///..., postgresql://...) (default: OUT/studies.journal)")


def register(sub) -> None:
    p = sub.add_parser("sweep", help="Optuna sweeps: run, inspect, retrain the best, dashboard",
                       description="Hyper-parameter sweeps: one Optuna study per model family, many "
                                   "workers on it.")
    s = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    r = s.add_parser("run", help="create a study and run K workers on it until it has N finished trials",
                     description="K submitit workers (one Slurm job array on a cluster) share one study per "
                                 "model family until it holds N finished (complete + pruned) trials. Each "
                                 "trial is one `kws-hpc train` run in OUT/<run signature>/. Re-running "
                                 "continues the study.")
    r.add_argument("--store", required=True, help="feature store folder (printed by kws-hpc features)")
    r.add_argument("--model", nargs="+", choices=["gru", "lstm"], required=True,
                   help="model family; several (gru lstm) sweep each with the same budget")
    r.add_argument("--trials", type=int, default=20, help="finished trials per study (default: 20)")
    r.add_argument("--workers", type=int, default=2, help="workers per study (default: 2)")
    r.add_argument("--study", default=None, help="study name (default: kws-<model>-<store signature>)")
    r.add_argument("--space", default="default", help="search space: a name under sweeps/ or a .toml path "
                                                      "(default: default)")
    r.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the space's)")
    r.add_argument("--seed", type=int, default=0, help="study seed; each worker derives its own (default: 0)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")
    r.add_argument("--heartbeat", type=int, default=30, help="seconds between trial heartbeats (default: 30)")
    r.add_argument("--grace", type=int, default=120,
                   help="a running trial without heartbeat this long is failed and retried (default: 120)")
    _storage_options(r)
    add_executor_options(r, default="local")
    r.set_defaults(func=cmd_run)

    w = s.add_parser("worker", help="run one worker of an existing study in this process",
                     description="Run trials of STUDY until it holds its target; for starting workers "
                                 "by hand.")
    w.add_argument("study", metavar="STUDY")
    w.add_argument("--index", type=int, default=0, help="worker index (varies the sampler seed) (default: 0)")
    _storage_options(w)
    w.set_defaults(func=cmd_worker)

    ls = s.add_parser("ls", help="list studies: trials by state and best value")
    _storage_options(ls)
    ls.set_defaults(func=cmd_ls)

    sh = s.add_parser("show", help="a study's trials: number, state, value, duration, params, run folder")
    sh.add_argument("study", metavar="STUDY")
    sh.add_argument("--json", action="store_true", help="print the trials as JSON")
    _storage_options(sh)
    sh.set_defaults(func=cmd_show)

    b = s.add_parser("best", help="best parameters and run; --retrain retrains them with several seeds",
                     description="Best trial of each STUDY (default: every study in the storage). With "
                                 "--retrain, its configuration is trained again with SEEDS seeds and full "
                                 "epochs; studies compared together must have had the same budget (finished "
                                 "trials, epochs, space, store). Writes OUT/best-<study>.json.")
    b.add_argument("studies", nargs="*", metavar="STUDY")
    b.add_argument("--retrain", action="store_true", help="retrain the best configuration with several seeds")
    b.add_argument("--seeds", type=int, default=3, help="retrain seeds 0..SEEDS-1 (default: 3)")
    b.add_argument("--epochs", type=int, default=None, help="retrain epochs (default: 20, the full schedule)")
    b.add_argument("--allow-unmatched", action="store_true",
                   help="retrain even when the studies' budgets differ")
    _storage_options(b)
    add_executor_options(b)
    b.set_defaults(func=cmd_best)

    d = s.add_parser("dashboard", help="serve optuna-dashboard for the storage on 127.0.0.1")
    d.add_argument("study", nargs="?", metavar="STUDY", help="study whose page is printed")
    d.add_argument("--port", type=int, default=8080, help="(default: 8080)")
    d.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1, this machine only)")
    _storage_options(d)
    d.set_defaults(func=cmd_dashboard)


def _storage_options(p) -> None:
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--out", default="runs", help="runs folder; holds the default storage (default: runs)")


def _open(args):
    from ..sweep import open_storage, storage_url

    url = storage_url(args.storage, args.out)
    if "://" not in url and not Path(url).is_file():
        raise KwsError(f"no storage at {url}; start a sweep with kws-hpc sweep run, or pass --storage")
    return url, open_storage(url)


# --- run ------------------------------------------------------------------------------------------

def cmd_run(args) -> int:
    from ..launch import check_job
    from ..store import open_store
    from ..sweep import SweepSpec, load_space, run_sweep, storage_url, study_name

    if args.trials < 1 or args.workers < 1:
        raise KwsError("--trials and --workers must be at least 1")
    if args.study and len(args.model) > 1:
        raise KwsError("--study names one study; with several --model values leave it out")
    if args.heartbeat < 1 or args.grace <= args.heartbeat:
        raise KwsError("--heartbeat must be >= 1 and --grace longer than --heartbeat")
    job = job_options(args, args.out, "kws-sweep")
    check_job(job)
    store = str(Path(args.store).expanduser().resolve())
    open_store(store)  # a bad store is an error here, not in every worker
    space = load_space(args.space, args.epochs)
    out = str(Path(args.out).expanduser().resolve())
    common = dict(space=space, out=out, trials=args.trials, seed=args.seed, device=args.device,
                  workers=args.workers * len(args.model), heartbeat=args.heartbeat, grace=args.grace)
    specs = {args.study or study_name(m, store): SweepSpec(store=store, model=m, **common)
             for m in args.model}
    url = storage_url(args.storage, args.out)
    final = run_sweep(url, specs, args.workers, job)
    if final is not None:
        _print_ls(url, list(specs))
    return 0


def cmd_worker(args) -> int:
    from ..sweep import run_worker

    url, _ = _open(args)
    run_worker(url, args.study, args.index)
    return 0


# --- ls / show ------------------------------------------------------------------------------------

def table(headers: list, rows: list) -> str:
    """A plain aligned table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()
             for r in cells]
    return "\n".join(lines)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s == "-"


def _fmt(v) -> str:
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    return f"{v:.3g}" if abs(v) < 0.01 or abs(v) >= 1000 else f"{v:.4g}"


def cmd_ls(args) -> int:
    url, _ = _open(args)
    _print_ls(url)
    return 0


def _print_ls(url: str, names: list | None = None) -> None:
    from ..sweep import counts, open_storage, read_spec, trials_of

    storage = open_storage(url)
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
        print(f"no studies in {url}")
        return
    print(table(["STUDY", "MODEL", "TARGET", "COMPLETE", "PRUNED", "FAILED", "RUNNING", "WAITING", "BEST",
                 "TRIAL"], rows))


def cmd_show(args) -> int:
    from ..sweep import trials_of

    _, storage = _open(args)
    trials = trials_of(storage, args.study)
    keys = sorted({k for t in trials for k in t.params})
    if args.json:
        print(json.dumps([_trial_dict(t) for t in trials], indent=1))
        return 0
    rows = []
    for t in trials:
        note = "over budget" if t.user_attrs.get("over_budget") else ""
        if t.system_attrs.get("failed_trial") is not None:
            note = f"retry of {t.system_attrs['failed_trial']}"
        rows.append([t.number, t.state.name, "-" if t.value is None else f"{t.value:.4f}", _duration(t),
                     *[_fmt(t.params[k]) if k in t.params else "-" for k in keys],
                     t.user_attrs.get("run", "-"), note])
    print(f"study {args.study}: {len(trials)} trials")
    print(table(["#", "STATE", "VALUE", "SECONDS", *keys, "RUN", "NOTE"], rows) if rows else "(no trials)")
    return 0


def _duration(t) -> str:
    if t.datetime_start is None or t.datetime_complete is None:
        return "-"
    return f"{(t.datetime_complete - t.datetime_start).total_seconds():.1f}"


def _trial_dict(t) -> dict:
    return {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "seconds": None if _duration(t) == "-" else float(_duration(t)), "run": t.user_attrs.get("run"),
            "user_attrs": t.user_attrs, "retry_of": t.system_attrs.get("failed_trial")}


# --- best -----------------------------------------------------------------------------------------

def cmd_best(args) -> int:
    from ..sweep import best_trial, budget, read_spec

    url, storage = _open(args)
    names = args.studies or sorted(s.study_name for s in storage.get_all_studies()
                                   if read_spec(storage, s.study_name) is not None)
    if not names:
        raise KwsError(f"no kws-hpc studies in {url}")
    if args.retrain:  # families trained on the same store are compared: their budgets must match
        by_store: dict = {}
        for n in names:
            spec = read_spec(storage, n)
            by_store.setdefault(spec.store if spec else n, []).append(budget(storage, n))
        for budgets in by_store.values():
            _check_budgets(budgets, args.allow_unmatched)
    for name in names:
        t = best_trial(storage, name)
        print(f"study {name}: best trial {t.number}, val accuracy {t.value:.4f}, "
              f"test accuracy {_fmt(t.user_attrs.get('test_accuracy'))}")
        print("  params: " + " ".join(f"{k}={_fmt(v)}" for k, v in sorted(t.params.items())))
        print(f"  run: {t.user_attrs.get('run', '-')}")
        if args.retrain:
            _retrain(args, url, storage, name, t)
    return 0


def _check_budgets(budgets: list, allow: bool) -> None:
    if len({b["key"] for b in budgets}) <= 1:
        return
    what = "; ".join(f"{b['study']}: {b['finished_trials']} finished trials, {b['trial_epochs']} epochs"
                     for b in budgets)
    msg = f"the studies' budgets differ ({what}; or their search space)"
    if not allow:
        raise KwsError(msg + ": a fair comparison needs the same; run the smaller sweep further "
                             "(same command, more --trials) or pass --allow-unmatched")
    print(f"warning: {msg}")


def _retrain(args, url: str, storage, name: str, trial) -> None:
    from dataclasses import asdict

    from ..config import TrainConfig
    from ..launch import result, submit, submit_array, wait
    from ..store import write_json
    from ..sweep import budget, read_spec, retrain_job

    spec = read_spec(storage, name)
    epochs = args.epochs or TrainConfig().epochs
    out = spec.out if args.out == "runs" else str(Path(args.out).expanduser().resolve())
    calls = [(asdict(spec), dict(trial.params), seed, epochs, out) for seed in range(args.seeds)]
    job = job_options(args, out, f"kws-retrain-{spec.model}")
    if job.executor is None:
        runs = [submit(retrain_job, *call) for call in calls]
    else:
        handles = submit_array(retrain_job, calls, job)
        if not job.wait:
            return
        wait(handles)
        runs = [result(h) for h in handles]
    acc = [r["test_accuracy"] for r in runs]
    print(table(["SEED", "TEST ACC", "MACRO-F1", "VAL ACC", "EPOCHS", "RUN"],
                [[r["seed"], f"{r['test_accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['best_val_acc']:.4f}",
                  r["epochs_run"], r["run"]] for r in runs]))
    std = statistics.stdev(acc) if len(acc) > 1 else 0.0
    print(f"  {spec.model} test accuracy {statistics.mean(acc):.4f} +- {std:.4f} over {len(acc)} seeds")
    spent = {k: v for k, v in budget(storage, name).items() if k in ("finished_trials", "trial_epochs")}
    path = Path(out) / f"best-{name}.json"
    write_json(path, {"study": name, "storage": url, "model": spec.model, "store": spec.store,
                      "best_trial": trial.number, "best_value": trial.value, "params": trial.params,
                      "trial_run": trial.user_attrs.get("run"), "epochs": epochs,
                      "budget": spent,
                      "retrain": runs, "test_accuracy_mean": statistics.mean(acc), "test_accuracy_std": std})
    print(f"  wrote {path}")


# --- dashboard ------------------------------------------------------------------------------------

def cmd_dashboard(args) -> int:
    import socket

    from ..sweep import study_id

    url, storage = _open(args)
    page = f"http://{args.host}:{args.port}/dashboard"
    if args.study:
        page += f"/studies/{study_id(storage, args.study)}"
    with socket.socket() as s:
        try:
            s.bind((args.host, args.port))
        except OSError as e:
            raise KwsError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); "
                           "pick another --port") from None
    try:
        import optuna_dashboard
    except ImportError:
        raise KwsError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    print(f"optuna-dashboard for {url}: {page}  (Ctrl-C stops it)", flush=True)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    return 0
