"""A live run: an exported model over the microphone or a WAV file, scored against a truth when given,
with its JSON report. What `kws-hpc live` and the demo's last stage run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from kws_hpc.errors import KwsError
from kws_hpc.evaluate.detector import Detection, DetectorConfig
from kws_hpc.io import write_json


@dataclass(frozen=True)
class LiveOptions:
    """Where the audio comes from and what to do with the detections."""

    wav: Optional[str] = None  # a sound file; None = the microphone
    device: Optional[int | str] = None  # microphone index or name
    seconds: Optional[float] = None  # microphone: stop after this long
    truth: Optional[str] = None  # with wav: a truth TSV to score against
    realtime: bool = False  # with wav: feed it at the pace of the audio
    sweep: bool = False  # with truth: miss rate and false alarms per hour per threshold
    tolerance: Optional[float] = None  # scoring: latest detection after the onset, s
    json: Optional[str] = None  # write detections, scores and costs here
    threads: int = 1  # onnxruntime threads
    quiet: bool = False  # do not print each detection
    overrides: dict = field(default_factory=dict)  # DetectorConfig fields that replace the file's

    def check(self) -> "LiveOptions":
        if (self.truth or self.realtime or self.sweep) and not self.wav:
            raise KwsError("--truth, --realtime and --sweep go with --wav FILE")
        if self.sweep and not self.truth:
            raise KwsError("--sweep needs --truth TSV")
        if self.threads < 1:
            raise KwsError(f"--threads {self.threads} must be >= 1")
        return self


def detector_config(base: DetectorConfig, overrides: dict) -> DetectorConfig:
    """The model file's detector settings with `overrides`; a global threshold drops per-class ones."""
    from kws_hpc.config import replace

    changes = dict(overrides)
    if "threshold" in changes:
        changes.setdefault("class_thresholds", {})
    return replace(base, **changes).check()


def _say(message: str) -> None:
    print(message, flush=True)  # detections appear as they happen, also through a pipe


def run_live(model_file: str | Path, opts: LiveOptions = LiveOptions(), log: Callable[[str], None] = _say) -> dict:
    """Run the detector; print detections, the score and the cost; returns the report (also to opts.json)."""
    from kws_hpc.deploy.audiofile import run_wav
    from kws_hpc.deploy.mic import listen as listen_mic
    from kws_hpc.deploy.mic import open_input
    from kws_hpc.deploy.onnx_model import load_exported
    from kws_hpc.evaluate.pipeline import Pipeline
    from kws_hpc.evaluate.scorer import one_thread

    opts.check()
    model = load_exported(model_file, threads=opts.threads)
    cfg = detector_config(model.detector, opts.overrides)
    # find the microphone before anything else is printed: without one, one clear line and exit 2
    mic = None if opts.wav else open_input(opts.device, model.feature_config.sample_rate)
    pipe = Pipeline(model.scorer, model.labels, model.feature_config, cfg, record=bool(opts.truth))
    show = (lambda d: None) if opts.quiet else (lambda d: log(format_detection(d)))
    members = (model.meta.get("averaged") or {}).get("members") or []
    cells = f" ({' + '.join(m['model_config'].get('cell', '?').upper() for m in members)}, averaged)" if members else ""
    log(f"model {model.path.name}{cells}: {len(model.labels)} labels ({', '.join(model.labels)}); "
        f"threshold {threshold_text(cfg.threshold)}, smoothing {cfg.smooth_s:g} s, hold {cfg.hold_s:g} s, "
        f"refractory {cfg.refractory_s:g} s, hop {cfg.hop_s:g} s, voice gate {'on' if cfg.vad else 'off'}"
        f"{', streaming' if cfg.streaming else ''}")
    with one_thread():
        if mic is None:
            dets = run_wav(pipe, opts.wav, realtime=opts.realtime, on_detection=show, log=log)
        else:
            dets = listen_mic(pipe, mic, seconds=opts.seconds, on_detection=show, log=log)
    report = {"model": str(model.path), "detector": cfg.as_dict(), "seconds": pipe.seconds,
              "detections": [d.__dict__ for d in dets], "cost": pipe.rtf()}
    log(f"{len(dets)} detection(s) in {pipe.seconds:.1f} s of audio")
    if opts.truth:
        report.update(score_run(pipe, dets, model.labels, cfg, opts, log))
    log(cost_line(report["cost"], cfg))
    if opts.json:
        write_json(Path(opts.json), report)
    return report


def score_run(pipe, dets, labels, cfg: DetectorConfig, opts: LiveOptions, log) -> dict:
    """Log and return the score against the truth, the voice gate's score and, asked, the sweep."""
    from kws_hpc.evaluate.scoring import SHOWN, TOLERANCE_S, score, sweep, sweep_rows, vad_score
    from kws_hpc.evaluate.teststream import read_truth

    truth = read_truth(opts.truth)
    tol = opts.tolerance if opts.tolerance is not None else TOLERANCE_S
    s = score(dets, truth, labels, pipe.seconds, tol)
    log(f"score: {s.summary()}")
    if s.false_alarms:
        log(f"false alarms by the word under them: {s.confusions()}")
    for lab, c in s.per_class.items():
        if c["truth"] or c["false_alarms"]:
            log(f"  {lab:<12s} {c['hits']:3d}/{c['truth']:<3d} hit  {c['false_alarms']:3d} false alarm(s)")
    frame_s = pipe.fc.hop_length / pipe.fc.sample_rate
    v = vad_score(pipe.trace.vad_flags(), truth, frame_s) if cfg.vad else None
    if v is not None:
        log(f"voice gate: {_pct(v['speech_recall'])} of word frames marked voice, "
            f"{_pct(v['words_reached'])} of words reached; marked voice: "
            f"{_pct(v['clip_active'])} of the clips' own background, "
            f"{_pct(v['noise_active'])} of noise bursts, {_pct(v['quiet_active'])} of the quiet between; "
            f"model ran on {_pct(sum(pipe.ran) / max(1, len(pipe.ran)))} of hops")
    out = {"score": s.as_dict(), "vad": v, "truth": opts.truth}
    if opts.sweep:
        times, smoothed = pipe.trace.arrays()
        rows = sweep(times, smoothed, labels, cfg, truth, pipe.seconds, tolerance_s=tol)
        log("threshold  miss %   FA/hour  (smoothing, gate and refractory as above)")
        for t, r in rows:
            if any(abs(t - x) < 1e-9 for x in SHOWN):  # every threshold is in the JSON
                miss = f"{100 * r.miss_rate:5.1f}" if r.keywords else "  n/a"  # a negative stream has none
                log(f"  {t:<6g}   {miss}  {r.fa_per_hour:7.1f}")
        out["sweep"] = sweep_rows(rows)
    return out


def format_detection(d: Detection) -> str:
    m, s = divmod(d.time, 60)
    return f"{int(m):02d}:{s:06.3f}  {d.label:<12s} {d.confidence:.3f}"


def threshold_text(t: float) -> str:
    """0.30, 0.95, 0.993: two decimals unless the threshold has three."""
    return f"{t:.2f}" if abs(round(t, 2) - t) < 1e-9 else f"{t:.3f}"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def cost_line(c: dict, cfg: DetectorConfig) -> str:
    return (f"cost: {c['ms_per_hop']:.2f} ms per {1000 * cfg.hop_s:.0f}-ms hop on one thread "
            f"(real-time factor {c['rtf']:.3f}); {c['ms_per_model_hop']:.2f} ms when the model runs "
            f"(RTF {c['rtf_model_hop']:.3f}, p95 {c['ms_per_model_hop_p95']:.2f} ms); "
            f"model ran on {c['model_runs']}/{c['hops']} hops")
