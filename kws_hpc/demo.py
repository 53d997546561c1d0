"""The whole pipeline on the built-in corpus, stage by stage, each reusing what is already done.

corpus -> feature store -> GRU and LSTM sweeps (local submitit workers) -> the best of each
retrained -> report -> export (threshold calibrated to a false-alarm budget) -> live detection over a
generated test stream with keywords and one without, each scored against its truth: hits and false alarms.
Every stage is the same code the individual commands run; re-running the demo skips finished work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kws_hpc.config import DataConfig, TrainConfig
from kws_hpc.io import write_json


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the demo runs in minutes on a 2-core laptop CPU."""

    speakers: int = 300  # synthetic voices; the hash split keeps about 80/10/10 of them per split
    takes: int = 1  # one take of each word (`data synth` says each three times): keeps the demo at minutes
    trials: int = 4  # finished trials per sweep (per model family)
    sweep_epochs: int = 4  # epochs per sweep trial: enough to rank configurations
    workers: int = 1  # sweep workers per family (two families run side by side)
    retrain_epochs: int = TrainConfig.epochs  # the full default schedule for the best configuration of each family
    stream_minutes: float = 1.0  # the test stream with keywords the live stage plays
    negative_minutes: float = 10.0  # the test stream without keywords the false alarms are counted on
    fa_per_hour: float = 2.0  # the export's false-alarm budget
    calibration_minutes: tuple = (10.0, 30.0)  # export: validation streams with and without keywords
    det_minutes: tuple = (5.0, 10.0)  # report: DET test streams with and without keywords
    seed: int = 0


def run_demo(out: str | Path = "demo_out", cfg: DemoConfig = DemoConfig(), log: Callable[[str], None] = print) -> dict:
    """Run (or resume) every stage under `out`; returns where everything went."""
    from kws_hpc.data.synth import DEFAULT_WORDS, synth_corpus
    from kws_hpc.deploy.export import export_checkpoint
    from kws_hpc.deploy.listen import LiveOptions, run_live
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.teststream import make_stream
    from kws_hpc.features.build import build_store
    from kws_hpc.launch.executors import JobOptions
    from kws_hpc.report.build import make_report
    from kws_hpc.sweep import retrain_call, retrain_runs, run_sweep, study_name, sweep_specs
    from kws_hpc.sweep.space import load_space
    from kws_hpc.launch.storage import open_storage, storage_url
    from kws_hpc.sweep.summary import studies_table
    from kws_hpc.train.rundir import RunDir, best_runs

    out = Path(out).expanduser().resolve()
    runs, t_start = out / "runs", time.perf_counter()
    stage = _Stages(log, t_start)

    stage("1/7 corpus")
    corpus = out / "corpus"
    synth_corpus(corpus, words=DEFAULT_WORDS, speakers=cfg.speakers, seed=cfg.seed, takes=cfg.takes)

    stage("2/7 feature store")
    store = build_store(corpus, DataConfig(vocab="seed12", extras=True), out=out / "features", log=log)

    stage("3/7 sweeps: GRU and LSTM, same search space and budget")
    url = storage_url(None, runs)
    specs = sweep_specs(store, ["gru", "lstm"], load_space("demo", cfg.sweep_epochs), runs, trials=cfg.trials,
                        workers=cfg.workers, seed=cfg.seed)
    jobs = str(runs / "jobs")
    run_sweep(url, specs, cfg.workers, JobOptions(executor="local", log_dir=jobs, name="kws-sweep"), log)
    log(studies_table(open_storage(url), url, list(specs)))

    stage("4/7 best configuration of each family, retrained with the full schedule")
    storage = open_storage(url)
    calls = [retrain_call(storage, study_name(m, store), cfg.seed, cfg.retrain_epochs, runs) for m in ("gru", "lstm")]
    results = retrain_runs(calls, JobOptions(executor="local", log_dir=jobs, name="kws-retrain"), log)
    best = {c[0]["model"]: r for c, r in zip(calls, results)}
    for model, r in best.items():
        log(f"  {model}: test accuracy {r['test_accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}  ({r['run']})")

    stage("5/7 report")
    report = make_report(runs, out / "report", storage=url, log=log, det_minutes=cfg.det_minutes)

    stage("6/7 export the best model")
    model_file = out / "model.onnx"
    winner = best_runs([RunDir(r["run"]) for r in best.values()], need_checkpoint=True)[None]
    export_checkpoint(winner.path, model_file, detector=DetectorConfig().check(), log=log,
                      calibrate_minutes=cfg.calibration_minutes[0], negative_minutes=cfg.calibration_minutes[1],
                      fa_per_hour=cfg.fa_per_hour)

    stage("7/7 live detection over generated streams of test-split speakers: with keywords, and without")
    wav, truth = make_stream(corpus, out / "stream.wav", minutes=cfg.stream_minutes, seed=cfg.seed,
                             store=store, split="test")
    live_json = out / "live.json"
    hits = run_live(model_file, LiveOptions(wav=str(wav), truth=str(truth), json=str(live_json)), log=log)
    neg_wav, neg_truth = make_stream(corpus, out / "negative.wav", minutes=cfg.negative_minutes,
                                     seed=cfg.seed + 1, store=store, split="test", keyword_share=0.0)
    neg_json = out / "live_negative.json"
    log(f"\n{cfg.negative_minutes:g} min of test speech and noise without keywords:")
    fas = run_live(model_file, LiveOptions(wav=str(neg_wav), truth=str(neg_truth), json=str(neg_json),
                                           quiet=True), log=log)
    log("")
    for line in live_figures(hits, fas, model_file):
        log(line)

    where = {"corpus": str(corpus), "store": str(store), "runs": str(runs), "storage": url,
             "best": {m: r["run"] for m, r in best.items()}, "report": str(report), "model": str(model_file),
             "stream": str(wav), "truth": str(truth), "live": str(live_json),
             "negative_stream": str(neg_wav), "negative_truth": str(neg_truth), "live_negative": str(neg_json),
             "minutes": round((time.perf_counter() - t_start) / 60, 2)}
    write_json(out / "demo.json", where)
    log("")
    log(f"demo finished in {where['minutes']:.1f} min. Open first: {report}")
    log(f"  studies: kws-hpc sweep ls --storage {url}")
    log(f"  live on your microphone: kws-hpc live --model {model_file} --mic")
    return where


def live_figures(hits: dict, false_alarms: dict, model_file: Path) -> list[str]:
    """Both numbers of a keyword spotter, from the two live reports, and the budget it was calibrated to."""
    from kws_hpc.deploy.onnx_model import load_exported

    s, n = hits["score"], false_alarms["score"]
    calib = load_exported(model_file).meta["calibration"]
    budget = calib.get("fa_per_hour_budget")
    how = {"validation_streams": "on validation streams", "validation_clips": "on validation clips (no budget)",
           "default": "not calibrated (default)"}.get(calib.get("method"), "")
    lines = [f"hits: {s['hits']} of {s['keywords']} keywords ({100 * s['hit_rate']:.1f} %) on the "
             f"{hits['seconds'] / 60:.2g}-min test stream",
             f"false alarms: {n['false_alarms']} in {false_alarms['seconds'] / 60:.3g} min without keywords "
             f"({n['fa_per_hour']:.1f} per hour)",
             f"threshold {calib['threshold']:g}, calibrated to a budget of {budget:g} false alarms per hour {how}"]
    if calib.get("method") == "validation_streams":
        lines[-1] += (f" (there: miss rate {100 * calib['miss_rate']:.1f} %, {calib['fa_per_hour']:.1f} false "
                      f"alarms/h{'' if calib['budget_met'] else '; no threshold met the budget'})")
    return lines


class _Stages:
    def __init__(self, log, t0):
        self.log, self.t0 = log, t0

    def __call__(self, title: str) -> None:
        self.log(f"\n== {title}  [{(time.perf_counter() - self.t0) / 60:.1f} min]")
