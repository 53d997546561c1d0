"""`kws-hpc train`: train a GRU or LSTM on a feature store (or resume it, or find it finished)."""

from __future__ import annotations

import argparse
import dataclasses

from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
from kws_hpc.configfile import add_config_file
from kws_hpc.options import add_job_args, add_run_options, config_from_args, job_options


def register(sub) -> None:
    p = sub.add_parser("train", help="train a GRU or LSTM keyword spotter on a feature store",
                       description="Train into OUT/<run signature>/ (config.json, history.json, best.pt, "
                                   "last.pt, result.json, predictions.npz). The same options again resume an "
                                   "unfinished run or report a finished one. Prints the run folder last.")
    p.add_argument("--store", default=None,
                   help="feature store folder (printed by kws-hpc features; default with --config: the store of "
                        "the file's [features] table)")
    add_run_options(p)
    p.add_argument("--out", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--resume", action="store_true", help="insist on resuming an existing run (error if none)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: the cores this process may use; 1 is faster on a "
                        "machine shared with other work)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="per-epoch curves as TensorBoard event files in OUT/tensorboard/train/<run signature>/ "
                        "(`tensorboard --logdir OUT`); metrics.csv is written either way (default: on where the "
                        "tensorboard package is installed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over batches")
    add_job_args(p)
    add_config_file(p, "train")
    p.set_defaults(func=run)


def run_config(args) -> RunConfig:
    """The RunConfig the parsed options describe."""
    return RunConfig(store=args.store, model=config_from_args(ModelConfig, args),
                     train=config_from_args(TrainConfig, args))


def run(args) -> int:
    from pathlib import Path

    from kws_hpc.launch.executors import check_job, submit
    from kws_hpc.train.epochlog import want_tensorboard

    job = job_options(args, args.out, "kws-train")
    check_job(job)
    args.store = store_arg(args)
    cfg = run_config(args)
    cfg = dataclasses.replace(cfg, store=str(Path(cfg.store).expanduser().resolve()))  # the job may run elsewhere
    board = "train" if want_tensorboard(args.tensorboard) else None
    folder = submit(train_job, cfg, str(Path(args.out).expanduser().resolve()), args.threads, board, args.resume,
                    not args.no_progress and job.executor is None, job=job)
    if job.executor is not None and not job.wait:
        return 0
    print(folder)
    return 0


def store_arg(args) -> str:
    """--store, else the store of the --config file's [features] table."""
    from kws_hpc.errors import KwsError

    if args.store:
        return args.store
    if not args.config:
        raise KwsError("--store is required (a folder printed by kws-hpc features), or --config FILE with a "
                       "[features] table")
    from kws_hpc.commands.features import store_of

    return store_of(args.config)


def train_job(cfg: RunConfig, out: str, threads, tensorboard, resume: bool, progress: bool):
    """`kws-hpc train` as a job: its threads set where it runs, then the run trained, resumed or found."""
    from kws_hpc.runtime import set_threads
    from kws_hpc.train.loop import train

    set_threads(threads)
    return train(cfg, out=out, progress=progress, resume=resume, tensorboard=tensorboard)
