"""The pipeline, samples in and detections out: the gate, streaming, the store's features, batched sweeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LoudScorer, tone_bursts

from kws_hpc.config import FeatureConfig, ModelConfig
from kws_hpc.errors import KwsError
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.pipeline import Pipeline
from kws_hpc.evaluate.scorer import TorchScorer
from kws_hpc.evaluate.scoring import score
from kws_hpc.evaluate.teststream import TruthEvent
from kws_hpc.features.logmel import log_mel
from kws_hpc.train.models import KwsRNN

SR = 16000
LABELS = ["yes", "no", "_unknown_"]


def test_pipeline_detects_once_with_latency_and_skips_silence():
    x = tone_bursts(5.0, bursts=[(1.5, 1.75)])
    scorer = LoudScorer()
    cfg = DetectorConfig(threshold=0.7, smooth_s=0.3, refractory_s=1.5, hold_s=0.0)
    pipe = Pipeline(scorer, LABELS, FeatureConfig(), cfg, record=True)
    dets = []
    for i in range(0, len(x), 1234):  # odd-sized pieces: hops are cut by the pipeline
        dets += pipe.push(x[i:i + 1234])
    assert [d.label for d in dets] == ["yes"] and dets[0].time == pytest.approx(1.8)  # 3 loud hops smoothed
    assert scorer.calls < len(pipe.costs) / 2  # the gate kept the model off in the quiet
    cost = pipe.rtf()
    assert cost["hops"] == 50 and cost["rtf"] > 0 and cost["model_runs"] == scorer.calls
    again = Pipeline(LoudScorer(), LABELS, FeatureConfig(),
                     DetectorConfig(threshold=0.7, refractory_s=0.0, hold_s=0.0))
    assert len(again.push(x)) > 3  # without a refractory time one word triggers on every hop
    truth = [TruthEvent(1.5, 1.75, "yes", "keyword", 1.5)]
    assert score(dets, truth, LABELS, pipe.seconds).latencies == [pytest.approx(0.3)]


class _Spy:
    """A streaming scorer that remembers the frames it stepped over since the last reset."""

    can_stream = True

    def __init__(self, inner):
        self.inner, self.frames, self.resets, self.logits = inner, [], 0, None

    def step(self, frames, state):
        if state is None:
            self.frames, self.resets = [], self.resets + 1
        self.frames.append(frames[0])
        self.logits, state = self.inner.step(frames, state)
        return self.logits, state


def test_streaming_equals_the_full_forward_pass_over_the_same_frames():
    torch.manual_seed(0)
    model = KwsRNN(ModelConfig(hidden=8, layers=2, head="last", clip_norm=False, conv_channels=0), 40, 3).eval()
    spy = _Spy(TorchScorer(model))
    x = tone_bursts(6.0, bursts=[(1.0, 1.6), (4.0, 4.3)])
    pipe = Pipeline(spy, LABELS, FeatureConfig(), DetectorConfig(streaming=True, preroll_s=0.3))
    pipe.push(x[:int(2.0 * SR)])  # into the first word: the state is carried hop after hop
    seen = np.concatenate(spy.frames)
    first = pipe.next_frame - len(seen)
    full = log_mel(x[None, :int(2.0 * SR)], FeatureConfig(frames=200))[0]
    assert np.abs(seen - full[first:first + len(seen)]).max() < 1e-3  # frames of one STFT over the stream
    forward = model(torch.from_numpy(seen[None])).detach().numpy()
    assert np.abs(spy.logits - forward).max() < 1e-5  # stepping == one forward pass over those frames
    pipe.push(x[int(2.0 * SR):])
    assert spy.resets == 2  # reset in the silence, restarted on the second word (with its pre-roll)
    assert abs(first * 160 / SR - (1.0 - 0.3)) < 0.15


def test_streaming_refuses_models_and_settings_that_cannot():
    with pytest.raises(KwsError, match="cannot stream"):
        Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(streaming=True))
    with pytest.raises(KwsError, match="needs the voice gate"):
        DetectorConfig(streaming=True, vad=False).check()
    with pytest.raises(KwsError, match="whole number"):
        Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(hop_s=0.105))


def test_live_window_features_equal_the_stores(tiny_store, tiny_tree):
    from kws_hpc.data.source import decode_wav
    from kws_hpc.features.store import load_split, open_store

    class Capture(LoudScorer):
        def window(self, feats):
            self.feats = feats
            return super().window(feats)

    info, test = open_store(tiny_store), load_split(tiny_store, "test")
    clip = decode_wav((tiny_tree / test.paths[0]).read_bytes())
    scorer = Capture()
    pipe = Pipeline(scorer, LABELS, info.feature_config, DetectorConfig(vad=False))
    pipe.push(clip[:SR])  # after one second the rolling window is exactly the clip
    assert np.abs(scorer.feats[0] - test.features[0]).max() < 0.02  # the store keeps float16


@pytest.mark.parametrize("threshold", [0.12, 0.18])
def test_batched_offline_pipeline_decides_as_hop_by_hop(exported, tiny_tree, tiny_store, threshold):
    """The offline path (the model on many queued windows at once) records the trace and fires the
    detections the hop-by-hop pipeline does, including the hops still queued when the input ends."""
    from kws_hpc.deploy.onnx_model import load_exported  # the exported file's graph, as live runs it
    from kws_hpc.evaluate.teststream import stream_audio

    model = load_exported(exported)
    audio, _ = stream_audio(tiny_tree, 0.4, 5, store=tiny_store, split="test")
    cfg = DetectorConfig(threshold=threshold, hold_s=0.2)
    runs = {}
    for batch in (1, 7, 64):
        pipe = Pipeline(model.scorer, model.labels, model.feature_config, cfg, record=True, batch=batch)
        dets = []
        for at in range(0, len(audio), 4321):  # pushes that do not line up with hops or batches
            dets += pipe.push(audio[at:at + 4321])
        dets += pipe.finish()
        runs[batch] = (pipe, dets)
    one, dets_one = runs[1]
    assert dets_one and 0 < sum(one.ran) < len(one.ran)  # it fires, and the voice gate skips some hops
    for batch in (7, 64):
        pipe, dets = runs[batch]
        assert pipe.queue == [] and len(pipe.costs) == len(one.costs) and pipe.ran == one.ran
        assert np.array_equal(pipe.trace.arrays()[0], one.trace.arrays()[0])
        assert np.abs(pipe.trace.arrays()[1] - one.trace.arrays()[1]).max() < 1e-4
        assert [(d.time, d.label) for d in dets] == [(d.time, d.label) for d in dets_one]
