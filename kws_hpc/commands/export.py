"""`kws-hpc export`: one self-contained ONNX file from a checkpoint, checked for parity."""

from __future__ import annotations

from kws_hpc.configfile import add_config_file
from kws_hpc.evaluate.calibrate import CALIBRATION_MINUTES, FA_BUDGET, NEGATIVE_MINUTES
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.options import add_config_args, add_job_args, config_from_args, job_options

DETECTOR_FLAGS = {"smooth_s": "--smooth", "refractory_s": "--refractory", "hold_s": "--hold"}
DESCRIPTION = (
    "Rebuild the model from RUN/best.pt or CKPT (or the run with the best validation accuracy under "
    "--best RUNS; several RUN|CKPT: their posteriors averaged in one graph), convert it to ONNX with its label "
    "order, feature config, normalisation and detector settings inside, check it gives the checkpoint's "
    "outputs on the store's test clips (max |difference| <= 1e-4), choose the threshold on validation-split "
    "streams (the fewest misses on a keyword stream within --fa-per-hour false alarms per hour on a stream "
    "without keywords), and write OUT atomically.")


def register(sub) -> None:
    p = sub.add_parser("export", description=DESCRIPTION,
                       help="export a checkpoint (or the best run) to one ONNX file for the live demo")
    p.add_argument("checkpoint", nargs="*", metavar="RUN|CKPT",
                   help="run folder (uses best.pt) or checkpoint file; several (same labels and features, e.g. "
                        "the GRU and the LSTM of one store) are exported as one model averaging their posteriors")
    p.add_argument("--best", metavar="RUNS", default=None,
                   help="instead of RUN|CKPT: the finished run under RUNS with the best val accuracy "
                        "(exact ties: test accuracy)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="file to write")
    p.add_argument("--store", default=None,
                   help="feature store for the parity check and calibration (default: the run's config.json)")
    p.add_argument("--calibrate-minutes", type=float, default=CALIBRATION_MINUTES,
                   help="validation stream the threshold is chosen on, minutes "
                        f"(default: {CALIBRATION_MINUTES:g}; 0 = clip level)")
    p.add_argument("--fa-per-hour", type=float, default=FA_BUDGET, metavar="F",
                   help="false-alarm budget: the threshold with the fewest misses whose false alarms per hour "
                        f"on the negative validation stream are <= F (default: {FA_BUDGET:g})")
    p.add_argument("--negative-minutes", type=float, default=NEGATIVE_MINUTES,
                   help="validation stream without keywords the false alarms are counted on, minutes "
                        f"(default: {NEGATIVE_MINUTES:g}: one false alarm = 2 per hour; 0 = none, count them "
                        "on the keyword stream)")
    add_config_args(p, DetectorConfig, include=DETECTOR_FLAGS, flags=DETECTOR_FLAGS)
    add_job_args(p, log_dir_help="RUNS/jobs with --best, else jobs/ beside OUT")
    add_config_file(p, "export")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from kws_hpc.deploy.export import export_checkpoint
    from kws_hpc.errors import KwsError
    from kws_hpc.launch.executors import check_job, submit

    if not args.fa_per_hour >= 0:
        raise KwsError(f"--fa-per-hour {args.fa_per_hour}: use a number of false alarms per hour >= 0")
    det = config_from_args(DetectorConfig, args).check()
    job = job_options(args, args.best or Path(args.out).expanduser().parent, "kws-export")
    check_job(job)

    def here(path):  # the job may run in another folder
        return str(Path(path).expanduser().resolve()) if path else path

    model = submit(export_checkpoint, [here(c) for c in args.checkpoint] or None, here(args.out), best=here(args.best),
                   store=here(args.store), calibrate_minutes=args.calibrate_minutes, detector=det,
                   fa_per_hour=args.fa_per_hour, negative_minutes=args.negative_minutes, job=job)
    if job.executor is not None and not job.wait:
        return 0
    print(model)
    return 0
