"""`kws-hpc bench features|train|infer|sweep|all`: figures against the per-clip baselines;
`kws-hpc bench ablate`: recipe variants x seeds x stores, one table of mean +- std."""

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
        q.add_argument("--rounds", type=int, default=3, help="interleaved rounds of job and loop; the ratio is "
                                                             "of their medians (default: 3)")
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
        q.add_argument("--space", default="bench", help="search space (default: bench, every trial the default "
                                                        "model, only its weight decay drawn: equal work)")
    for q in (f, t, i, s, a):
        q.add_argument("--out", default="bench_out", help="scratch folder and results.jsonl (default: bench_out)")
        q.set_defaults(func=run)
    ab = bsub.add_parser("ablate", help="train recipe variants with several seeds on several stores; one "
                                        "table of validation and test accuracy, mean +- std (OUT/ablation.md)")
    ab.add_argument("--store", action="append", required=True, help="feature store folder (repeat for more)")
    ab.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="a recipe: its name and kws-hpc train flags, e.g. 'cosine=--schedule cosine' "
                         "(repeat; 'defaults' with no flags is always the first)")
    ab.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ab.add_argument("--jobs", type=int, default=2, help="trainings at a time, one thread each (default: 2)")
    ab.add_argument("--out", default="ablation_out", help="the table, and the runs (default: ablation_out)")
    ab.add_argument("--runs", default=None, help="train into this folder instead of OUT/runs (ablations that "
                                                 "share it share their runs)")
    ab.set_defaults(func=run_ablation)


def run_ablation(args) -> int:
    from kws_hpc.features.store import open_store
    from kws_hpc.measure.ablation import ablate, parse_variant, table

    for s in args.store:
        open_store(s)  # a wrong path is one line before anything trains
    variants = [parse_variant(v) for v in args.variant]  # ablate checks their flags before anything trains
    if "defaults" not in [n for n, _ in variants]:
        variants.insert(0, ("defaults", []))
    rows = ablate(args.store, variants, args.seeds, args.out, jobs=args.jobs, runs=args.runs)
    print(table(rows))
    print(f"written: {Path(args.out) / 'ablation.md'}")
    return 0


def run(args) -> int:
    """Run the benchmark(s); a failed one leaves no --out folder it made (its scratch goes with it)."""
    import shutil

    from kws_hpc.errors import KwsError

    out = Path(args.out)
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KwsError(f"cannot make the folder {out} ({e.strerror or e}); choose another --out") from None
    try:
        return _run(args, out)
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(args, out: Path) -> int:
    from kws_hpc.io import write_text
    from kws_hpc.measure import bench

    what = args.bench_command
    rows = []
    if what in ("features", "all"):
        vocab = args.vocab
        if vocab is None and getattr(args, "store", None):
            from kws_hpc.features.store import open_store

            vocab = open_store(args.store).data_config.vocab
        rows.append(bench.bench_features(args.data, out, workers=args.workers, vocab=vocab or "seed12",
                                        rounds=args.rounds))
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
