"""`kws-hpc mine`: the windows of training-speaker audio without keywords on which a run's model fires."""

from __future__ import annotations

from kws_hpc.evaluate.mine import MINE_FLOOR, MINE_MINUTES


def register(sub) -> None:
    p = sub.add_parser("mine", help="collect a run's near false alarms on training speakers (hard negatives)",
                       description="Run RUN's best model over a stream of the store's training speakers with "
                                   "no keyword in it and write the log-mels of every 1-s window whose best "
                                   "keyword score reaches --floor to OUT (.npz). `kws-hpc train --hard-negatives "
                                   "OUT` adds them to training as _unknown_ (the store needs --extras). "
                                   "Validation and test speakers are never heard.")
    p.add_argument("run", metavar="RUN", help="finished run folder (its store's corpus must be reachable)")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="file to write")
    p.add_argument("--minutes", type=float, default=MINE_MINUTES,
                   help=f"length of the stream, minutes (default: {MINE_MINUTES:g})")
    p.add_argument("--floor", type=float, default=MINE_FLOOR,
                   help=f"keyword score a window must reach to be kept (default: {MINE_FLOOR:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from kws_hpc.evaluate.mine import mine

    print(mine(args.run, args.out, args.minutes, args.floor, progress=not args.no_progress,
               log=lambda m: print(m, file=sys.stderr)))
    return 0
