"""Pool a `kws-hpc bench ablate` over its stores: mean +- std over every (store, seed) and paired differences.

Usage:
    python ablate_pool.py OUT/ablation.json [OUT2/ablation.json ...] [--base defaults] [--lstm-base lstm]

`bench ablate` prints one column per store; a question asked on the five speaker folds (`cvfolds.py`) needs the
mean over all of them. For each variant: validation
and test accuracy, mean +- sample std over every (store, seed) run, in %; the paired difference to its cell's
base variant (`--base` for GRU variants, `--lstm-base` for variants whose flags hold `--model lstm`) over the
(store, seed) pairs both have, mean +- std and how many are lower; and the sum of training seconds of those
pairs (`train_s`) with their ratio. Several ablation.json files are pooled (a run shared by two is counted once).
"""

from __future__ import annotations

import argparse
import json
import statistics as st


def ms(xs: list[float]) -> str:
    return f"{st.mean(xs):.2f} +- {st.stdev(xs) if len(xs) > 1 else 0.0:.2f}" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--base", default="defaults")
    ap.add_argument("--lstm-base", default="lstm")
    args = ap.parse_args()
    rows, seen = {}, set()
    for f in args.files:
        for r in json.load(open(f)):
            key = (r["variant"], r["store"], r["seed"])
            if key not in seen:
                seen.add(key)
                rows.setdefault(r["variant"], {})[(r["store"], r["seed"])] = r
    print("| variant | runs | validation % | test % | paired validation diff (lower) | paired test diff "
          "| train s, ratio |")
    print("|---|---|---|---|---|---|---|")
    for v, runs in rows.items():
        lstm = any("--model lstm" in r["flags"] for r in runs.values())
        base = rows.get(args.lstm_base if lstm else args.base, {})
        val = [100 * r["val"] for r in runs.values()]
        test = [100 * r["test"] for r in runs.values()]
        pairs = sorted(set(runs) & set(base)) if base is not runs else []
        dv = [100 * (runs[k]["val"] - base[k]["val"]) for k in pairs]
        dt = [100 * (runs[k]["test"] - base[k]["test"]) for k in pairs]
        ts = (sum(runs[k]["train_s"] for k in pairs), sum(base[k]["train_s"] for k in pairs))
        paired = f"{ms(dv)} ({sum(d < 0 for d in dv)} of {len(dv)})" if pairs else "-"
        time = f"{ts[0]:.0f} vs {ts[1]:.0f}, {ts[0] / ts[1]:.2f}" if pairs and ts[1] else "-"
        print(f"| {v} | {len(runs)} | {ms(val)} | {ms(test)} | {paired} | {ms(dt) if pairs else '-'} | {time} |")


if __name__ == "__main__":
    main()
