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
    """(Hann window, mel filter bank [n_mels, n_fft // 2 + 1]) of a feature config, on a device.

    The bank is torchaudio's (`melscale_fbanks`, HTK scale, no normalisation): the values of
    `torchaudio.transforms.MelSpectrogram` with this config (tests/features/test_logmel.py).
    """
    import torch
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels,
                                               cfg.sample_rate, norm=None, mel_scale="htk")
    return torch.hann_window(cfg.n_fft).to(device), fb.T.contiguous().to(device)


def log_mel(waves, cfg: FeatureConfig = FeatureConfig()):
    """Batch of waveforms [B, S] (numpy or torch, float in [-1, 1]) -> log-mel [B, frames, n_mels].

    Returns the same kind it was given (numpy float32 or a torch tensor on the input's device).
    A centred, reflect-padded STFT with a periodic Hann window, power as re^2 + im^2 (half the time of
    torchaudio's complex `abs` then square, equal to it within float rounding), the mel bank, the log.
    """
    import torch

    as_numpy = isinstance(waves, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)) if as_numpy else waves.float()
    if x.dim() == 1:
        x = x.unsqueeze(0)
    window, bank = _mel_parts(cfg, str(x.device))
    with torch.no_grad():
        spec = torch.stft(x, cfg.n_fft, cfg.hop_length, cfg.n_fft, window, center=True, pad_mode="reflect",
                          return_complex=True)[..., : cfg.frames]  # centred: S // hop + 1 frames
        power = spec.real.square() + spec.imag.square()  # [B, n_fft // 2 + 1, T]
        mel = torch.matmul(bank, power).clamp_(min=cfg.log_floor)
        spec = torch.log(mel).transpose(1, 2)
        if spec.shape[1] < cfg.frames:  # clips shorter than the config implies
            spec = torch.nn.functional.pad(spec, (0, 0, 0, cfg.frames - spec.shape[1]),
                                           value=float(np.log(cfg.log_floor)))
    return spec.contiguous().numpy() if as_numpy else spec.contiguous()


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
