"""Ablations: every recipe variant trained with several seeds on several stores, one table of mean +- std.

A variant is `kws-hpc train`'s recipe flags. Each (store, variant, seed) is one `train()` in a fresh
process on one torch thread (`jobs` of them at a time) into `OUT/runs`, so an interrupted ablation re-run
trains only what is missing and a run shared by two ablations is trained once. Variants are judged on
validation accuracy; the test column is for the record, not for choosing.
"""

from __future__ import annotations

import multiprocessing
import shlex
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
from kws_hpc.errors import KwsError
from kws_hpc.io import write_json, write_text

Recipe = tuple[ModelConfig, TrainConfig]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'NAME=--flag value ...' -> (NAME, flags); 'NAME' alone is the defaults."""
    name, _, flags = text.partition("=")
    if not name.strip():
        raise KwsError(f"--variant {text!r}: write NAME=FLAGS, e.g. 'cosine=--schedule cosine'")
    return name.strip(), shlex.split(flags)


def variant_recipe(name: str, flags: list[str]) -> Recipe:
    """The (model, training) configs a variant's flags give; a flag that is not a valid recipe flag, or a
    recipe `check_config` refuses, is a KwsError naming the variant, before anything trains."""
    import argparse
    import contextlib
    import io

    from kws_hpc.config import check_config
    from kws_hpc.options import add_run_options, config_from_args

    parser = argparse.ArgumentParser(prog="kws-hpc train", add_help=False)
    add_run_options(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, extra = parser.parse_known_args(flags)
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["not train flags"])[-1].split("error: ", 1)[-1]
        raise KwsError(f"--variant {name}: {why}") from None
    if extra or any(f == "--seed" or f.startswith("--seed=") for f in flags):
        raise KwsError(f"--variant {name}: give recipe flags only (bench ablate sets --out, --threads, --seed)")
    recipe = config_from_args(ModelConfig, args), config_from_args(TrainConfig, args)
    try:
        check_config(RunConfig(store="-", model=recipe[0], train=recipe[1]))
    except KwsError as e:
        raise KwsError(f"--variant {name}: {e}") from None
    return recipe


def train_one(store: str, recipe: Recipe, seed: int, runs: Path) -> dict:
    """Train (or find trained) one seed of a recipe on one torch thread; its figures from result.json."""
    t0 = time.perf_counter()  # before the imports: loading torch is part of what a training costs
    from kws_hpc.config import replace
    from kws_hpc.runtime import set_threads
    from kws_hpc.train.loop import train
    from kws_hpc.train.rundir import RunDir

    set_threads(1)
    model, tc = recipe
    run = RunDir(train(RunConfig(store=store, model=model, train=replace(tc, seed=seed)), out=runs,
                       log=lambda m: None, progress=False))
    result = run.load()
    return {"val": result["best_val_acc"], "test": result["test_accuracy"], "epochs": result["epochs_run"],
            "best_epoch": result["best_epoch"], "run": str(run.path), "wall_s": round(time.perf_counter() - t0, 1),
            "train_s": round(result["seconds_per_epoch"] * result["epochs_run"], 1)}


def ablate(stores: list[str], variants: list[tuple[str, list[str]]], seeds: list[int], out: str | Path,
           jobs: int = 2, runs: str | Path | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Train every (store, variant, seed) into `runs` (default OUT/runs; ablations sharing it share their
    runs), `jobs` processes at a time; write OUT/ablation.json and OUT/ablation.md; return the rows.
    `variants` are (name, flags) pairs (`parse_variant`)."""
    recipes = {(name, tuple(flags)): variant_recipe(name, flags) for name, flags in variants}
    out = Path(out)
    runs = Path(runs) if runs else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    todo = [(s, name, flags, seed) for s in stores for name, flags in variants for seed in seeds]
    log(f"{len(todo)} runs: {len(stores)} store(s) x {len(variants)} variant(s) x {len(seeds)} seed(s), "
        f"{jobs} at a time")
    rows, done = [], 0
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per training, as a command would be
    with ProcessPoolExecutor(max(1, jobs), mp_context=spawn, max_tasks_per_child=1) as pool:
        futures = [(t, pool.submit(train_one, t[0], recipes[t[1], tuple(t[2])], t[3], runs)) for t in todo]
        for (store, name, flags, seed), fut in futures:
            try:
                r = fut.result()
            except Exception as e:  # a KwsError from train(), or a process that died
                why = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                raise KwsError(f"training failed ({' '.join(flags) or 'defaults'}, seed {seed}, store {store}): "
                               f"{why}") from None
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
