"""Time to accuracy of training recipes, from finished run folders.

Usage:
    python tta.py RUNS... [--reference old] [--within 0.3]

Reads every run folder under RUNS (config.json, history.json, result.json; unfinished runs are skipped) and
groups the runs by (store signature, cell, recipe). The recipe is the run's training and model options that
differ from today's defaults, written as `kws-hpc train` flags: `default` when none differ, `old` for the
recipe before the one-cycle schedule (`--schedule none --lr 0.001 --conv-channels 0 --epochs 20 --no-bf16
--noise-aug 0`). Seed, device, determinism and threads are not part of a recipe; `bf16` counts as default
where the run's config.json matches what this machine would run (float32 on a CPU without native bfloat16).

Per group, one line (markdown row):
- best val %: the mean over runs of each run's best validation accuracy;
- test %: the mean of result.json's test accuracy;
- epoch, s to it: medians over runs of the first epoch whose validation accuracy is within WITHIN points of
  the run's own best, and of the training seconds up to and including it (history.json's `seconds`);
- s/epoch: the median over runs of each run's median epoch seconds;
- vs reference: this group's median seconds to its own accuracy over the reference recipe's (same store and
  cell), and the median over runs of the seconds to first reach the reference's median best validation
  accuracy minus WITHIN points ("not reached" when a run never does).

Seconds are wall time inside `train()` per epoch (validation included), so compare ratios measured side by
side on one machine, one run at a time, not seconds across days.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics as st
import sys
from pathlib import Path

from kws_hpc.config import ModelConfig, TrainConfig, from_dict, to_dict
from kws_hpc.runtime import native_bf16

IGNORED = {"seed", "device", "deterministic", "amp", "cell"}
OLD = "--schedule none --lr 0.001 --conv-channels 0 --epochs 20 --no-bf16 --noise-aug 0"


def _flag(name: str, value) -> str:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + name.replace("_", "-")
    if isinstance(value, (list, tuple)):
        return f"{flag} {' '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value)}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


def recipe(config: dict) -> str:
    """The run's recipe as the `kws-hpc train` flags that differ from today's defaults ('default': none)."""
    model, train = from_dict(ModelConfig, config["model"]), from_dict(TrainConfig, config["train"])
    base = {**to_dict(ModelConfig()), **to_dict(TrainConfig(bf16=native_bf16()))}
    mine = {**to_dict(model), **to_dict(train)}
    order = ["schedule", "lr", "conv_channels", "conv_layers", "conv_stride", "epochs", "bf16", "noise_aug"]
    diff = [k for k in mine if k not in IGNORED and mine[k] != base.get(k)]
    diff.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    flags = " ".join(_flag(k, mine[k]) for k in diff)
    return "default" if not flags else "old" if flags == OLD else flags


def load_runs(roots: list[str], within: float) -> dict:
    groups = collections.defaultdict(list)
    for root in roots:
        for cfg_path in sorted(Path(root).rglob("config.json")):
            d = cfg_path.parent
            try:
                hist = json.loads((d / "history.json").read_text())
                result = json.loads((d / "result.json").read_text())
            except FileNotFoundError:
                continue  # unfinished
            cfg = json.loads(cfg_path.read_text())
            best = max(e["val_acc"] for e in hist)
            k = next(i for i, e in enumerate(hist) if e["val_acc"] >= best - within / 100)
            key = (cfg["store_signature"], cfg["model"]["cell"], recipe(cfg))
            groups[key].append({"seed": cfg["train"]["seed"], "val": best, "test": result["test_accuracy"],
                                "epoch": k + 1, "to": sum(e["seconds"] for e in hist[:k + 1]),
                                "s_epoch": st.median(e["seconds"] for e in hist), "hist": hist})
    return groups


def seconds_to(runs: list[dict], target: float, within: float):
    """Median over runs of the seconds to the first epoch at or above target - within (None: not every run)."""
    out = []
    for r in runs:
        k = next((i for i, e in enumerate(r["hist"]) if e["val_acc"] >= target - within / 100), None)
        if k is None:
            return None
        out.append(sum(e["seconds"] for e in r["hist"][:k + 1]))
    return st.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="folders holding run folders (any depth)")
    ap.add_argument("--reference", default="old", help="the recipe the ratios are against (default: old)")
    ap.add_argument("--within", type=float, default=0.3, help="points under a run's best that count (default: 0.3)")
    args = ap.parse_args()
    groups = load_runs(args.runs, args.within)
    if not groups:
        sys.exit("no finished run folders under " + " ".join(args.runs))
    print("| store | cell | recipe | runs (seeds) | best val % | test % | epoch, s to it | s/epoch "
          "| time to its own accuracy / reference's | time to the reference's accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (store, cell, rec), runs in sorted(groups.items()):
        med = lambda f: st.median(r[f] for r in runs)  # noqa: E731
        ref = groups.get((store, cell, args.reference))
        ratio = to_ref = ""
        if ref and rec != args.reference:
            ref_to, ref_val = st.median(r["to"] for r in ref), st.median(r["val"] for r in ref)
            ratio = f"{med('to') / ref_to:.2f}"
            t = seconds_to(runs, ref_val, args.within)
            to_ref = "not reached by every run" if t is None else f"{t:.1f} s ({t / ref_to:.2f})"
        seeds = sorted(r["seed"] for r in runs)
        print(f"| {store} | {cell} | {rec} | {len(runs)} ({', '.join(map(str, seeds))}) "
              f"| {100 * st.mean(r['val'] for r in runs):.2f} | {100 * st.mean(r['test'] for r in runs):.2f} "
              f"| {med('epoch'):g}, {med('to'):.1f} s | {med('s_epoch'):.2f} | {ratio} | {to_ref} |")


if __name__ == "__main__":
    main()
