"""Ablations: every recipe variant trained with several seeds on several stores, one table of mean +- std.

Each (store, variant, seed) is one `kws-hpc train` process (one torch thread; `jobs` of them at a time)
into `OUT/runs`, so an interrupted ablation re-run trains only what is missing and a run shared by two
ablations is trained once. Variants are judged on validation accuracy; the test column is for the
record, not for choosing.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from kws_hpc.errors import KwsError
from kws_hpc.io import write_json, write_text


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'NAME=--flag value ...' -> (NAME, flags); 'NAME' alone is the defaults."""
    name, _, flags = text.partition("=")
    if not name.strip():
        raise KwsError(f"--variant {text!r}: write NAME=FLAGS, e.g. 'cosine=--schedule cosine'")
    return name.strip(), shlex.split(flags)


def check_variant(name: str, flags: list[str]) -> None:
    """A variant's flags must make a valid `kws-hpc train` command: checked before anything trains."""
    import contextlib
    import io

    from kws_hpc.cli import build_parser
    from kws_hpc.commands.train import run_config
    from kws_hpc.config import check_config

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(["train", "--store", "-", *flags])
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["not train flags"])[-1].split("error: ", 1)[-1]
        raise KwsError(f"--variant {name}: {why}") from None
    if args.command != "train" or args.out != "runs" or args.threads is not None or "--seed" in flags:
        raise KwsError(f"--variant {name}: give recipe flags only (bench ablate sets --out, --threads, --seed)")
    try:
        check_config(run_config(args))
    except KwsError as e:
        raise KwsError(f"--variant {name}: {e}") from None


def _train(store: str, flags: list[str], seed: int, runs: Path) -> dict:
    cmd = [sys.executable, "-m", "kws_hpc.cli", "train", "--store", store, "--seed", str(seed),
           "--threads", "1", "--no-progress", "--out", str(runs), *flags]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise KwsError(f"training failed ({' '.join(flags) or 'defaults'}, seed {seed}, store {store}): {last}")
    run = Path(p.stdout.strip().splitlines()[-1])
    result = json.loads((run / "result.json").read_text())
    return {"val": result["best_val_acc"], "test": result["test_accuracy"], "epochs": result["epochs_run"],
            "best_epoch": result["best_epoch"], "run": str(run), "wall_s": round(time.perf_counter() - t0, 1),
            "train_s": round(result["seconds_per_epoch"] * result["epochs_run"], 1)}


def ablate(stores: list[str], variants: list[tuple[str, list[str]]], seeds: list[int], out: str | Path,
           jobs: int = 2, runs: str | Path | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Train every (store, variant, seed) into `runs` (default OUT/runs; ablations sharing it share their
    runs); write OUT/ablation.json and OUT/ablation.md; return the rows."""
    out = Path(out)
    runs = Path(runs) if runs else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    todo = [(s, name, flags, seed) for s in stores for name, flags in variants for seed in seeds]
    log(f"{len(todo)} runs: {len(stores)} store(s) x {len(variants)} variant(s) x {len(seeds)} seed(s), "
        f"{jobs} at a time")
    rows, done = [], 0
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [(t, pool.submit(_train, t[0], t[2], t[3], runs)) for t in todo]
        for (store, name, flags, seed), fut in futures:
            r = fut.result()
            done += 1
            rows.append({"store": store, "variant": name, "flags": " ".join(flags), "seed": seed, **r})
            log(f"[{done}/{len(todo)}] {name} seed {seed} on {Path(store).name}: val {r['val']:.4f} "
                f"test {r['test']:.4f} ({r['epochs']} epochs, {r['wall_s']:.0f} s)")
    write_json(out / "ablation.json", rows)
    write_text(out / "ablation.md", table(rows) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one line per variant, per store validation and test accuracy as mean +- std (%)."""
    stores = list(dict.fromkeys(r["store"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    cols = [f"{Path(s).name} val | {Path(s).name} test | min/run" for s in stores]
    head = "| variant | flags | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (2 + 3 * len(stores))]
    for v in variants:
        flags = next(r["flags"] for r in rows if r["variant"] == v)
        cells = []
        for s in stores:
            mine = [r for r in rows if r["variant"] == v and r["store"] == s]
            cells += [_mean_std([r["val"] for r in mine]), _mean_std([r["test"] for r in mine]),
                      f"{np.mean([r['train_s'] for r in mine]) / 60:.1f}" if mine else "-"]
        lines.append(f"| {v} | `{flags or 'defaults'}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    a = 100 * np.asarray(values)
    return f"{a.mean():.2f} +- {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"
