"""RNN keyword classifiers: GRU and LSTM share every line except the one that picks the cell.

The model carries the store's per-mel mean and std as buffers and normalises its own input, so a
checkpoint or an exported file needs nothing else to turn log-mels into class scores. It labels the
whole clip (one pooled vector per sequence), never each time step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kws_hpc import config
from kws_hpc.config import ModelConfig

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}  # the keys are config.CELLS
HEADS = config.HEADS


class KwsRNN(nn.Module):
    """[B, frames, n_mels] log-mels -> [B, n_classes] logits."""

    def __init__(self, cfg: ModelConfig, n_mels: int, n_classes: int):
        super().__init__()
        if cfg.cell not in CELLS:
            raise ValueError(f"unknown cell {cfg.cell!r}: use {' or '.join(CELLS)}")
        if cfg.head not in HEADS:
            raise ValueError(f"unknown head {cfg.head!r}: use one of {', '.join(HEADS)}")
        self.cfg = cfg
        self.register_buffer("feat_mean", torch.zeros(n_mels))
        self.register_buffer("feat_std", torch.ones(n_mels))
        self.front = _conv_front(n_mels, cfg) if cfg.conv_channels > 0 else None
        rnn_in = cfg.conv_channels if cfg.conv_channels > 0 else n_mels
        width = cfg.hidden * (2 if cfg.bidirectional else 1)
        # with an rnn_stride the first layer is its own module and the layers above it read fewer steps
        lower = 1 if self.pyramid else cfg.layers
        self.rnn = _rnn(cfg, rnn_in, lower)
        self.rnn_upper = _rnn(cfg, width, cfg.layers - 1) if self.pyramid else None
        self.rnn_drop = nn.Dropout(cfg.dropout) if self.pyramid else None
        self.attn = nn.Linear(width, 1) if cfg.head == "attention" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(width, n_classes)

    @property
    def pyramid(self) -> bool:
        return self.cfg.rnn_stride > 1 and self.cfg.layers > 1

    def set_normalization(self, mean, std) -> None:
        """Store the per-mel mean and std (of the training split) that `normalize` applies."""
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feat_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-5))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.clip_norm:  # a gain is a constant offset in log-mel: remove it, keep the store's level
            x = x - x.mean(dim=(1, 2), keepdim=True) + self.feat_mean.mean()
        return (x - self.feat_mean) / self.feat_std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate vector (pooled RNN output) that the classifier reads."""
        x = self.normalize(x)
        if self.front is not None:
            x = self.front(x.transpose(1, 2)).transpose(1, 2)
        out, state = self.rnn(x)
        if self.pyramid:  # the mean of each rnn_stride steps (the last group may be shorter), then the rest
            k = self.cfg.rnn_stride
            out = F.avg_pool1d(self.rnn_drop(out).transpose(1, 2), k, k, ceil_mode=True).transpose(1, 2)
            out, state = self.rnn_upper(out)
        if self.cfg.head == "mean":
            return out.mean(dim=1)
        if self.cfg.head == "attention":
            weights = torch.softmax(self.attn(out).squeeze(-1), dim=1)
            return torch.bmm(weights.unsqueeze(1), out).squeeze(1)
        h = state[0] if isinstance(state, tuple) else state  # LSTM state is (h, c)
        if self.cfg.bidirectional:  # each direction's final state: forward at T, backward at 0
            return torch.cat([h[-2], h[-1]], dim=-1)
        return h[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.embed(x)))

    @property
    def can_stream(self) -> bool:
        """Frame-by-frame stepping equals the full forward pass for causal models only."""
        return (self.front is None and not self.pyramid and not self.cfg.bidirectional and not self.cfg.clip_norm
                and self.cfg.head in ("last", "mean"))

    def step(self, frames: torch.Tensor, state=None):
        """Advance over new frames [B, t, n_mels] carrying the RNN state; returns (logits, state).

        `state` is (rnn_state, frames_seen, running_sum); pass None to start (or after silence).
        """
        if not self.can_stream:
            raise ValueError(config.CANNOT_STREAM)
        rnn_state, seen, total = state if state is not None else (None, 0, None)
        out, rnn_state = self.rnn(self.normalize(frames), rnn_state)
        seen += out.shape[1]
        total = out.sum(1) if total is None else total + out.sum(1)
        pooled = total / seen if self.cfg.head == "mean" else out[:, -1]
        return self.classifier(pooled), (rnn_state, seen, total)


def _rnn(cfg: ModelConfig, n_in: int, layers: int) -> nn.Module:
    """`layers` stacked GRU or LSTM layers of `cfg.hidden` units (dropout between them)."""
    rnn = CELLS[cfg.cell](n_in, cfg.hidden, num_layers=layers, batch_first=True,
                          dropout=cfg.dropout if layers > 1 else 0.0, bidirectional=cfg.bidirectional)
    if cfg.cell == "lstm" and cfg.forget_bias:
        _set_forget_bias(rnn, cfg.forget_bias)
    return rnn


def _set_forget_bias(rnn: nn.LSTM, value: float) -> None:
    """Start every forget gate at `value` (the gates are ordered input, forget, cell, output; the
    input-side bias carries it, the hidden-side one is zero, so the gate's sum is `value`)."""
    h = rnn.hidden_size
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("bias_"):
                p[h:2 * h] = value if name.startswith("bias_ih") else 0.0


def _conv_front(n_mels: int, cfg: ModelConfig) -> nn.Sequential:
    """CRNN front-end: a small 1-D conv stack over time; the first layer's stride divides the frame count."""
    layers, ch = [], n_mels
    for i in range(cfg.conv_layers):
        layers += [nn.Conv1d(ch, cfg.conv_channels, kernel_size=5, padding=2, stride=cfg.conv_stride if i == 0 else 1),
                   nn.BatchNorm1d(cfg.conv_channels), nn.ReLU()]
        ch = cfg.conv_channels
    return nn.Sequential(*layers)


def build_model(cfg: ModelConfig, n_mels: int, n_classes: int) -> KwsRNN:
    """The classifier a model config describes, for `n_mels` inputs and `n_classes` outputs."""
    return KwsRNN(cfg, n_mels, n_classes)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (the normalisation buffers are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _span_mask(n: int, length: int, width: int, device) -> torch.Tensor:
    """[n, length] bool, True on one span per row of random width in [0, width] at a random start."""
    w = torch.randint(0, width + 1, (n, 1), device=device).clamp_max(length)
    start = (torch.rand(n, 1, device=device) * (length - w + 1)).floor().long()
    pos = torch.arange(length, device=device)
    return (pos >= start) & (pos < start + w)


def spec_augment(x: torch.Tensor, time_masks: int, time_width: int, freq_masks: int, freq_width: int,
                 fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """SpecAugment on a feature batch [B, T, F]: time and frequency spans set to `fill` (per mel or scalar).

    Vectorised over the batch (a loop over masks, never over examples); draws from torch's global
    generator on x's device. Training passes the model's `feat_mean`, so a mask reads as zero once the
    model has normalised its input.
    """
    b, t, f = x.shape
    time_mask = torch.zeros(b, t, dtype=torch.bool, device=x.device)
    freq_mask = torch.zeros(b, f, dtype=torch.bool, device=x.device)
    for _ in range(time_masks if time_width > 0 else 0):
        time_mask |= _span_mask(b, t, time_width, x.device)
    for _ in range(freq_masks if freq_width > 0 else 0):
        freq_mask |= _span_mask(b, f, freq_width, x.device)
    mask = time_mask[:, :, None] | freq_mask[:, None, :]
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device).expand(b, t, f)
    return torch.where(mask, fill, x)
