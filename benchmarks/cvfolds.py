"""Five speaker folds of the shared real set's training + validation keyword clips.

Usage:
    python cvfolds.py [--src ../shared/data/speech_commands_real4_dev] [--out cv] [--folds 5]
    for k in 0 1 2 3 4; do kws-hpc features --data cv/fold$k --vocab yes,no,up,down --split official \
        --out cv/feat; done

Every keyword clip of the source that is not in its testing_list.txt goes into a pool (1,080 clips of
yes/no/up/down, 227 speakers). Speakers, in the order of the sha1 of their id, go one at a time to the fold
that holds the fewest clips so far. Fold k is a folder OUT/fold<k> in the data set's layout: symlinks to
every keyword clip of the source, `_background_noise_` a symlink to the sample's noise folder,
`validation_list.txt` = fold k's clips (so `--split official` trains on the other four folds), and
`testing_list.txt` = the source's official test list restricted to the keywords (the test split is the
same in every fold and is never used to choose). Prints each fold's speakers and clips.

Only the standard library; nothing is written outside OUT.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

WORDS = ("yes", "no", "up", "down")


def speaker(clip: str) -> str:
    """`word/<speaker>_nohash_<n>.wav` -> `<speaker>`."""
    return clip.split("/", 1)[1].split("_nohash_")[0]


def make_folds(src: Path, n_folds: int) -> tuple[list[list[str]], list[str]]:
    """(the pool's clips of each fold, the official test list restricted to WORDS)."""
    test_all = src.joinpath("testing_list.txt").read_text().split()
    test = [c for c in test_all if c.split("/", 1)[0] in WORDS]
    held = set(test)
    pool = sorted(f"{w}/{p.name}" for w in WORDS for p in (src / w).glob("*.wav") if f"{w}/{p.name}" not in held)
    per_speaker: dict[str, list[str]] = {}
    for c in pool:
        per_speaker.setdefault(speaker(c), []).append(c)
    order = sorted(per_speaker, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    members: list[set] = [set() for _ in range(n_folds)]
    size = [0] * n_folds
    for s in order:  # each speaker to the fold with the fewest clips so far (the first such fold on a tie)
        k = size.index(min(size))
        members[k].add(s)
        size[k] += len(per_speaker[s])
    return [[c for c in pool if speaker(c) in m] for m in members], test


def write_fold(src: Path, noise: Path, dst: Path, validation: list[str], test: list[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for w in WORDS:
        (dst / w).mkdir(exist_ok=True)
        for p in sorted((src / w).glob("*.wav")):
            link = dst / w / p.name
            if not link.exists():
                link.symlink_to(p)
    if not (dst / "_background_noise_").exists():
        (dst / "_background_noise_").symlink_to(noise)
    (dst / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (dst / "testing_list.txt").write_text("\n".join(test) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="../shared/data/speech_commands_real4_dev")
    ap.add_argument("--noise", default=None,
                    help="background noise folder (default: SRC/../speech_commands_sample/_background_noise_)")
    ap.add_argument("--out", default="cv")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    src = Path(args.src).resolve()
    noise = Path(args.noise).resolve() if args.noise else src.parent / "speech_commands_sample" / "_background_noise_"
    folds, test = make_folds(src, args.folds)
    for k, fold in enumerate(folds):
        write_fold(src, noise, Path(args.out) / f"fold{k}", fold, test)
        print(f"fold{k}: {len({speaker(c) for c in fold})} speakers, {len(fold)} validation clips")
    print(f"pool: {sum(map(len, folds))} clips; test list: {len(test)} clips")


if __name__ == "__main__":
    main()
