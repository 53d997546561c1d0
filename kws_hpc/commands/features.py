"""`kws-hpc features`: build (or find) the HDF5 feature store."""

from __future__ import annotations

from kws_hpc.config import DataConfig, FeatureConfig
from kws_hpc.configfile import add_config_file, effective
from kws_hpc.options import add_config_args, add_job_args, config_from_args

QUOTAS = ("quota_train", "quota_val", "quota_test", "augment_snr_db", "augment_shift_ms")


def register(sub) -> None:
    p = sub.add_parser("features", help="compute log-mel features once into an HDF5 store",
                       description="Decode clips, compute log-mels in batches and write DIR/<signature>/"
                                   "{train,val,test}.h5, clips.tsv and summary.json. Prints the store folder last.")
    p.add_argument("--data", required=True, help="Speech Commands folder or .tar.gz (or a synth corpus)")
    add_data_options(p)
    p.add_argument("--out", default="features", help="folder that holds stores (default: features)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores; 0 = in-process)")
    add_config_args(p, FeatureConfig, include=("dtype", "n_mels"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_job_args(p)
    add_config_file(p, "features")
    p.set_defaults(func=run)


def add_data_options(p) -> None:
    """Options that choose the clips of a store: every DataConfig field, the quotas as one flag."""
    add_config_args(p, DataConfig, exclude=QUOTAS)
    p.add_argument("--quota", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=None,
                   help="per-class cap per split (default: none)")


def data_config(args) -> DataConfig:
    q = args.quota or (None, None, None)
    return config_from_args(DataConfig, args, quota_train=q[0], quota_val=q[1], quota_test=q[2])


def run(args) -> int:
    from pathlib import Path

    from kws_hpc.features.build import build_store
    from kws_hpc.launch.executors import check_job, submit
    from kws_hpc.options import job_options

    feat = config_from_args(FeatureConfig, args)
    job = job_options(args, args.out, "kws-features")
    check_job(job)
    store = submit(build_store, str(Path(args.data).resolve()), data_config(args), feat,
                   out=str(Path(args.out).resolve()), workers=args.workers,
                   progress=not args.no_progress and job.executor is None, recipe=effective(args.config_parser, args),
                   job=job)
    if job.executor is not None and not job.wait:
        return 0
    print(store)
    return 0


def store_of(config: str) -> str:
    """The store the [features] table of the file `config` describes (for `train` and `sweep run` given
    the same file without a store); KwsError when that table is missing or the store is not built yet."""
    from kws_hpc.configfile import read_table
    from kws_hpc.errors import KwsError
    from kws_hpc.features.build import find_store
    from kws_hpc.options import Parser

    try:
        if not read_table(config, "features"):
            raise KwsError(f"no --store, and {config} has no [features] table to find one with; give --store "
                           "(or `store = ...` in the file)")
    except ValueError as e:
        raise KwsError(str(e)) from None
    sub = Parser(prog="kws-hpc").add_subparsers(dest="command")
    register(sub)
    try:
        args = sub.choices["features"].parse_args(["--config", config])
    except SystemExit:
        raise KwsError(f"the [features] table of {config} is not valid (the line above says why)") from None
    found = find_store(args.data, data_config(args), config_from_args(FeatureConfig, args), args.out)
    if found is None:
        raise KwsError(f"the store of the [features] table of {config} is not built yet; run "
                       f"kws-hpc features --config {config} first")
    return str(found)
