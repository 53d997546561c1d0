"""Every benchmark protocol of this folder, at full size, and the summary table of benchmarks/README.md.

    python benchmarks/all.py --out bench_all [--only NAME ...] [--tiny]

Each protocol runs the commands its file names (`kws-hpc ...` and the scripts beside this one) into
OUT/<protocol>/ and keeps its figures in OUT/<protocol>.json; a protocol whose JSON exists is not run again,
so an interrupted call continues. The table of every figure goes to OUT/summary.md and stdout. Protocols:
features, scale, train, sweep, tta, real, live, live_real, inference, demo (a few hours on 2 cores in all;
run it on an otherwise idle machine: the speed ratios are of two sides run in one command). `--tiny` runs
each protocol on a small synthetic corpus with a few epochs and short streams: a check that every step
still runs, with figures that mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "speech_commands_real4_dev"
REAL_ARGS = "--vocab yes,no,up,down --split official"
OLD = "--schedule none --lr 0.001 --conv-channels 0 --epochs 20 --no-bf16 --noise-aug 0"
# runs a command and prints its peak resident memory (KB, over it and its children) as the last stderr line
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r)")
PROTOCOLS = ("features", "scale", "train", "sweep", "tta", "real", "live", "live_real", "inference", "demo")


class Bench:
    """The sizes of one call (full or tiny) and the helpers every protocol uses."""

    def __init__(self, out: Path, tiny: bool):
        self.out, self.tiny = out, tiny
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.seeds = ["0"] if tiny else ["0", "1", "2"]
        self.epochs = ["--epochs", "1"] if tiny else []

    def run(self, *args: str, script: str | None = None) -> tuple[str, float, int]:
        """(stdout, wall seconds, peak RSS in MB of it and its children) of `kws-hpc ARGS` or a script."""
        cmd = [sys.executable, str(ROOT / "benchmarks" / script)] if script else [sys.executable, "-m", "kws_hpc.cli"]
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", PEAK, *cmd, *map(str, args)], capture_output=True, text=True,
                           env=self.env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"{' '.join(map(str, args))} failed:\n{p.stdout[-1500:]}\n{p.stderr[-2500:]}")
        return p.stdout, wall, int(p.stderr.strip().splitlines()[-1]) // 1024

    def last(self, *args: str) -> str:
        return self.run(*args)[0].strip().splitlines()[-1]

    def jsonl(self, *args: str) -> list[dict]:
        """The JSON lines a `kws-hpc bench` call printed."""
        return [json.loads(line) for line in self.run(*args)[0].splitlines() if line.startswith("{")]

    # corpora and stores, made once
    def democ(self) -> Path:
        path = self.out / "democ"
        if not (path / "yes").is_dir():
            self.run("data", "synth", path, "--speakers", 12 if self.tiny else 300, "--takes", 1)
        return path

    def big(self) -> Path:
        path = self.out / "big"
        if not (path / "yes").is_dir():
            self.run(self.democ(), path, "--copies", 2 if self.tiny else 17, script="mkbig.py")
        return path

    def demo_store(self) -> Path:
        return Path(self.last("features", "--data", self.democ(), "--extras", "--out", self.out / "features",
                              "--no-progress"))

    def real(self) -> Path:
        return self.democ() if self.tiny else REAL

    def real_store(self) -> Path:
        args = "--vocab yes,no,up,down" if self.tiny else REAL_ARGS
        return Path(self.last("features", "--data", self.real(), *args.split(), "--out", self.out / "features",
                              "--no-progress"))


def features(b: Bench) -> dict:
    rows = [b.jsonl("bench", "features", "--data", b.big(), "--workers", w, "--rounds", 1 if b.tiny else 3,
                    "--out", b.out / "features_bench")[0] for w in (2, 1)]
    return {"speedup_2_workers": rows[0]["speedup"], "speedup_1_worker": rows[1]["speedup"],
            "one_to_two_workers": round(rows[1]["feature_job_s"] / rows[0]["feature_job_s"], 2),
            "clips": rows[0]["clips"], "rows": rows}


def scale(b: Bench) -> dict:
    _, wall, peak = b.run("features", "--data", b.big(), "--vocab", "all", "--workers", 2, "--no-progress",
                          "--out", b.out / "big_features")
    summary = json.loads(next((b.out / "big_features").glob("*/summary.json")).read_text())
    store = (b.out / "big_features" / summary["signature"])
    epochs = {}
    for cell in ("gru", "lstm"):
        run = Path(b.last("train", "--store", store, "--model", cell, "--epochs", 1, "--no-progress",
                          "--out", b.out / "big_runs"))
        epochs[cell] = json.loads((run / "result.json").read_text())["seconds_per_epoch"]
    return {"clips": sum(c["total"] for c in summary["counts"].values()), "features_s": round(wall, 1),
            "peak_mb": peak, "epoch_s": epochs, "train_rows": summary["counts"]["train"]["total"]}


def train(b: Bench) -> dict:
    rows = b.jsonl("bench", "train", "--store", b.demo_store(), "--data", b.democ(), "--epochs", 1 if b.tiny else 2,
                   "--out", b.out / "train_bench")
    return {"speedup": {r["cell"]: r["speedup"] for r in rows if "speedup" in r}, "rows": rows}


def sweep(b: Bench) -> dict:
    rows = b.jsonl("bench", "sweep", "--store", b.demo_store(), "--out", b.out / "sweep_bench",
                   *(["--trials", 2, "--epochs", 1, "--space", "tiny"] if b.tiny else []))
    return {"speedup": rows[-1]["speedup"], "rows": rows}


def tta(b: Bench) -> dict:
    store, runs = b.real_store(), b.out / "tta_runs"
    for seed in b.seeds:  # one run at a time, torch's default threads: as a user trains on a laptop
        for cell in ("gru", "lstm"):
            for recipe in ("", OLD):
                b.run("train", "--store", store, "--model", cell, "--seed", seed, "--no-progress", "--out", runs,
                      *shlex.split(recipe), *b.epochs)
    return {"table": b.run(runs, script="tta.py")[0].strip()}


def real(b: Bench) -> dict:
    store = b.real_store()
    variants = ["defaults=--epochs 1", "lstm=--model lstm --epochs 1"] if b.tiny else ["lstm=--model lstm"]
    b.run("bench", "ablate", "--store", store, "--seeds", *b.seeds, *(f"--variant={v}" for v in variants),
          "--out", b.out / "real_ablate")
    rows = json.loads((b.out / "real_ablate" / "ablation.json").read_text())
    out = {}
    for name, cell in (("defaults", "gru"), ("lstm", "lstm")):
        mine = [r for r in rows if r["variant"] == name]
        out[cell] = {k: _ms([r[k] for r in mine]) for k in ("val", "test")}
    return {**out, "seeds": len(b.seeds), "store": store.name}


def _live(b: Bench, name: str, data: Path, features_args: str, test_minutes) -> dict:
    tiny = ["--train-args=--epochs 1", "--export-args=--calibrate-minutes 0.3 --negative-minutes 0.3",
            "--val-minutes", 0.3, 0.3] if b.tiny else []
    minutes = (0.3, 0.3) if b.tiny else test_minutes
    stdout = b.run("--out", b.out / name, "--data", data, f"--features-args={features_args}", "--seeds", *b.seeds,
                   "--test-minutes", *minutes, *tiny, script="live.py")[0]
    rows = [json.loads(line) for line in (b.out / name / "results.jsonl").read_text().splitlines()]
    out = {"table": stdout[stdout.index("| variant"):].strip()}
    for cell in ("gru", "lstm"):
        mine = [r for r in rows if r["family"] == cell][-len(b.seeds):]
        out[cell] = {"found": _ms([r["test"]["found"] for r in mine]),
                     "fa_per_hour": _ms([r["test"]["fa_per_hour"] for r in mine], scale=1),
                     "clip_test": _ms([r["clip_test"] for r in mine]),
                     "goal_met": sum(r["test"]["found"] >= 0.95 and r["test"]["fa_per_hour"] <= 2 for r in mine),
                     "model": mine[0]["model"]}
    return out


def live(b: Bench) -> dict:
    corpus = b.out / "c200t3"
    if not (corpus / "yes").is_dir():
        b.run("data", "synth", corpus, "--speakers", 12 if b.tiny else 200, *(["--takes", 1] if b.tiny else []))
    return _live(b, "live", corpus, "--extras", (10, 60))


def live_real(b: Bench) -> dict:
    args = "--vocab yes,no,up,down --extras" if b.tiny else REAL_ARGS + " --extras"
    return _live(b, "live_real", b.real(), args, (10, 30))


def inference(b: Bench) -> dict:
    model = json.loads((b.out / "live_real.json").read_text())["gru"]["model"] if (b.out / "live_real.json").is_file() \
        else live_real(b)["gru"]["model"]
    row = b.jsonl("bench", "infer", "--model", model, "--windows", 50 if b.tiny else 500, "--out",
                  b.out / "infer_bench")[0]
    return {k: row[k] for k in ("model_ms_p50", "model_ms_p99", "window_ms_p50", "window_ms_p99")}


def demo(b: Bench) -> dict:
    args = ["--speakers", 12, "--trials", 2, "--sweep-epochs", 1, "--retrain-epochs", 1] if b.tiny else []
    stdout, wall, peak = b.run("demo", "--out", b.out / "demo_out", *args)
    return {"wall_s": round(wall, 1), "peak_mb": peak,
            "result": [line for line in stdout.splitlines()
                       if line.startswith(("hits:", "false alarms:", "threshold"))]}


def _ms(values, scale: float = 100) -> str:
    """Mean +- sample std (in % by default)."""
    a = scale * np.asarray(values, float)
    return f"{a.mean():.1f} +- {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}"


def summary(f: dict) -> str:
    """The summary table from the protocols' figures (rows of protocols not run yet are left out)."""
    rows = []
    if "features" in f:
        x = f["features"]
        rows.append(("feature job vs a per-clip loop, 2 cores", f"{x['speedup_2_workers']}x with 2 workers "
                     f"({x['clips']:,} clips); 1 -> 2 workers {x['one_to_two_workers']}x", "features.md"))
    if "scale" in f:
        x = f["scale"]
        rows.append(("100k-clip folder: features, one epoch", f"{x['clips']:,} clips in {x['features_s']} s, "
                     f"{x['peak_mb']} MB peak; epoch over {x['train_rows']:,} rows: GRU {x['epoch_s']['gru']:.0f} s, "
                     f"LSTM {x['epoch_s']['lstm']:.0f} s", "scale.md"))
    if "train" in f:
        x = f["train"]["speedup"]
        rows.append(("training epoch: store vs WAV DataLoader", f"GRU {x['gru']}x, LSTM {x['lstm']}x", "train.md"))
    if "sweep" in f:
        rows.append(("sweep: 2 local workers vs 1", f"{f['sweep']['speedup']}x trials/hour", "sweep.md"))
    if "real" in f:
        x = f["real"]
        rows.append((f"real speech, 4 words, official split ({x['seeds']} seeds)",
                     f"GRU {x['gru']['test']} % test ({x['gru']['val']} val), LSTM {x['lstm']['test']} % "
                     f"({x['lstm']['val']} val)", "real_speech.md"))
    for key, what in (("live", "live, built-in corpus (10 + 60 min test streams)"),
                      ("live_real", "live, real voices (10 + 30 min test streams)")):
        if key in f:
            x = f[key]
            rows.append((what, "; ".join(f"{c.upper()} {x[c]['found']} % found at {x[c]['fa_per_hour']} FA/h"
                                         for c in ("gru", "lstm")), f"{key}.md"))
    if "inference" in f:
        x = f["inference"]
        rows.append(("one 1-s window, log-mel + model, one thread", f"p50 {x['window_ms_p50']} ms, p99 "
                     f"{x['window_ms_p99']} ms", "inference.md"))
    if "demo" in f:
        x = f["demo"]
        rows.append(("`make demo` end to end", f"{x['wall_s'] / 60:.1f} min, {x['peak_mb']} MB peak", "demo.md"))
    lines = ["| benchmark | figure | file |", "|---|---|---|"]
    lines += [f"| {a} | {b} | [{c}]({c}) |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    ap.add_argument("--tiny", action="store_true", help="small sizes: checks that every step runs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    b, figures = Bench(args.out.resolve(), args.tiny), {}
    for name in PROTOCOLS:
        path = args.out / f"{name}.json"
        if name in args.only and not path.is_file():
            t0 = time.perf_counter()
            result = globals()[name](b)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            result["date"] = time.strftime("%Y-%m-%d")
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(f"{name}: {result['seconds']:.0f} s", flush=True)
        if path.is_file():
            figures[name] = json.loads(path.read_text())
    table = summary(figures)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
