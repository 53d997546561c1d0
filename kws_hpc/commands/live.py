"""`kws-hpc live` (microphone or WAV through the detector) and `kws-hpc data stream` (a scored stream)."""

from __future__ import annotations

from kws_hpc.configfile import add_config_file
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.scoring import TOLERANCE_S
from kws_hpc.options import add_config_args, config_values

LIVE = ("Rolling 1-s window every hop, energy voice gate with an adaptive noise floor, posterior smoothing, "
        "threshold and refractory time; prints each detection (time, word, confidence) and the cost per hop. "
        "Label order, features and detector settings come from the model file; options override them.")
OVERRIDES = {"threshold": "--threshold", "smooth_s": "--smooth", "refractory_s": "--refractory",
             "hold_s": "--hold", "hop_s": "--hop", "vad_margin_db": "--vad-margin"}


def register(sub) -> None:
    p = sub.add_parser("live", description=LIVE,
                       help="spot keywords on the microphone or in a WAV file with an exported model")
    p.add_argument("--model", metavar="FILE.onnx", help="file written by kws-hpc export")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mic", action="store_true", help="listen on the microphone (default when no --wav)")
    src.add_argument("--wav", metavar="FILE", help="run on a sound file instead (as fast as it goes)")
    src.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--device", default=None, help="microphone: device index or name (see --list-devices)")
    p.add_argument("--seconds", type=float, default=None, help="microphone: stop after this long")
    p.add_argument("--truth", metavar="TSV", help="with --wav: score against this truth (from kws-hpc data stream)")
    p.add_argument("--realtime", action="store_true", help="with --wav: feed it at the pace of the audio")
    p.add_argument("--streaming", action="store_true",
                   help="step the RNN over new frames only, carrying its state (reset on silence)")
    add_config_args(p.add_argument_group("detector (override the model file's settings)"), DetectorConfig,
                    include=OVERRIDES, flags=OVERRIDES, override=True)
    p.add_argument("--no-vad", action="store_true", help="run the model on every hop")
    p.add_argument("--tolerance", type=float, default=TOLERANCE_S,
                   help="scoring: latest detection after the onset, s (default: %(default)s)")
    p.add_argument("--sweep", action="store_true",
                   help="with --truth: miss rate and false alarms per hour at each threshold")
    p.add_argument("--json", metavar="FILE", default=None, help="write detections, scores and costs as JSON")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default: 1)")
    p.add_argument("--quiet", action="store_true", help="do not print each detection")
    add_config_file(p, "live")
    p.set_defaults(func=run)


def live_options(args):
    """LiveOptions from the parsed flags; detector overrides are the flags that were given."""
    from kws_hpc.deploy.listen import LiveOptions

    overrides = {k: v for k, v in config_values(DetectorConfig, args, skip_none=True).items() if k in OVERRIDES}
    if args.no_vad:
        overrides["vad"] = False
    if args.streaming:
        overrides["streaming"] = True
    device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
    return LiveOptions(wav=args.wav, device=device, seconds=args.seconds, truth=args.truth,
                       realtime=args.realtime, sweep=args.sweep, tolerance=args.tolerance, json=args.json,
                       threads=args.threads, quiet=args.quiet, overrides=overrides)


def run(args) -> int:
    from kws_hpc.errors import KwsError

    if args.list_devices:
        from kws_hpc.deploy.mic import list_devices

        print(list_devices())
        return 0
    if not args.model:
        raise KwsError("--model FILE.onnx is required (write one with kws-hpc export)")
    from kws_hpc.deploy.listen import run_live

    run_live(args.model, live_options(args))
    return 0
