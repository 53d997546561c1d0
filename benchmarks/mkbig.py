"""A data set at the full data set's scale from a small corpus, by hard links.

Usage:
    kws-hpc data synth democ --speakers 300 --takes 1     # 20 words x 300 speakers = 6,000 clips
    python benchmarks/mkbig.py democ big                   # 17 x 6,000 = 102,000 clips

Every clip `word/<speaker>_nohash_<rest>` of SRC becomes COPIES hard links
`word/<speaker><k:02x>_nohash_<rest>` in DST (k = 0..COPIES-1): COPIES renamed speakers per speaker, so the
data set's hash split spreads the copies over the splits like new speakers. `_background_noise_` is linked
as is; any other top-level file or folder is left out. DST is removed first. SRC and DST must be on one
file system (hard links); nothing is copied, so the folder costs only directory entries.

With the demo corpus (`--speakers 300 --takes 1`, seed 0) and COPIES 17 the folder holds 102,000 clips of 20
words; `kws-hpc features --data DST --vocab all` gives 80,920 / 10,060 / 11,020 clips (store `551f1fcfc4fa`),
and the seed12 subset that `kws-hpc bench features --data DST` uses is 61,200 clips.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

BACKGROUND = "_background_noise_"


def make_big(src: Path, dst: Path, copies: int = 17) -> int:
    """Write the linked folder; returns the number of clips linked."""
    if copies < 1 or copies > 256:
        raise SystemExit(f"--copies {copies}: use 1..256 (the suffix is two hex digits)")
    shutil.rmtree(dst, ignore_errors=True)
    clips = 0
    for word in sorted(os.listdir(src)):
        d = src / word
        if not d.is_dir():
            continue
        (dst / word).mkdir(parents=True)
        for name in sorted(os.listdir(d)):
            if word == BACKGROUND:
                os.link(d / name, dst / word / name)
                continue
            if "_nohash_" not in name:
                continue
            spk, rest = name.split("_nohash_", 1)
            for k in range(copies):
                os.link(d / name, dst / word / f"{spk}{k:02x}_nohash_{rest}")
            clips += copies
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="a Speech Commands layout folder (e.g. from kws-hpc data synth)")
    ap.add_argument("dst", type=Path, help="the folder to write (removed first)")
    ap.add_argument("--copies", type=int, default=17, help="renamed speakers per speaker (default: 17)")
    args = ap.parse_args()
    n = make_big(args.src, args.dst, args.copies)
    print(f"{n:,} clips linked into {args.dst}")


if __name__ == "__main__":
    main()
