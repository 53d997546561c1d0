"""The feature job's wall time with several log-mel batch sizes (`MEL_BATCH`), 2 and 1 workers.

Usage:
    python jobmb.py DATA [--rounds 6] [--sizes 8 16] [--workers 2 1] [--vocab seed12] [--scratch jobmb_scratch]

Builds the store of DATA (`--vocab`, seed12 by default) from scratch (a fresh folder each time, imports
loaded before the clock, no progress bars) once per (round, workers, batch size), with
`kws_hpc.features.logmel.MEL_BATCH` set before the workers fork; the order of the batch sizes alternates from
round to round. Prints each round's wall seconds,
then per worker count the medians per batch size, the per-round ratios against the first size, and the
1 -> 2 worker ratio of the medians. The values of the store do not depend on the batch size (the log-mel of a
batch equals the log-mel of each of its clips); only the time is compared.

features.md's run: DATA = the 102,000-clip folder of mkbig.py (61,200 seed12 clips), 6 rounds, sizes 8 and 16.
"""

from __future__ import annotations

import argparse
import shutil
import statistics as st
import time
from pathlib import Path

import torchaudio  # noqa: F401  (imports are paid before any clock starts)

from kws_hpc.config import DataConfig, FeatureConfig
from kws_hpc.features import build as B
from kws_hpc.features import logmel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--scratch", default="jobmb_scratch")
    ap.add_argument("--vocab", default="seed12")
    args = ap.parse_args()
    res: dict = {}
    for r in range(args.rounds):
        for w in args.workers:
            for mb in (args.sizes if r % 2 == 0 else args.sizes[::-1]):
                logmel.MEL_BATCH = mb
                shutil.rmtree(args.scratch, ignore_errors=True)
                t = time.perf_counter()
                B.build_store(args.data, DataConfig(vocab=args.vocab), FeatureConfig(), out=args.scratch, workers=w,
                              progress=False, log=lambda m: None)
                res.setdefault((w, mb), []).append(time.perf_counter() - t)
        print(r, {f"w{w} mb{mb}": round(v[-1], 2) for (w, mb), v in sorted(res.items())}, flush=True)
    shutil.rmtree(args.scratch, ignore_errors=True)
    first = args.sizes[0]
    for w in args.workers:
        meds = {mb: st.median(res[w, mb]) for mb in args.sizes}
        ratios = {mb: [round(a / b, 3) for a, b in zip(res[w, mb], res[w, first])] for mb in args.sizes[1:]}
        print(f"workers {w}: medians " + ", ".join(f"{mb}: {s:.2f} s" for mb, s in meds.items())
              + f"; per round against {first}: {ratios}")
    if {1, 2} <= set(args.workers):
        print("1 -> 2 workers: " + ", ".join(f"{mb}: {st.median(res[1, mb]) / st.median(res[2, mb]):.2f}x"
                                               for mb in args.sizes))


if __name__ == "__main__":
    main()
