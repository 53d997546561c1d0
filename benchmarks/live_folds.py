"""A training recipe's live detector on real voices, judged on speaker folds: one DET over five validation sets.

The shared real set's validation split holds 200 keyword clips and 85 other-word clips, so a recipe's miss
rate at a false-alarm budget turns on a handful of clips and moves 10-20 points from seed to seed. Here every
clip outside the official test list (keywords and other words) goes into a pool, speakers in sha1 order go
one at a time to the fold holding the fewest clips, and fold k is a folder of links whose
`validation_list.txt` is fold k (so `--split official` trains on the other folds). For each fold the recipe
is trained (seed = k), and its checkpoint runs through the live pipeline over a 10-min keyword stream and a
30-min negative stream of the fold's validation speakers; the misses and false alarms of the five are summed
into one DET curve (about 1,100 keywords and 2.5 hours without keywords).

    python benchmarks/live_folds.py --out OUT --name NAME [--data FOLDER] [--extra FOLDER ...]
        [--features-args "..."] [--train-args "..."] [--mine "..."] [--model gru|lstm] [--folds 5]
        [--minutes POS NEG]

`--extra` adds folders of clips to the training split of every fold (their clips are in no list), e.g. a
synthetic corpus of other words. One JSON line per call goes to OUT/results.jsonl and the table of every
call so far to stdout: the miss rate at 1, 2, 5 and 10 false alarms per hour of the pooled curve.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "speech_commands_real4_dev"
BUDGETS = (1, 2, 5, 10)
SEED = 41000  # the keyword streams'; the negative streams' is the next


def cli(*args: str) -> str:
    """Run `kws-hpc ARGS` (this checkout's package) and return the last line it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "kws_hpc.cli", *map(str, args)], capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        sys.exit(f"kws-hpc {' '.join(map(str, args))} failed:\n{p.stderr[-2500:]}")
    return p.stdout.strip().splitlines()[-1]


def _speaker(clip: str) -> str:
    return clip.split("/", 1)[1].split("_nohash_")[0]


def make_folds(src: Path, out: Path, n_folds: int, extra: list[Path]) -> list[Path]:
    """Fold folders under `out` (made once per source, folds and extra folders)."""
    key = hashlib.sha1(json.dumps([str(src), n_folds, *map(str, extra)]).encode()).hexdigest()[:8]
    base = out / f"folds-{key}"
    folders = [base / f"fold{k}" for k in range(n_folds)]
    if all((f / "validation_list.txt").is_file() for f in folders):
        return folders
    test = set((src / "testing_list.txt").read_text().split())
    words = sorted(d.name for d in src.iterdir() if d.is_dir() and not d.name.startswith("_"))
    pool = sorted(f"{w}/{p.name}" for w in words for p in (src / w).glob("*.wav") if f"{w}/{p.name}" not in test)
    per_speaker: dict[str, list[str]] = {}
    for clip in pool:
        per_speaker.setdefault(_speaker(clip), []).append(clip)
    members: list[set] = [set() for _ in range(n_folds)]
    size = [0] * n_folds
    for s in sorted(per_speaker, key=lambda s: hashlib.sha1(s.encode()).hexdigest()):
        k = size.index(min(size))
        members[k].add(s)
        size[k] += len(per_speaker[s])
    noise = src / "_background_noise_"
    if noise.is_file():  # a link stored as a file holding its relative target
        noise = src / noise.read_text().strip()
    for folder, fold in zip(folders, members):
        for root in (src, *extra):
            for word in (d for d in root.iterdir() if d.is_dir() and not d.name.startswith("_")):
                (folder / word.name).mkdir(parents=True, exist_ok=True)
                for wav in word.glob("*.wav"):
                    if not (folder / word.name / wav.name).exists():
                        (folder / word.name / wav.name).symlink_to(wav.resolve())
        if not (folder / "_background_noise_").exists():
            (folder / "_background_noise_").symlink_to(noise.resolve())
        (folder / "testing_list.txt").write_text("\n".join(sorted(test)) + "\n")
        (folder / "validation_list.txt").write_text("\n".join(c for c in pool if _speaker(c) in fold) + "\n")
    return folders


def fold_counts(args, k: int, folder: Path) -> tuple[np.ndarray, float]:
    """([threshold, keywords, hits, false alarms, negative seconds] rows of fold k's validation streams, its
    run's validation accuracy)."""
    from kws_hpc.evaluate.det import make_stream, measure
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.scorer import checkpoint_scorer, one_thread

    store = Path(cli("features", "--data", folder, "--out", args.out / "features", "--no-progress",
                     *shlex.split(args.features_args)))
    train = ["train", "--store", store, "--model", args.model, "--seed", k, "--threads", 1, "--no-progress",
             "--out", args.out / "runs", *shlex.split(args.train_args)]
    run = Path(cli(*train))
    if args.mine:  # mine the run's near false alarms on its training speakers, then train again with them
        mined = args.out / "mined" / f"{run.name}.npz"
        if not mined.is_file():
            mined.parent.mkdir(parents=True, exist_ok=True)
            cli("mine", run, "--out", mined, "--no-progress", *shlex.split(args.mine))
        run = Path(cli(*train, "--hard-negatives", mined))
    cache = args.out / "counts" / f"{run.name}-{args.minutes[0]:g}-{args.minutes[1]:g}.json"
    if not cache.is_file():
        pos = make_stream(store, "val", args.minutes[0], SEED, negative=False)
        neg = make_stream(store, "val", args.minutes[1], SEED + 1, negative=True)
        scorer, labels, fc, _ = checkpoint_scorer(run)
        with one_thread():
            _, _, p, n = measure(scorer, labels, fc, DetectorConfig(), pos, neg)
        rows = [[t, a.keywords, a.hits, b.false_alarms, b.seconds] for (t, a), (_, b) in zip(p, n)]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"rows": rows, "val_acc": json.loads((run / "result.json").read_text())
                                     ["best_val_acc"]}))
    got = json.loads(cache.read_text())
    return np.array(got["rows"], float), got["val_acc"]


def miss_at(counts: np.ndarray, budget: float) -> float | None:
    """The lowest miss rate whose false alarms per hour are within the budget (None: no threshold is)."""
    miss = 1 - counts[:, 2] / counts[:, 1]
    fa = counts[:, 3] * 3600 / counts[:, 4]
    ok = miss[fa <= budget + 1e-9]
    return round(float(ok.min()), 4) if len(ok) else None


def table(rows: list[dict]) -> str:
    lines = ["| recipe | model | folds | validation accuracy | " + " | ".join(f"miss @ {b} FA/h" for b in BUDGETS)
             + " |", "|---|---|---|---|" + "---|" * len(BUDGETS)]
    for r in rows:
        cells = ["-" if r[f"miss@{b}"] is None else f"{100 * r[f'miss@{b}']:.1f} %" for b in BUDGETS]
        lines.append(f"| {r['name']} | {r['model']} | {r['folds']} | {100 * r['val_acc']:.2f} % | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", required=True, help="the recipe's name in the table")
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="folders of training-only clips")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--model", default="gru", choices=["gru", "lstm"])
    ap.add_argument("--features-args", default="--vocab yes,no,up,down --split official --extras")
    ap.add_argument("--train-args", default="")
    ap.add_argument("--minutes", type=float, nargs=2, default=[10.0, 30.0], metavar=("POS", "NEG"),
                    help="each fold's validation streams with and without keywords (default: 10 30)")
    ap.add_argument("--mine", default="", help="mine ARGS: retrain each fold with `kws-hpc mine RUN ARGS` windows")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    pooled, accs = None, []
    for k, folder in enumerate(make_folds(args.data.resolve(), args.out, args.folds, args.extra)):
        counts, acc = fold_counts(args, k, folder)
        pooled = counts if pooled is None else np.c_[counts[:, :1], pooled[:, 1:] + counts[:, 1:]]
        accs.append(acc)
        print(f"{args.name} fold {k}: validation accuracy {100 * acc:.2f} %, miss @ 2 FA/h {miss_at(counts, 2)}",
              flush=True)
    row = {"name": args.name, "model": args.model, "folds": args.folds, "val_acc": float(np.mean(accs)),
           "keywords": int(pooled[0, 1]), "negative_hours": round(float(pooled[0, 4]) / 3600, 2),
           **{f"miss@{b}": miss_at(pooled, b) for b in BUDGETS}}
    with open(args.out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines()]
    print(table(list({(r["name"], r["model"]): r for r in rows}.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
