"""The report's live comparison: the best run of each family through the live detector, on the same streams.

Both runs are converted to the ONNX graph `export` would write and run through the live pipeline (default
detector settings, voice gate on) over two streams of test-split speakers made from the store's corpus:
one with keywords, one without (other words, noise, quiet). Every threshold gives a point of the DET
curve: miss rate on the first, false alarms per hour on the second. When both families are there, the two
averaged (one graph, the mean of their posteriors: `kws-hpc export GRU_RUN LSTM_RUN`) is a third curve,
scored from the mean of the two recorded traces (the same numbers, without running both models again). The
curves are kept in
`OUT/det.json` and reused while the runs, streams, thresholds and detector settings are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from kws_hpc.io import write_text

DET_MINUTES = (10.0, 30.0)  # keyword stream, negative stream (one false alarm on 30 min = 2 per hour)
DET_SEED = 31000  # the keyword stream's seed; the negative stream's is the next (calibration uses others)
BUDGETS = (0.5, 1.0, 2.0, 5.0)  # false alarms per hour the table reads the miss rate at
CACHE = "det.json"


def det_context(best: dict, out: Path, minutes: tuple = DET_MINUTES, log: Callable[[str], None] = print) -> dict:
    """{"skipped": why} or {"streams": ..., "models": {name: {run, curve, at}}, "per_false_alarm": ...}."""
    from kws_hpc.evaluate.det import averaged_traces, corpus_of, make_stream
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.scorer import checkpoint_scorer
    from kws_hpc.evaluate.scoring import THRESHOLDS
    from kws_hpc.errors import KwsError

    runs = [best[f] for f in ("gru", "lstm") if f in best] or list(best.values())
    if not runs:
        return {"skipped": "no complete run to put through the live detector."}
    if not (minutes and min(minutes) > 0):
        return {"skipped": "no streams asked (report --det-minutes 0 0)."}
    store = Path(runs[0].config.get("store", ""))
    corpus = corpus_of(store) if (store / "summary.json").is_file() else None
    if corpus is None:
        return {"skipped": f"the corpus of store {store} is not reachable (the store is gone, or its corpus "
                           "moved), so no test streams can be made."}
    cfg = DetectorConfig()
    key = {"store": str(store), "corpus": str(corpus), "minutes": list(minutes), "seed": DET_SEED, "pair": True,
           "detector": cfg.as_dict(), "thresholds": list(THRESHOLDS), "runs": [r.signature for r in runs]}
    cached = _read_cache(out / CACHE)
    if cached is not None and cached.get("key") == key:
        log(f"DET curves of {len(runs)} run(s) reused from {out / CACHE}")
        return cached["det"]
    try:
        pos = make_stream(store, "test", minutes[0], DET_SEED, negative=False)
        neg = make_stream(store, "test", minutes[1], DET_SEED + 1, negative=True)
    except KwsError as e:
        return {"skipped": f"no test streams from {corpus}: {e}"}
    det = {"corpus": str(corpus), "store": str(store), "split": "test",
           "streams": {"positive": pos.describe(), "negative": neg.describe()},
           "per_false_alarm": 60.0 / minutes[1], "detector": cfg.as_dict(), "models": {}, "notes": []}
    labels0, measured = None, []
    for run in runs:
        scorer, labels, fc, _ = checkpoint_scorer(run.dir)
        if labels0 is not None and labels != labels0:
            det["notes"].append(f"{run.name} was left out: its labels differ from {runs[0].name}'s.")
            continue
        labels0 = labels
        det["models"][run.name], traces = _measure(run.name, str(run.dir), run.family, scorer, labels, cfg, pos,
                                                   neg, log, fc)
        measured.append((run, traces))
    if [r.family for r, _ in measured] == ["gru", "lstm"]:
        (a, ta), (b, tb) = measured
        name = f"{a.name} + {b.name}, averaged"
        try:
            det["models"][name], _ = _measure(name, f"{a.dir} + {b.dir}", "gru+lstm", None, labels0, cfg, pos, neg,
                                              log, traces=averaged_traces([ta, tb]))
        except ValueError as e:  # cannot happen with one detector config and one pair of streams; said if it does
            det["notes"].append(f"the two averaged were left out: {e}.")
    write_text(out / CACHE, json.dumps({"key": key, "det": det}) + "\n")
    return det


def _measure(name: str, run: str, family: str, scorer, labels, cfg, pos, neg, log, fc=None, traces=None
             ) -> tuple[dict, tuple]:
    """(its DET entry, its traces) of a scorer run over both streams, or of traces already recorded."""
    import time

    from kws_hpc.evaluate.det import measure, trace_curve
    from kws_hpc.evaluate.scorer import one_thread
    from kws_hpc.evaluate.scoring import miss_at

    t0 = time.perf_counter()
    if traces is None:
        with one_thread():
            traces, curve, p, n = measure(scorer, labels, fc, cfg, pos, neg)
    else:
        curve, p, n = trace_curve(traces, labels, cfg, pos, neg)
    log(f"DET of {name}: {pos.minutes:g}-min keyword and {neg.minutes:g}-min negative test streams, "
        f"{time.perf_counter() - t0:.1f} s")
    at = {}
    for budget in BUDGETS:
        point = miss_at(curve, budget)
        at[str(budget)] = None if point is None else point._asdict()
    return {"run": run, "family": family, "keywords": p[0][1].keywords,
            "curve": [list(point) for point in curve], "at": at}, traces


def _read_cache(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
