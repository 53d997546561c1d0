"""`kws-hpc bench features|train|infer|sweep`: figures against the per-clip baselines."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks against the per-clip pipelines (prints figures)")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    f = bsub.add_parser("features", help="feature job vs a per-clip decode + mel loop, same clips")
    f.add_argument("--data", required=True, help="Speech Commands layout folder")
    f.add_argument("--workers", type=int, default=None)
    t = bsub.add_parser("train", help="epoch clips/s: HDF5 store in memory vs WAV Dataset + DataLoader")
    t.add_argument("--store", required=True)
    t.add_argument("--data", required=True, help="the folder the store was built from")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--device", default="cpu")
    t.add_argument("--loader-workers", type=int, default=2)
    i = bsub.add_parser("infer", help="latency per 1-s window of an exported model, one thread")
    i.add_argument("--model", required=True, help="file from kws-hpc export")
    i.add_argument("--windows", type=int, default=500)
    s = bsub.add_parser("sweep", help="trials per hour with 1 and 2 local workers")
    s.add_argument("--store", required=True)
    s.add_argument("--trials", type=int, default=8)
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--space", default="default")
    for q in (f, t, i, s):
        q.add_argument("--out", default="bench_out", help="scratch folder and results.jsonl (default: bench_out)")
        q.set_defaults(func=run)


def run(args) -> int:
    from kws_hpc import bench

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    what = args.bench_command
    if what == "features":
        rows = [bench.bench_features(args.data, out, workers=args.workers)]
    elif what == "train":
        rows = bench.bench_train(args.store, args.data, epochs=args.epochs, device=args.device,
                                 workers=args.loader_workers)
    elif what == "infer":
        rows = [bench.bench_infer(args.model, args.windows)]
    else:
        rows = bench.bench_sweep(args.store, out, args.trials, args.epochs, args.space)
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {platform.processor()}"}
    with open(out / "results.jsonl", "a") as fh:
        for r in rows:
            print(json.dumps(r))
            fh.write(json.dumps({**stamp, **r}) + "\n")
    return 0
