"""The scorer graph: ONNX parity with the model (full window and stepped), models that cannot stream,
several models averaged into one graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kws_hpc.config import ModelConfig
from kws_hpc.errors import KwsError
from kws_hpc.evaluate.scorer import OnnxScorer, TorchScorer, to_onnx
from kws_hpc.train.models import KwsRNN


def _model(seed=0, **kw) -> KwsRNN:
    torch.manual_seed(seed)
    m = KwsRNN(ModelConfig(**{"hidden": 12, "layers": 2, "clip_norm": False, "conv_channels": 0, **kw}), 40, 6).eval()
    m.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    return m


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean"])
def test_onnx_matches_model_full_window_and_stepped(cell, head):
    m = _model(cell=cell, head=head)
    onnx_scorer, ref = OnnxScorer(to_onnx(m)), TorchScorer(m)
    x = np.random.default_rng(1).standard_normal((3, 100, 40)).astype(np.float32)
    full = m(torch.from_numpy(x)).detach().numpy()
    assert np.abs(onnx_scorer.window(x) - full).max() <= 1e-5
    assert onnx_scorer.window(x[:1, :37]).shape == (1, 6)  # batch and time are dynamic
    state, torch_state = None, None
    for t in range(0, 100, 10):  # step hop by hop carrying the state: equals the full window
        logits, state = onnx_scorer.step(x[:, t:t + 10], state)
        torch_logits, torch_state = ref.step(x[:, t:t + 10], torch_state)
    assert np.abs(logits - full).max() <= 1e-5
    assert np.abs(torch_logits - full).max() <= 1e-5
    kws_state = None  # and the model's own step() agrees with the exported graph
    for t in range(0, 100, 7):
        step_logits, kws_state = m.step(torch.from_numpy(x[:, t:t + 7]), kws_state)
    assert np.abs(step_logits.detach().numpy() - logits).max() <= 1e-5


@pytest.mark.parametrize("kw", [{"head": "attention"}, {"bidirectional": True}, {"conv_channels": 8},
                                {"clip_norm": True, "head": "attention", "cell": "lstm"},
                                {"conv_channels": 8, "rnn_stride": 2, "head": "attention"},
                                {"rnn_stride": 3, "cell": "lstm", "head": "last"}])
def test_models_that_cannot_stream_export_without_state(kw):
    m = _model(**kw)
    s = OnnxScorer(to_onnx(m))
    x = np.random.default_rng(2).standard_normal((2, 100, 40)).astype(np.float32)
    assert not s.can_stream and s.inputs == ["features"]
    for frames in (100, 37):  # 37: the strided layers' last group is shorter than the rest
        assert np.abs(s.window(x[:, :frames]) - m(torch.from_numpy(x[:, :frames])).detach().numpy()).max() <= 1e-5
    with pytest.raises(KwsError, match="cannot stream"):
        s.step(x[:, :10], None)


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("second", [{"cell": "lstm", "head": "mean"}, {"conv_channels": 8}])
def test_averaged_graph_gives_the_mean_posterior(second):
    a, b = _model(0, cell="gru", head="last"), _model(1, **second)
    x = np.random.default_rng(3).standard_normal((3, 100, 40)).astype(np.float32)
    want = (_softmax(a(torch.from_numpy(x)).detach().numpy()) + _softmax(b(torch.from_numpy(x)).detach().numpy())) / 2
    s, ref = OnnxScorer(to_onnx([a, b])), TorchScorer([a, b])
    for scorer in (s, ref):
        assert np.abs(_softmax(scorer.window(x)) - want).max() <= 1e-5
        assert np.abs(np.exp(scorer.window(x)).sum(1) - 1).max() <= 1e-5  # log of a distribution
    assert np.abs(_softmax(s.window(x)) - _softmax(a(torch.from_numpy(x)).detach().numpy())).max() > 1e-3
    assert s.can_stream == b.can_stream  # stepping only when every member can
    if s.can_stream:
        assert s.state_size == 12 * 2 + 2 * 12 * 2 + 13  # GRU 2 x 12, LSTM (h, c) 2 x 2 x 12, mean head 12 + 1
        state = None
        for t in range(0, 100, 10):
            logits, state = s.step(x[:, t:t + 10], state)
        assert np.abs(_softmax(logits) - want).max() <= 1e-5
    else:
        assert s.inputs == ["features"]
