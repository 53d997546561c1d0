"""`kws-hpc live` (microphone or WAV through the detector) and `kws-hpc data stream` (a scored stream)."""

from __future__ import annotations

from ..detector import DetectorConfig

LIVE = ("Rolling 1-s window every hop, energy voice gate with an adaptive noise floor, posterior smoothing, "
        "threshold and refractory time; prints each detection (time, word, confidence) and the cost per hop. "
        "Label order, features and detector settings come from the model file; options override them.")
STREAM = ("Clips from a Speech Commands layout folder (or archive) with gaps over a quiet background, plus "
          "FILE.tsv: onset/offset (the estimated speech onset and end in the stream, s), word, kind "
          "(keyword|other|noise), clip_start, source. The same corpus and seed give the same file.")


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
    p.add_argument("--truth", metavar="TSV",
                   help="with --wav: score against this truth (from kws-hpc data stream)")
    p.add_argument("--realtime", action="store_true", help="with --wav: feed it at the pace of the audio")
    p.add_argument("--streaming", action="store_true",
                   help="step the RNN over new frames only, carrying its state (reset on silence)")
    p.add_argument("--threshold", type=float, default=None, help="global confidence threshold")
    p.add_argument("--smooth", type=float, default=None, help="posterior smoothing window, s")
    p.add_argument("--refractory", type=float, default=None, help="refractory time after a detection, s")
    p.add_argument("--hold", type=float, default=None,
                   help="after the first crossing, wait this long and fire the most confident keyword, s")
    p.add_argument("--hop", type=float, default=None, help="how often the window advances, s")
    p.add_argument("--vad-margin", type=float, default=None, help="voice: dB above the noise floor")
    p.add_argument("--no-vad", action="store_true", help="run the model on every hop")
    p.add_argument("--tolerance", type=float, default=None,
                   help="scoring: latest detection after the onset, s (default: 1.5)")
    p.add_argument("--sweep", action="store_true",
                   help="with --truth: hit rate and false alarms per threshold")
    p.add_argument("--json", metavar="FILE", default=None, help="write detections, scores and costs as JSON")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default: 1)")
    p.add_argument("--quiet", action="store_true", help="do not print each detection")
    p.set_defaults(func=run)


def register_stream(data_sub) -> None:
    """`kws-hpc data stream`: the long scored test WAV (added to the data command's sub-parsers)."""
    s = data_sub.add_parser("stream", description=STREAM,
                            help="write a long WAV of keywords, other words and noise, with its truth")
    s.add_argument("--corpus", required=True,
                   help="Speech Commands folder or .tar.gz (e.g. from kws-hpc data synth DIR)")
    s.add_argument("--out", required=True, metavar="FILE.wav", help="WAV to write (truth: FILE.tsv)")
    s.add_argument("--minutes", type=float, default=1.0, help="length (default: 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--keywords", default=None,
                   help="comma list (default: the store's keywords with --store, else the seed12 words)")
    s.add_argument("--store", default=None,
                   help="feature store whose clips.tsv says which clip is in which split")
    s.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="only this split's speakers (the honest choice is test)")
    s.add_argument("--keyword-share", type=float, default=0.6, help="share of events that are keywords (0.6)")
    s.add_argument("--noise-share", type=float, default=0.1,
                   help="share of events that are noise bursts (0.1); the rest are other words")
    s.set_defaults(func=_stream)


def _stream(args) -> int:
    from ..errors import KwsError
    from ..stream import make_stream, read_truth

    kw = [w.strip() for w in args.keywords.split(",") if w.strip()] if args.keywords else None
    if not (args.keyword_share >= 0 and args.noise_share >= 0 and args.keyword_share + args.noise_share <= 1):
        raise KwsError("--keyword-share and --noise-share must be >= 0 and add up to at most 1")
    wav, tsv = make_stream(args.corpus, args.out, minutes=args.minutes, seed=args.seed, keywords=kw,
                           store=args.store, split=args.split, keyword_share=args.keyword_share,
                           noise_share=args.noise_share)
    truth = read_truth(tsv)
    kinds = {k: sum(e.kind == k for e in truth) for k in ("keyword", "other", "noise")}
    print(f"wrote {args.minutes:g} min: {kinds['keyword']} keywords, {kinds['other']} other words, "
          f"{kinds['noise']} noise bursts; truth in {tsv}")
    print(wav)
    return 0


def detector_config(args, base: DetectorConfig) -> DetectorConfig:
    """The model file's detector settings with the command line's overrides."""
    from ..config import replace

    changes = {k: v for k, v in {"threshold": args.threshold, "smooth_s": args.smooth,
                                 "refractory_s": args.refractory, "hold_s": args.hold, "hop_s": args.hop,
                                 "vad_margin_db": args.vad_margin}.items() if v is not None}
    if args.threshold is not None:
        changes["class_thresholds"] = {}
    if args.no_vad:
        changes["vad"] = False
    if args.streaming:
        changes["streaming"] = True
    return replace(base, **changes).check()


def run(args) -> int:
    from ..errors import KwsError

    if args.list_devices:
        from ..mic import list_devices

        print(list_devices())
        return 0
    if not args.model:
        raise KwsError("--model FILE.onnx is required (write one with kws-hpc export)")
    if (args.truth or args.realtime or args.sweep) and not args.wav:
        raise KwsError("--truth, --realtime and --sweep go with --wav FILE")
    if args.sweep and not args.truth:
        raise KwsError("--sweep needs --truth TSV")
    from ..live import Pipeline, format_detection, run_wav
    from ..mic import listen, open_input
    from ..onnx_model import load_exported, one_thread

    model = load_exported(args.model, threads=args.threads)
    cfg = detector_config(args, model.detector)
    # find the microphone before anything else is printed: without one, one clear line and exit 2
    mic = None if args.wav else open_input(_device(args.device), model.feature_config.sample_rate)
    pipe = Pipeline(model.scorer, model.labels, model.feature_config, cfg, record=bool(args.truth))
    show = (lambda d: None) if args.quiet else (lambda d: print(format_detection(d), flush=True))
    print(f"model {model.path.name}: {len(model.labels)} labels ({', '.join(model.labels)}); "
          f"threshold {cfg.threshold:.2f}, smoothing {cfg.smooth_s:g} s, hold {cfg.hold_s:g} s, "
          f"refractory {cfg.refractory_s:g} s, "
          f"hop {cfg.hop_s:g} s, voice gate {'on' if cfg.vad else 'off'}"
          f"{', streaming' if cfg.streaming else ''}", flush=True)
    with one_thread():
        if mic is None:
            dets = run_wav(pipe, args.wav, realtime=args.realtime, on_detection=show)
        else:
            dets = listen(pipe, mic, seconds=args.seconds, on_detection=show)
    report = {"model": str(model.path), "detector": cfg.as_dict(), "seconds": pipe.seconds,
              "detections": [d.__dict__ for d in dets], "cost": pipe.rtf()}
    print(f"{len(dets)} detection(s) in {pipe.seconds:.1f} s of audio")
    if args.truth:
        report.update(_score(args, pipe, dets, model.labels, cfg))
    _print_cost(report["cost"], cfg)
    if args.json:
        from pathlib import Path

        from ..store import write_json

        write_json(Path(args.json), report)
    return 0


def _device(d):
    return int(d) if d is not None and d.isdigit() else d


def _score(args, pipe, dets, labels, cfg) -> dict:
    """Print and return the score against the truth, the voice gate's score and, asked, the sweep."""
    from ..scoring import TOLERANCE_S, score, sweep, vad_score
    from ..stream import read_truth

    truth = read_truth(args.truth)
    tol = args.tolerance if args.tolerance is not None else TOLERANCE_S
    s = score(dets, truth, labels, pipe.seconds, tol)
    print(f"score: {s.summary()}")
    for lab, c in s.per_class.items():
        if c["truth"] or c["false_alarms"]:
            print(f"  {lab:<12s} {c['hits']:3d}/{c['truth']:<3d} hit  {c['false_alarms']:3d} false alarm(s)")
    frame_s = pipe.fc.hop_length / pipe.fc.sample_rate
    v = vad_score(pipe.trace.vad_flags(), truth, frame_s) if cfg.vad else None
    if v is not None:
        print(f"voice gate: {_pct(v['speech_recall'])} of word frames marked voice, "
              f"{_pct(v['words_reached'])} of words reached; marked voice: "
              f"{_pct(v['clip_active'])} of the clips' own background, "
              f"{_pct(v['noise_active'])} of noise bursts, {_pct(v['quiet_active'])} of the quiet between; "
              f"model ran on {_pct(sum(pipe.ran) / max(1, len(pipe.ran)))} of hops")
    out = {"score": s.as_dict(), "vad": v, "truth": args.truth}
    if args.sweep:
        times, smoothed = pipe.trace.arrays()
        rows = sweep(times, smoothed, labels, cfg, truth, pipe.seconds, tolerance_s=tol)
        print("threshold  hit %   FA/hour  (smoothing, gate and refractory as above)")
        for t, r in rows[::5]:
            print(f"  {t:.2f}    {100 * r.hit_rate:5.1f}  {r.fa_per_hour:7.1f}")
        out["sweep"] = [[t, r.hit_rate, r.fa_per_hour] for t, r in rows]
    return out


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def _print_cost(c: dict, cfg) -> None:
    print(f"cost: {c['ms_per_hop']:.2f} ms per {1000 * cfg.hop_s:.0f}-ms hop on one thread "
          f"(real-time factor {c['rtf']:.3f}); {c['ms_per_model_hop']:.2f} ms when the model runs "
          f"(RTF {c['rtf_model_hop']:.3f}, p95 {c['ms_per_model_hop_p95']:.2f} ms); "
          f"model ran on {c['model_runs']}/{c['hops']} hops")
