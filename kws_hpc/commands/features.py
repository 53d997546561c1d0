"""`kws-hpc features`: build (or find) the HDF5 feature store."""

from __future__ import annotations

from ..config import DataConfig, FeatureConfig


def register(sub) -> None:
    p = sub.add_parser("features", help="compute log-mel features once into an HDF5 store",
                       description="Decode clips, compute log-mels in batches and write DIR/<signature>/"
                                   "{train,val,test}.h5, clips.tsv and summary.json. Prints the store folder last.")
    p.add_argument("--data", required=True, help="Speech Commands folder or .tar.gz (or a synth corpus)")
    add_data_options(p)
    p.add_argument("--out", default="features", help="folder that holds stores (default: features)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores; 0 = in-process)")
    p.add_argument("--dtype", choices=["float16", "float32"], default=FeatureConfig.dtype)
    p.add_argument("--n-mels", type=int, default=FeatureConfig.n_mels)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    from ..launch import add_executor_options

    add_executor_options(p)
    p.set_defaults(func=run)


def add_data_options(p) -> None:
    """Options that choose the clips of a store (shared with the demo)."""
    d = DataConfig()
    p.add_argument("--vocab", default=d.vocab, help="seed12 | v2-12 | digits | all | comma list (default: seed12)")
    p.add_argument("--split", default=d.split, choices=["hash", "official"], help="split rule (default: hash)")
    p.add_argument("--val-percent", type=float, default=d.val_percent)
    p.add_argument("--test-percent", type=float, default=d.test_percent)
    p.add_argument("--quota", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=None,
                   help="per-class cap per split")
    p.add_argument("--extras", action="store_true",
                   help="add _silence_ and _unknown_ classes to any vocabulary (what a live detector needs)")
    p.add_argument("--unknown-percent", type=float, default=d.unknown_percent,
                   help="with --extras or v2-12: size of _unknown_ and of _silence_, in %% of the keyword clips")
    p.add_argument("--augment", type=int, default=0, metavar="K", help="K augmented copies of each training clip")
    p.add_argument("--seed", type=int, default=d.seed, help="sampling and augmentation seed")


def data_config(args) -> DataConfig:
    q = args.quota or (None, None, None)
    return DataConfig(vocab=args.vocab, split=args.split, val_percent=args.val_percent,
                      test_percent=args.test_percent, quota_train=q[0], quota_val=q[1], quota_test=q[2],
                      extras=args.extras, unknown_percent=args.unknown_percent, augment=args.augment, seed=args.seed)


def run(args) -> int:
    from pathlib import Path

    from ..launch import check_job, job_options, submit
    from ..prepare import build_store

    feat = FeatureConfig(dtype=args.dtype, n_mels=args.n_mels)
    job = job_options(args, args.out, "kws-features")
    check_job(job)
    store = submit(build_store, str(Path(args.data).resolve()), data_config(args), feat,
                   out=str(Path(args.out).resolve()), workers=args.workers,
                   progress=not args.no_progress and job.executor is None, job=job)
    if job.executor is not None and not job.wait:
        return 0
    print(store)
    return 0

