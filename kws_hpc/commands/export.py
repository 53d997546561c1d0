"""`kws-hpc export`: one self-contained ONNX file from a checkpoint, checked for parity."""

from __future__ import annotations

from ..calibrate import CALIBRATION_MINUTES
from ..detector import DetectorConfig
from . import option

DESCRIPTION = (
    "Rebuild the model from RUN/best.pt or CKPT (or the run with the best validation accuracy under "
    "--best RUNS), convert it to ONNX with its label order, feature config, normalisation and detector "
    "settings inside, check it gives the checkpoint's outputs on the store's test clips (max |difference| "
    "<= 1e-4), choose the threshold on the validation split, and write OUT atomically.")


def register(sub) -> None:
    p = sub.add_parser("export", description=DESCRIPTION,
                       help="export a checkpoint (or the best run) to one ONNX file for the live demo")
    p.add_argument("checkpoint", nargs="?", metavar="RUN|CKPT",
                   help="run folder (uses best.pt) or checkpoint file")
    p.add_argument("--best", metavar="RUNS", default=None,
                   help="instead of RUN|CKPT: the finished run under RUNS with the best val accuracy "
                        "(ties: test accuracy)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="file to write")
    p.add_argument("--store", default=None,
                   help="feature store for the parity check and calibration (default: the run's config.json)")
    p.add_argument("--calibrate-minutes", type=float, default=CALIBRATION_MINUTES,
                   help="validation stream the threshold is chosen on, minutes "
                        f"(default: {CALIBRATION_MINUTES:g}; 0 = clip level)")
    d = DetectorConfig()
    option(p, "--smooth", float, d.smooth_s, "stored smoothing window, s")
    option(p, "--refractory", float, d.refractory_s, "stored refractory time, s")
    option(p, "--hold", float, d.hold_s, "stored hold before firing the most confident keyword, s")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import replace
    from ..export import export_checkpoint

    det = replace(DetectorConfig(), smooth_s=args.smooth, refractory_s=args.refractory,
                  hold_s=args.hold).check()
    out = export_checkpoint(args.checkpoint, args.out, best=args.best, store=args.store,
                            calibrate_minutes=args.calibrate_minutes, detector=det)
    print(out)
    return 0
