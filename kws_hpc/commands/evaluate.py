"""`kws-hpc evaluate`: score a run's best checkpoint (or any checkpoint) on a store's split."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint on a feature store split (JSON to stdout)",
                       description="Rebuild the model from RUN/best.pt or CKPT, check the store has the "
                                   "same labels and feature config, and print accuracy, macro-F1, per-class "
                                   "metrics and the confusion matrix as JSON.")
    p.add_argument("checkpoint", metavar="RUN|CKPT", help="run folder (uses best.pt) or checkpoint file")
    p.add_argument("--store", required=True, help="feature store folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="(default: test)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps (default: cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from kws_hpc.train.evaluate import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.store, args.split, args.device), indent=2))
    return 0
