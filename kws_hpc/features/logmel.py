"""Log-mel features: one function for the offline feature job and for the live detector.

A clip of `clip_samples` float samples becomes exactly `frames` x `n_mels` log-mel values. Keeping a
single implementation is what makes live features equal training features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kws_hpc.config import FeatureConfig


@lru_cache(maxsize=4)
def _mel_transform(cfg: FeatureConfig):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.n_fft, hop_length=cfg.hop_length,
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=True,
    )


def log_mel(waves, cfg: FeatureConfig = FeatureConfig()):
    """Batch of waveforms [B, S] (numpy or torch, float in [-1, 1]) -> log-mel [B, frames, n_mels].

    Returns the same kind it was given (numpy float32 or a torch tensor on the input's device).
    """
    import torch

    as_numpy = isinstance(waves, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)) if as_numpy else waves.float()
    if x.dim() == 1:
        x = x.unsqueeze(0)
    mel = _mel_transform(cfg).to(x.device)
    with torch.no_grad():
        spec = mel(x)  # [B, n_mels, T]; centred STFT gives S // hop + 1 frames
        spec = torch.log(torch.clamp(spec, min=cfg.log_floor))
        spec = spec[..., : cfg.frames].transpose(1, 2)
        if spec.shape[1] < cfg.frames:  # clips shorter than the config implies
            spec = torch.nn.functional.pad(spec, (0, 0, 0, cfg.frames - spec.shape[1]),
                                           value=float(np.log(cfg.log_floor)))
    return spec.contiguous().numpy() if as_numpy else spec.contiguous()


MEL_BATCH = 16  # clips per log-mel call: 16-32 keep the STFT in cache (3,200-3,700 clips/s on one core here,
                # 1,400-3,100 at 128, 1,400-1,800 at 256; BENCHMARKS.md 1b); the values are the same either way


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
