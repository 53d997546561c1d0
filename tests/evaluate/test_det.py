"""DET measurements over streams: the averaged traces the report scores equal the averaged graph's."""

from __future__ import annotations

import numpy as np
import pytest

from kws_hpc.evaluate.scorer import OnnxScorer, to_onnx


def test_averaged_traces_score_as_the_averaged_graph(tiny_run, tiny_lstm_run, tiny_store):
    """The report scores the pair from the two models' recorded traces: the same as running the pair's graph."""
    from kws_hpc.evaluate.det import averaged_traces, make_stream, measure, trace_curve
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.scorer import checkpoint_scorer
    from kws_hpc.train import load_checkpoint

    pos, neg = make_stream(tiny_store, "test", 0.5, 5, False), make_stream(tiny_store, "test", 0.5, 6, True)
    cfg, traces, models = DetectorConfig(), [], []
    for run in (tiny_run, tiny_lstm_run):
        scorer, labels, fc, _ = checkpoint_scorer(run)
        traces.append(measure(scorer, labels, fc, cfg, pos, neg)[0])
        models.append(load_checkpoint(run)[0])
    want_traces, want_curve, _, _ = measure(OnnxScorer(to_onnx(models, fc.frames)), labels, fc, cfg, pos, neg)
    got = averaged_traces(traces)
    for (t, s, sec), (wt, ws, wsec) in zip(got, want_traces):
        assert np.array_equal(t, wt) and sec == wsec and np.abs(s - ws).max() <= 1e-5
    assert np.abs(got[0][1] - traces[0][0][1]).max() > 1e-3  # not one model's trace
    assert trace_curve(got, labels, cfg, pos, neg)[0] == want_curve
    with pytest.raises(ValueError, match="hops"):
        averaged_traces([traces[0], ((traces[1][0][0][:-1], traces[1][0][1][:-1], 1.0), traces[1][1])])
