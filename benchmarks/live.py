"""The live detector, as a user gets it: the default commands on a corpus, scored on streams of its speakers.

For each model family and seed it runs what a user types (`kws-hpc features`, `train`, `export`), then puts
the exported model through the live pipeline over streams made from the same folder (by default the shared
real set: real voices, real other words):
- validation speakers (the split export calibrates on, other stream seeds): the miss rate at 1, 2 and 5
  false alarms per hour, for choosing between recipes;
- test speakers: the same DET figures, and the keywords found and false alarms per hour at the threshold
  `export` chose (what `kws-hpc live --wav` prints on these streams), for the record.
A keyword stream holds 60 % keywords (the rest other words and noise); a negative stream no keyword at all.

    python benchmarks/live.py --out OUT [--data FOLDER] [--models gru lstm] [--seeds 0 1 2]
        [--features-args "..."] [--train-args "..."] [--export-args "..."] [--mine "..."] [--name NAME]
        [--val-minutes POS NEG] [--test-minutes POS NEG]

Every step is cached under OUT (stores and runs by signature, exports and scores by run), so a second call
with other seeds or another variant trains only what is missing. One JSON line per run goes to
OUT/results.jsonl and the table of the variant to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "speech_commands_real4_dev"
BUDGETS = (1.0, 2.0, 5.0)
VAL_SEED, TEST_SEED = 41000, 31000  # keyword streams; negative streams the next seed (export calibrates on others)


def cli(*args: str) -> str:
    """Run `kws-hpc ARGS` (this checkout's package) and return the last line it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "kws_hpc.cli", *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"kws-hpc {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout.strip().splitlines()[-1]


def det_figures(model, split: str, store: Path, seed: int, pos_min: float, neg_min: float) -> dict:
    """Miss rate at each budget on `split`'s streams, and hits / false alarms at the file's own threshold."""
    from kws_hpc.evaluate.det import make_stream, measure
    from kws_hpc.evaluate.scorer import one_thread
    from kws_hpc.evaluate.scoring import miss_at

    pos = make_stream(store, split, pos_min, seed, negative=False)
    neg = make_stream(store, split, neg_min, seed + 1, negative=True)
    with one_thread():
        _, curve, p, n = measure(model.scorer, model.labels, model.feature_config, model.detector, pos, neg)
    out = {f"miss@{b:g}": (None if (pt := miss_at(curve, b)) is None else round(pt.miss_rate, 4)) for b in BUDGETS}
    t = model.detector.threshold
    at = min(range(len(curve)), key=lambda i: abs(curve[i].threshold - t))
    out.update(found=round(p[at][1].hit_rate, 4), keywords=p[at][1].keywords,
               fa_per_hour=round(n[at][1].fa_per_hour, 2), false_alarms=n[at][1].false_alarms,
               confused=n[at][1].confused)
    return out


def one_run(args, store: Path, family: str, seed: int) -> dict:
    from kws_hpc.deploy.onnx_model import load_exported

    train = ["train", "--store", str(store), "--model", family, "--seed", str(seed), "--threads", "1",
             "--no-progress", "--out", str(args.out / "runs"), *shlex.split(args.train_args)]
    run = Path(cli(*train))
    if args.mine:  # mine the run's near false alarms on training speakers, then train again with them
        mined = args.out / "mined" / f"{run.name}-{_slug(args.mine)}.npz"
        if not mined.is_file():
            mined.parent.mkdir(parents=True, exist_ok=True)
            cli("mine", str(run), "--out", str(mined), "--no-progress", *shlex.split(args.mine))
        run = Path(cli(*train, "--hard-negatives", str(mined)))
    minutes = "" if args.val_minutes + args.test_minutes == [10.0, 60.0, 10.0, 30.0] else \
        " ".join(map(str, args.val_minutes + args.test_minutes))
    cache = args.out / "scores" / f"{run.name}-{_slug(args.export_args + minutes)}.json"  # the run names its recipe
    if cache.is_file():
        return json.loads(cache.read_text())
    onnx = args.out / "models" / f"{run.name}-{_slug(args.export_args)}.onnx"
    if not onnx.is_file():
        onnx.parent.mkdir(parents=True, exist_ok=True)
        cli("export", str(run), "--out", str(onnx), *shlex.split(args.export_args))
    model = load_exported(onnx)
    result = json.loads((run / "result.json").read_text())
    cal = model.meta.get("detector", {}).get("calibration") or model.meta.get("calibration") or {}
    row = {"name": args.name, "family": family, "seed": seed, "run": run.name, "store": store.name,
           "model": str(onnx),
           "clip_test": result["test_accuracy"], "val_acc": result["best_val_acc"],
           "threshold": model.detector.threshold, "cal_miss": cal.get("miss_rate"), "cal_fa": cal.get("fa_per_hour"),
           "val": det_figures(model, "val", store, VAL_SEED, *args.val_minutes),
           "test": det_figures(model, "test", store, TEST_SEED, *args.test_minutes)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row) + "\n")
    return row


def _slug(text: str) -> str:
    import hashlib

    return "default" if not text.strip() else hashlib.sha1(text.encode()).hexdigest()[:8]


def _ms(values) -> str:
    a = np.array([np.nan if v is None else 100 * v for v in values], float)
    if np.isnan(a).any():
        return f"{np.nanmean(a):.1f} ({int(np.isnan(a).sum())} n/a)" if (~np.isnan(a)).any() else "n/a"
    return f"{a.mean():.1f} +- {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}"


def table(rows: list[dict]) -> str:
    """One line per (variant, family): mean +- std over seeds, in %."""
    head = ("| variant | model | seeds | clip test | val miss@1 | val miss@2 | val miss@5 | test miss@2 | "
            "test found at export's threshold | test FA/h there |")
    lines = [head, "|" + "---|" * 10]
    for key in dict.fromkeys((r["name"], r["family"]) for r in rows):
        mine = [r for r in rows if (r["name"], r["family"]) == key]
        fa = np.array([r["test"]["fa_per_hour"] for r in mine])
        lines.append(f"| {key[0]} | {key[1]} | {len(mine)} | {_ms([r['clip_test'] for r in mine])} | "
                     + " | ".join(_ms([r["val"][f"miss@{b:g}"] for r in mine]) for b in BUDGETS)
                     + f" | {_ms([r['test']['miss@2'] for r in mine])} | {_ms([r['test']['found'] for r in mine])}"
                     f" | {fa.mean():.1f} +- {fa.std(ddof=1) if len(fa) > 1 else 0.0:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--models", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--features-args", default="--vocab yes,no,up,down --split official --extras")
    ap.add_argument("--train-args", default="")
    ap.add_argument("--export-args", default="")
    ap.add_argument("--mine", default="", help="mine ARGS: retrain each run with `kws-hpc mine RUN ARGS` windows")
    ap.add_argument("--name", default="defaults")
    ap.add_argument("--val-minutes", type=float, nargs=2, default=[10.0, 60.0], metavar=("POS", "NEG"),
                    help="the validation streams' length with and without keywords (default: 10 60)")
    ap.add_argument("--test-minutes", type=float, nargs=2, default=[10.0, 30.0], metavar=("POS", "NEG"),
                    help="the test streams' length with and without keywords (default: 10 30)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = Path(cli("features", "--data", str(args.data), "--out", str(args.out / "features"), "--no-progress",
                     *shlex.split(args.features_args)))
    rows = []
    for family in args.models:
        for seed in args.seeds:
            row = one_run(args, store, family, seed)
            rows.append(row)
            with open(args.out / "results.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            v, t = row["val"], row["test"]
            print(f"{args.name} {family} seed {seed}: clip test {100 * row['clip_test']:.1f} %, threshold "
                  f"{row['threshold']:g}; val miss@2 {v['miss@2']}; test found {100 * t['found']:.1f} % at "
                  f"{t['fa_per_hour']:g} FA/h, miss@2 {t['miss@2']}", flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
