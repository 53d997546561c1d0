"""The whole pipeline on the built-in corpus, stage by stage, each reusing what is already done.

corpus -> feature store -> GRU and LSTM sweeps (local submitit workers) -> the best of each
retrained -> report -> export -> live detection over a generated stream, scored against its truth.
Every stage is the same code the individual commands run; re-running the demo skips finished work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kws_hpc.config import DataConfig
from kws_hpc.io import write_json


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the demo runs in minutes on a 2-core laptop CPU."""

    speakers: int = 300  # synthetic voices; the hash split keeps about 80/10/10 of them per split
    trials: int = 4  # finished trials per sweep (per model family)
    sweep_epochs: int = 4  # epochs per sweep trial: enough to rank configurations
    workers: int = 1  # sweep workers per family (two families run side by side)
    retrain_epochs: int = 20  # the full schedule for the best configuration of each family
    stream_minutes: float = 1.0
    seed: int = 0


def run_demo(out: str | Path = "demo_out", cfg: DemoConfig = DemoConfig(), log: Callable[[str], None] = print) -> dict:
    """Run (or resume) every stage under `out`; returns where everything went."""
    from kws_hpc.data.synth import DEFAULT_WORDS, synth_corpus
    from kws_hpc.data.teststream import make_stream
    from kws_hpc.deploy.detector import DetectorConfig
    from kws_hpc.deploy.export import export_checkpoint
    from kws_hpc.deploy.listen import LiveOptions, run_live
    from kws_hpc.features.build import build_store
    from kws_hpc.launch.executors import JobOptions
    from kws_hpc.report.build import make_report
    from kws_hpc.sweep import retrain_call, retrain_runs, run_sweep, study_name, sweep_specs
    from kws_hpc.sweep.space import load_space
    from kws_hpc.sweep.storage import open_storage, storage_url
    from kws_hpc.sweep.summary import studies_table
    from kws_hpc.train.rundir import RunDir, best_runs

    out = Path(out).expanduser().resolve()
    runs, t_start = out / "runs", time.perf_counter()
    stage = _Stages(log, t_start)

    stage("1/7 corpus")
    corpus = out / "corpus"
    synth_corpus(corpus, words=DEFAULT_WORDS, speakers=cfg.speakers, seed=cfg.seed)

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
    report = make_report(runs, out / "report", storage=url, log=log)

    stage("6/7 export the best model")
    model_file = out / "model.onnx"
    winner = best_runs([RunDir(r["run"]) for r in best.values()], need_checkpoint=True)[None]
    export_checkpoint(winner.path, model_file, detector=DetectorConfig().check(), log=log)

    stage("7/7 live detection over a generated stream of test-split speakers")
    wav, truth = make_stream(corpus, out / "stream.wav", minutes=cfg.stream_minutes, seed=cfg.seed,
                             store=store, split="test")
    live_json = out / "live.json"
    run_live(model_file, LiveOptions(wav=str(wav), truth=str(truth), json=str(live_json)), log=log)

    where = {"corpus": str(corpus), "store": str(store), "runs": str(runs), "storage": url,
             "best": {m: r["run"] for m, r in best.items()}, "report": str(report), "model": str(model_file),
             "stream": str(wav), "truth": str(truth), "live": str(live_json),
             "minutes": round((time.perf_counter() - t_start) / 60, 2)}
    write_json(out / "demo.json", where)
    log("")
    log(f"demo finished in {where['minutes']:.1f} min. Open first: {report}")
    log(f"  studies: kws-hpc sweep ls --storage {url}")
    log(f"  live on your microphone: kws-hpc live --model {model_file} --mic")
    return where


class _Stages:
    def __init__(self, log, t0):
        self.log, self.t0 = log, t0

    def __call__(self, title: str) -> None:
        self.log(f"\n== {title}  [{(time.perf_counter() - self.t0) / 60:.1f} min]")
