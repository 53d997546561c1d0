"""`kws-hpc report`: gather runs and Optuna studies into an HTML page, a markdown summary and JSON/CSV."""

from __future__ import annotations

from kws_hpc.configfile import add_config_file
from kws_hpc.options import add_job_args, job_options
from kws_hpc.report.det import DET_MINUTES


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="compare runs (GRU vs LSTM) and studies in one HTML/markdown report",
        description="Read every run folder under --runs (config.json, history.json, result.json, "
                    "predictions.npz) and every Optuna study in --storage; write OUT/index.html, "
                    "OUT/report.md, OUT/results.json, OUT/results.csv and OUT/figures/. "
                    "Prints the index.html path last.")
    p.add_argument("--runs", default="runs", help="folder holding the run folders (default: runs)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage: journal file, .db file or RDB URL "
                        "(default: RUNS/studies.journal if present)")
    p.add_argument("--out", default=None, help="report folder (default: RUNS/report)")
    p.add_argument("--det-minutes", type=float, nargs=2, default=list(DET_MINUTES), metavar=("POS", "NEG"),
                   help="test streams the best GRU and LSTM are put through the live detector on: minutes "
                        "with keywords and without (default: 10 30; 0 0 = no DET section)")
    add_job_args(p, log_dir_help="RUNS/jobs")
    add_config_file(p, "report")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from kws_hpc.launch.executors import check_job, submit
    from kws_hpc.report.build import make_report

    job = job_options(args, args.runs, "kws-report")
    check_job(job)
    out = str(Path(args.out).expanduser().resolve()) if args.out else None
    index = submit(make_report, str(Path(args.runs).expanduser().resolve()), out, storage=args.storage,
                   det_minutes=tuple(args.det_minutes), job=job)
    if job.executor is not None and not job.wait:
        return 0
    print(index)
    return 0
