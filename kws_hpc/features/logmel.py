"""Log-mel features: one function for the offline feature job and for the live detector.

A clip of `clip_samples` float samples becomes exactly `frames` x `n_mels` log-mel values. Keeping a
single implementation is what makes live features equal training features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kws_hpc.config import FeatureConfig


@lru_cache(maxsize=8)
def _mel_parts(cfg: FeatureConfig, device: str = "cpu"):
    """(Hann window, the mel filter bank's non-zero rows [bins, n_mels], the first of those bins) of a
    feature config, on a device.

    The bank is torchaudio's (`melscale_fbanks`, HTK scale, no normalisation): the values of
    `torchaudio.transforms.MelSpectrogram` with this config (tests/features/test_logmel.py). Frequency bins
    outside f_min..f_max weigh zero in every band, so they are not computed past the FFT.
    """
    import torch
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels,
                                               cfg.sample_rate, norm=None, mel_scale="htk")
    used = (fb > 0).any(dim=1).nonzero().flatten()
    lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, fb.shape[0])
    return torch.hann_window(cfg.n_fft).to(device), fb[lo:hi].contiguous().to(device), lo


def log_mel(waves, cfg: FeatureConfig = FeatureConfig()):
    """Batch of waveforms [B, S] (numpy or torch, float in [-1, 1]) -> log-mel [B, frames, n_mels].

    Returns the same kind it was given (numpy float32 or a torch tensor on the input's device).
    A centred, reflect-padded STFT with a periodic Hann window, power as re^2 + im^2, the mel bank, the log:
    torchaudio's values within float rounding. Computed frame-major ([B * frames, bins] @ [bins, n_mels],
    one matrix product, no transposes), only the frames kept and the bins the bank uses; 1.1-1.2x the
    speed of `torch.stft` with the bank over its [bins, frames] output (BENCHMARKS.md 1i).
    """
    import torch

    as_numpy = isinstance(waves, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)) if as_numpy else waves.float()
    if x.dim() == 1:
        x = x.unsqueeze(0)
    window, bank, lo = _mel_parts(cfg, str(x.device))
    with torch.no_grad():
        frames = _frames(x, cfg) * window  # [B, T, n_fft]
        b, t = frames.shape[:2]
        spec = torch.fft.rfft(frames)[..., lo:lo + len(bank)]
        power = spec.real.square() + spec.imag.square()  # [B, T, bins]
        out = torch.mm(power.reshape(b * t, -1), bank).clamp_(min=cfg.log_floor).log_().view(b, t, -1)
        if t < cfg.frames:  # clips shorter than the config implies
            out = torch.nn.functional.pad(out, (0, 0, 0, cfg.frames - t), value=float(np.log(cfg.log_floor)))
    return out.numpy() if as_numpy else out


def _frames(x, cfg: FeatureConfig):
    """The centred STFT's frames of waveforms [B, S]: a view [B, min(frames, S // hop + 1), n_fft]."""
    import torch

    pad = cfg.n_fft // 2
    b, s = x.shape
    if s <= pad:  # too short to reflect: torch's own message
        padded = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    else:  # the reflection written straight into one buffer
        padded = x.new_empty(b, s + 2 * pad)
        padded[:, pad:pad + s] = x
        padded[:, :pad] = x[:, 1:pad + 1].flip(1)
        padded[:, pad + s:] = x[:, s - pad - 1:s - 1].flip(1)
    return padded.unfold(1, cfg.n_fft, cfg.hop_length)[:, :cfg.frames]


MEL_BATCH = 16  # clips per log-mel call: 8-32 keep the STFT in cache (one core, 64-clip tasks, median of 15:
                # 4,100-4,300 clips/s at 8-32, 3,300 at 64; BENCHMARKS.md 1d); the values are the same either way


def log_mels(waves: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """`log_mel` of many clips [N, S] in cache-sized batches -> [N, frames, n_mels] float32."""
    if not len(waves):
        return np.zeros((0, cfg.frames, cfg.n_mels), np.float32)
    return np.concatenate([log_mel(waves[i:i + MEL_BATCH], cfg) for i in range(0, len(waves), MEL_BATCH)])


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix `noise` into `wave` at the given signal-to-noise ratio (dB)."""
    p_sig = float(np.mean(wave ** 2)) + 1e-10
    p_noise = float(np.mean(noise ** 2)) + 1e-10
    scale = np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(wave + scale * noise, -1.0, 1.0).astype(np.float32)


def time_shift(wave: np.ndarray, shift: int) -> np.ndarray:
    """Shift by `shift` samples (positive = later), filling with zeros."""
    if shift == 0:
        return wave
    out = np.zeros_like(wave)
    if shift > 0:
        out[shift:] = wave[:-shift]
    else:
        out[:shift] = wave[-shift:]
    return out
