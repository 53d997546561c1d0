"""A model behind the scorer interface: `window(features)` and `step(frames, state)`, in numpy.

The graph takes log-mels `features` [B, T, n_mels] (normalised inside, with the training store's mean and
std) and, for models that can stream, a flat recurrent `state` [B, S]; it returns `logits` [B, C] and
`state_out`. A zero state gives the full-window forward pass; feeding `state_out` back with the next
frames steps the RNN without re-reading the window. `TorchScorer` runs that graph in torch, `OnnxScorer`
runs its ONNX form (`to_onnx`) with onnxruntime: in memory for evaluation (`checkpoint_scorer`), or from
the exported file (`deploy.onnx_model`), so what is measured is the graph that ships.
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kws_hpc.config import CANNOT_STREAM, FeatureConfig, from_dict
from kws_hpc.errors import KwsError

OPSET = 17


@contextmanager
def one_thread():
    """torch on one thread: the real-time factor is per thread, and small tensors only lose time to
    thread hand-offs (badly so on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def members(model) -> list:
    """The models of an export: a list or tuple of KwsRNN (averaged) or one KwsRNN."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


def _graph_module(model):
    """The module to export: `StepGraph` for models that can stream, the model itself otherwise; for several
    models, `Averaged` over those (stepping only when every member can)."""
    import math

    import torch
    from torch import nn

    class Averaged(nn.Module):
        """(features[, flat state]) -> log of the members' mean posterior[, next flat state]."""

        def __init__(self, graphs, sizes):
            super().__init__()
            self.graphs, self.sizes, self.log_n = nn.ModuleList(graphs), sizes, math.log(len(graphs))

        def forward(self, features, state=None):
            outs, states, at = [], [], 0
            for g, n in zip(self.graphs, self.sizes):
                if n:
                    logits, new = g(features, state[:, at:at + n])
                    at, states = at + n, states + [new]
                else:
                    logits = g(features)
                outs.append(torch.log_softmax(logits, dim=1))
            mean = torch.logsumexp(torch.stack(outs), dim=0) - self.log_n
            return (mean, torch.cat(states, dim=1)) if states else mean

    class StepGraph(nn.Module):
        """(features, flat state) -> (logits, next flat state), same numbers as KwsRNN.forward / .step."""

        def __init__(self, m):
            super().__init__()
            self.m = m
            cfg = m.cfg
            self.lstm, self.mean = cfg.cell == "lstm", cfg.head == "mean"
            self.layers, self.hidden = cfg.layers, cfg.hidden
            self.rnn_size = cfg.layers * cfg.hidden * (2 if self.lstm else 1)

        def _unpack(self, flat):
            return flat.reshape(-1, self.layers, self.hidden).transpose(0, 1).contiguous()

        def forward(self, features, state):
            m, lh = self.m, self.layers * self.hidden
            h = self._unpack(state[:, :lh])
            rnn_state = (h, self._unpack(state[:, lh:2 * lh])) if self.lstm else h
            out, new = m.rnn(m.normalize(features), rnn_state)
            parts = [t.transpose(0, 1).reshape(-1, lh) for t in (new if self.lstm else (new,))]
            if self.mean:
                total = state[:, self.rnn_size:self.rnn_size + self.hidden] + out.sum(1)
                seen = state[:, -1:] + torch.ones_like(out[:, :, :1]).sum(1)  # frame count as a tensor op
                pooled = total / seen
                parts += [total, seen]
            else:
                pooled = out[:, -1]
            return m.classifier(pooled), torch.cat(parts, dim=1)

    ms = members(model)
    if len(ms) > 1:
        step = all(m.can_stream for m in ms)
        return Averaged([StepGraph(m) if step else m for m in ms],
                        [state_size(m) if step else 0 for m in ms]).eval()
    return StepGraph(model).eval() if model.can_stream else model.eval()


def state_size(model) -> int:
    """Length of the flat recurrent state of a streaming model (0 when it cannot stream); for several
    models, the sum when every one can stream."""
    ms = members(model)
    if len(ms) > 1:
        return sum(state_size(m) for m in ms) if all(m.can_stream for m in ms) else 0
    if not model.can_stream:
        return 0
    cfg = model.cfg
    rnn = cfg.layers * cfg.hidden * (2 if cfg.cell == "lstm" else 1)
    return rnn + (cfg.hidden + 1 if cfg.head == "mean" else 0)


def to_onnx(model, frames: int = 100) -> bytes:
    """Serialise a KwsRNN (eval mode), or several averaged, into ONNX bytes with dynamic batch and time axes.

    Uses torch's TorchScript-based exporter (fast, no extra package, native ONNX GRU/LSTM ops); when a
    torch version no longer has it, the torch.export-based exporter (needs the onnxscript package).
    The caller checks parity either way.
    """
    import torch

    graph, n_state = _graph_module(model), state_size(model)
    feats = torch.zeros(2, frames, members(model)[0].feat_mean.numel())  # example input; both axes stay dynamic
    args = (feats, torch.zeros(2, n_state)) if n_state else (feats,)
    names_in = ["features", "state"][: len(args)]
    names_out = ["logits", "state_out"][: len(args)]
    axes = {"features": {0: "batch", 1: "frames"}, "logits": {0: "batch"}}
    if n_state:
        axes.update(state={0: "batch"}, state_out={0: "batch"})
    errors = []
    with warnings.catch_warnings(), torch.no_grad(), one_thread():
        warnings.simplefilter("ignore")
        try:
            buf = io.BytesIO()
            torch.onnx.export(graph, args, buf, input_names=names_in, output_names=names_out,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
            return buf.getvalue()
        except Exception as e:  # the legacy exporter is gone or failed: try the new one
            errors.append(f"TorchScript-based exporter: {e}".splitlines()[0])
        try:
            batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
            shapes = ({0: batch, 1: frames}, {0: batch})[: len(args)]
            prog = torch.onnx.export(graph, args, input_names=names_in, output_names=names_out,
                                     dynamic_shapes=shapes, opset_version=max(OPSET, 18), dynamo=True)
            return prog.model_proto.SerializeToString()
        except Exception as e:
            errors.append(f"torch.export-based exporter: {e}".splitlines()[0])
    raise KwsError("cannot export the model to ONNX (" + "; ".join(errors) + "); the torch.export-based "
                   "exporter needs the onnxscript package (pip install onnxscript)")


def checkpoint_scorer(path):
    """(scorer, labels, feature config, checkpoint dict) of a run folder or checkpoint: its model as an
    in-memory ONNX graph run by onnxruntime, what offline sweeps over streams use."""
    from kws_hpc.train.evaluate import load_checkpoint

    model, ckpt = load_checkpoint(path)
    fc = from_dict(FeatureConfig, ckpt["feature_config"])
    return OnnxScorer(to_onnx(model, fc.frames)), list(ckpt["labels"]), fc, ckpt


class TorchScorer:
    """A KwsRNN (or several averaged) behind the scorer interface: `window(features)` and `step(frames, state)`
    in numpy."""

    def __init__(self, model):
        self.graph = _graph_module(model)
        self.state_size = state_size(model)
        self.model = model.eval() if len(members(model)) == 1 else self.graph

    @property
    def can_stream(self) -> bool:
        return self.state_size > 0

    def window(self, features: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(features, np.float32))
        with torch.no_grad():
            if self.model is self.graph and self.state_size:  # averaged stepping members: a zero state
                return self.graph(x, torch.zeros(x.shape[0], self.state_size))[0].numpy()
            return self.model(x).numpy()

    def step(self, frames: np.ndarray, state: np.ndarray | None):
        import torch

        if state is None:
            state = np.zeros((frames.shape[0], self.state_size), np.float32)
        with torch.no_grad():
            logits, new = self.graph(torch.from_numpy(np.ascontiguousarray(frames, np.float32)),
                                     torch.from_numpy(state))
        return logits.numpy(), new.numpy()


class OnnxScorer:
    """An exported file (path or bytes) run by onnxruntime on `threads` CPU threads."""

    def __init__(self, model: str | Path | bytes, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for foreign files
            what = "the exported bytes" if isinstance(model, bytes) else str(model)
            raise KwsError(f"{what} is not a readable ONNX model ({str(e).splitlines()[0][:200]}); "
                           "export one with kws-hpc export") from e
        self.inputs = [i.name for i in self.session.get_inputs()]
        state = [i for i in self.session.get_inputs() if i.name == "state"]
        self.state_size = int(state[0].shape[1]) if state else 0
        self.metadata = self.session.get_modelmeta().custom_metadata_map

    @property
    def can_stream(self) -> bool:
        return self.state_size > 0

    def window(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, np.float32)
        feed = {"features": x}
        if self.state_size:
            feed["state"] = np.zeros((x.shape[0], self.state_size), np.float32)
        return self.session.run(["logits"], feed)[0]

    def step(self, frames: np.ndarray, state: np.ndarray | None):
        if not self.state_size:
            raise KwsError(CANNOT_STREAM)
        x = np.ascontiguousarray(frames, np.float32)
        if state is None:
            state = np.zeros((x.shape[0], self.state_size), np.float32)
        logits, new = self.session.run(["logits", "state_out"], {"features": x, "state": state})
        return logits, new
