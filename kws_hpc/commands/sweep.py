"""`kws-hpc sweep run|worker|ls|show|best|dashboard`: Optuna sweeps over GRU and LSTM runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kws_hpc.config import TrainConfig
from kws_hpc.configfile import add_config_file
from kws_hpc.defaults import describe
from kws_hpc.errors import KwsError
from kws_hpc.options import add_job_args, job_options

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
    r.add_argument("--store", default=None,
                   help="feature store folder (printed by kws-hpc features; default with --config: the store of "
                        "the file's [features] table)")
    r.add_argument("--model", nargs="+", choices=["gru", "lstm"], required=True,
                   help="model family; several (gru lstm) sweep each with the same budget")
    r.add_argument("--trials", type=int, default=20, help="finished trials per study (default: 20)")
    r.add_argument("--workers", type=int, default=2, help="workers per study (default: 2)")
    r.add_argument("--study", default=None, help="study name (default: kws-<model>-<store signature>)")
    r.add_argument("--space", default="default",
                   help=f"search space: a name ({describe('sweeps')}) or a .toml path (default: default)")
    r.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the space's)")
    r.add_argument("--seed", type=int, default=0, help="study seed; each worker derives its own (default: 0)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default: the cores this process may use, shared between the "
                        "local workers it starts; on Slurm the job's CPUs)")
    r.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="each trial's curves as TensorBoard event files in OUT/tensorboard/<study>/<run signature>/ "
                        "(`tensorboard --logdir OUT`) (default: on where the tensorboard package is installed)")
    r.add_argument("--heartbeat", type=int, default=30, help="seconds between trial heartbeats (default: 30)")
    r.add_argument("--grace", type=int, default=120,
                   help="a running trial without heartbeat this long is failed and retried (default: 120)")
    _storage_options(r)
    add_job_args(r, default="local")
    add_config_file(r, "sweep")
    r.set_defaults(func=cmd_run)

    w = s.add_parser("worker", help="run one worker of an existing study in this process",
                     description="Run trials of STUDY until it holds its target; for starting workers by hand.")
    w.add_argument("study", metavar="STUDY")
    w.add_argument("--index", type=int, default=0, help="worker index (varies the sampler seed) (default: 0)")
    _storage_options(w)
    w.set_defaults(func=cmd_worker)

    ls = s.add_parser("ls", help="list studies: trials by state and best value")
    ls.add_argument("--json", action="store_true", help="print the studies as JSON")
    _storage_options(ls)
    ls.set_defaults(func=cmd_ls)

    sh = s.add_parser("show", help="a study's trials: number, state, value, duration, params, run folder")
    sh.add_argument("study", metavar="STUDY")
    sh.add_argument("--json", action="store_true", help="print the trials as JSON")
    _storage_options(sh)
    sh.set_defaults(func=cmd_show)

    b = s.add_parser("best", help="best parameters and run; --retrain retrains them with several seeds",
                     description="Best trial of each STUDY (default: every study in the storage): its value, "
                                 "parameters and run folder; nothing is written. With --retrain, its "
                                 "configuration is trained again with SEEDS seeds and full epochs, and "
                                 "OUT/best-<study>.json (OUT: the study's runs folder unless --out is given) "
                                 "records the retrained runs; studies compared together must have had the same "
                                 "budget (finished trials, epochs, space, store).")
    b.add_argument("studies", nargs="*", metavar="STUDY")
    b.add_argument("--retrain", action="store_true",
                   help="retrain the best configuration with several seeds and write OUT/best-<study>.json")
    b.add_argument("--seeds", type=int, default=3, help="retrain seeds 0..SEEDS-1 (default: 3)")
    b.add_argument("--epochs", type=int, default=TrainConfig().epochs,
                   help="retrain epochs (default: %(default)s, train's full schedule)")
    b.add_argument("--json", action="store_true",
                   help="print the best trials (and, with --retrain, what best-<study>.json holds) as JSON; "
                        "the retrain's log goes to stderr")
    b.add_argument("--allow-unmatched", action="store_true", help="retrain even when the studies' budgets differ")
    _storage_options(b)
    add_job_args(b)
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
    from kws_hpc.launch.storage import open_storage, storage_url

    url = storage_url(args.storage, args.out)
    if "://" not in url and not Path(url).is_file():
        raise KwsError(f"no storage at {url}; start a sweep with kws-hpc sweep run, or pass --storage")
    return url, open_storage(url, create=False)


def cmd_run(args) -> int:
    from kws_hpc.launch.executors import check_job
    from kws_hpc.sweep.run import run_sweep, sweep_specs, worker_threads
    from kws_hpc.train.epochlog import want_tensorboard
    from kws_hpc.sweep.space import load_space
    from kws_hpc.launch.storage import open_storage, storage_url
    from kws_hpc.sweep.summary import studies_table

    from kws_hpc.commands.train import store_arg

    job = job_options(args, args.out, "kws-sweep")
    check_job(job)
    specs = sweep_specs(store_arg(args), args.model, load_space(args.space, args.epochs), args.out, trials=args.trials,
                        workers=args.workers, seed=args.seed, device=args.device, heartbeat=args.heartbeat,
                        grace=args.grace, study=args.study,
                        threads=worker_threads(args.threads, job.executor, args.workers * len(args.model)),
                        tensorboard=want_tensorboard(args.tensorboard))
    url = storage_url(args.storage, args.out)
    if run_sweep(url, specs, args.workers, job) is not None:
        print(studies_table(open_storage(url), url, list(specs)))
    return 0


def cmd_worker(args) -> int:
    from kws_hpc.sweep.worker import run_worker

    url, _ = _open(args)
    run_worker(url, args.study, args.index)
    return 0


def cmd_ls(args) -> int:
    from kws_hpc.sweep.summary import studies_table, study_dicts

    url, storage = _open(args)
    print(json.dumps(study_dicts(storage), indent=1) if args.json else studies_table(storage, url))
    return 0


def cmd_show(args) -> int:
    from kws_hpc.sweep.summary import trial_dicts, trials_table

    _, storage = _open(args)
    print(json.dumps(trial_dicts(storage, args.study), indent=1) if args.json else trials_table(storage, args.study))
    return 0


def cmd_best(args) -> int:
    import contextlib
    import sys

    from kws_hpc.sweep.studies import check_budgets, read_spec

    url, storage = _open(args)
    names = args.studies or sorted(s.study_name for s in storage.get_all_studies()
                                   if read_spec(storage, s.study_name) is not None)
    if not names:
        raise KwsError(f"no kws-hpc studies in {url}")
    if args.retrain:  # families trained on the same store are compared: their budgets must match
        check_budgets(storage, names, args.allow_unmatched)
    if not args.json:
        for name in names:
            _best(args, url, storage, name)
        return 0
    with contextlib.redirect_stdout(sys.stderr):  # the retrain's log; stdout is the JSON alone
        found = [_best(args, url, storage, name) for name in names]
    print(json.dumps(found, indent=1))
    return 0


def _best(args, url: str, storage, name: str) -> dict:
    """Print (and with --retrain, retrain) the best trial of one study; returns it as a JSON-ready dict."""
    from kws_hpc.sweep.retrain import retrain_best
    from kws_hpc.sweep.studies import best_trial, read_spec
    from kws_hpc.sweep.summary import retrain_table
    from kws_hpc.text import fmt

    t = best_trial(storage, name)
    found = {"study": name, "best_trial": t.number, "value": t.value,
             "test_accuracy": t.user_attrs.get("test_accuracy"), "params": t.params, "run": t.user_attrs.get("run")}
    if not args.json:
        print(f"study {name}: best trial {t.number}, val accuracy {t.value:.4f}, "
              f"test accuracy {fmt(t.user_attrs.get('test_accuracy'))}")
        print("  params: " + " ".join(f"{k}={fmt(v)}" for k, v in sorted(t.params.items())))
        print(f"  run: {t.user_attrs.get('run', '-')}")
    if args.retrain:
        out = None if args.out == "runs" else str(Path(args.out).expanduser().resolve())
        spec = read_spec(storage, name)
        job = job_options(args, out or spec.out, f"kws-retrain-{spec.model}")
        summary = retrain_best(url, name, seeds=args.seeds, epochs=args.epochs,
                               out=out, job=job)
        if summary is not None:
            found["retrain"] = summary
            print(retrain_table(summary))
            print(f"  wrote {summary['path']}")
    return found


def cmd_dashboard(args) -> int:
    import socket

    from kws_hpc.sweep.studies import study_id

    url, storage = _open(args)
    page = f"http://{args.host}:{args.port}/dashboard"
    if args.study:
        page += f"/studies/{study_id(storage, args.study)}"
    with socket.socket() as s:
        try:
            s.bind((args.host, args.port))
        except OSError as e:
            raise KwsError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    try:
        import optuna_dashboard
    except ImportError:
        raise KwsError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    print(f"optuna-dashboard for {url}: {page}  (Ctrl-C stops it)", flush=True)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    return 0
