"""`kws-hpc bench features|train|infer|sweep|all`: figures against the per-clip baselines."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks against the per-clip pipelines (prints figures)")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    f = bsub.add_parser("features", help="feature job vs a per-clip decode + mel loop, same clips")
    t = bsub.add_parser("train", help="epoch clips/s: HDF5 store in memory vs WAV Dataset + DataLoader")
    i = bsub.add_parser("infer", help="latency per 1-s window of an exported model, one thread")
    s = bsub.add_parser("sweep", help="trials per hour with 1 and 2 local workers")
    a = bsub.add_parser("all", help="every benchmark above, then one table of figures and ratios (OUT/all.md)")
    for q in (f, a):
        q.add_argument("--data", required=True, help="Speech Commands layout folder (the store's, for train)")
        q.add_argument("--workers", type=int, default=None, help="feature job processes (default: all cores)")
        q.add_argument("--vocab", default=None, help="vocabulary of the feature job (default: the store's with "
                                                      "--store, else seed12)")
    for q in (t, s, a):
        q.add_argument("--store", required=True, help="feature store folder")
    t.add_argument("--data", required=True, help="the folder the store was built from")
    for q, flag in ((t, "--epochs"), (a, "--train-epochs")):
        q.add_argument(flag, dest="epochs", type=int, default=3, help="epochs per pipeline (default: 3)")
        q.add_argument("--device", default="cpu")
        q.add_argument("--loader-workers", type=int, default=2)
    for q in (i, a):
        q.add_argument("--model", required=(q is i), default=None, help="file from kws-hpc export")
        q.add_argument("--windows", type=int, default=500)
    for q in (s, a):
        q.add_argument("--trials", type=int, default=8)
        q.add_argument("--epochs" if q is s else "--sweep-epochs", dest="sweep_epochs", type=int, default=2,
                       help="epochs per sweep trial (default: 2)")
        q.add_argument("--space", default="default")
    for q in (f, t, i, s, a):
        q.add_argument("--out", default="bench_out", help="scratch folder and results.jsonl (default: bench_out)")
        q.set_defaults(func=run)


def run(args) -> int:
    from kws_hpc import bench
    from kws_hpc.io import write_text

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    what = args.bench_command
    rows = []
    if what in ("features", "all"):
        vocab = args.vocab
        if vocab is None and getattr(args, "store", None):
            from kws_hpc.features.store import open_store

            vocab = open_store(args.store).data_config.vocab
        rows.append(bench.bench_features(args.data, out, workers=args.workers, vocab=vocab or "seed12"))
    if what in ("train", "all"):
        rows += bench.bench_train(args.store, args.data, epochs=args.epochs, device=args.device,
                                  workers=args.loader_workers)
    if what == "infer" or (what == "all" and args.model):
        rows.append(bench.bench_infer(args.model, args.windows))
    if what in ("sweep", "all"):
        rows += bench.bench_sweep(args.store, out, args.trials, args.sweep_epochs, args.space)
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {platform.processor()}"}
    with open(out / "results.jsonl", "a") as fh:
        for r in rows:
            print(json.dumps(r))
            fh.write(json.dumps({**stamp, **r}) + "\n")
    if what == "all":
        table = bench.summary_table(rows) + ("" if args.model else "\n\n(inference skipped: pass --model FILE.onnx)")
        write_text(out / "all.md", table + "\n")
        print(table)
    return 0
