"""`kws-hpc evaluate`: score a run's best checkpoint (or any checkpoint) on a store's split, or on any
Speech Commands layout folder (`--data`)."""

from __future__ import annotations

import json

from kws_hpc.options import add_job_args, job_options


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint on a store split or a folder of clips (JSON)",
                       description="Rebuild the model from RUN/best.pt or CKPT and print accuracy, macro-F1, "
                                   "per-class metrics and the confusion matrix as JSON. --store: a store "
                                   "with the same labels and feature config. --data: any <word>/<clip>.wav "
                                   "folder or .tar.gz (your own recordings, say), featurised on the fly with "
                                   "the model's settings; words the model does not know count as _unknown_ "
                                   "when it has that class.")
    p.add_argument("checkpoint", metavar="RUN|CKPT", help="run folder (uses best.pt) or checkpoint file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="feature store folder")
    where.add_argument("--data", help="Speech Commands layout folder or .tar.gz")
    p.add_argument("--split", default=None, choices=["all", "train", "val", "test"],
                   help="(default: test with --store, all with --data)")
    p.add_argument("--rule", default="hash", choices=["hash", "official"],
                   help="with --data and a split: the hash rule or the folder's official lists (default: hash)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps (default: cpu)")
    add_job_args(p, log_dir_help="./jobs")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from kws_hpc.errors import KwsError
    from kws_hpc.launch.executors import check_job, submit

    job = job_options(args, ".", "kws-evaluate")
    check_job(job)
    ckpt = str(Path(args.checkpoint).expanduser().resolve())
    if args.data:
        from kws_hpc.train.folder_eval import evaluate_folder

        result = submit(evaluate_folder, ckpt, str(Path(args.data).expanduser().resolve()), args.split or "all",
                        args.rule, args.device, log=lambda m: print(m, file=sys.stderr), job=job,
                        echo=lambda m: print(m, file=sys.stderr))
    else:
        from kws_hpc.train.evaluate import evaluate_checkpoint

        if args.split == "all":
            raise KwsError("--split all needs --data; a store is scored one split at a time")
        result = submit(evaluate_checkpoint, ckpt, str(Path(args.store).expanduser().resolve()), args.split or "test",
                        args.device, job=job, echo=lambda m: print(m, file=sys.stderr))
    if job.executor is not None and not job.wait:
        return 0
    print(json.dumps(result, indent=2))
    return 0
