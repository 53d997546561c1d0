"""Short clips padded with their own background, the way a live window holds a word.

Many real clips are shorter than one second (13 % of the shared real set, down to 0.65 s). Padding them
with digital zeros teaches the model that a word comes with a stretch of perfect silence, which no
microphone ever delivers; live, the window around a word holds the room. `pad_clip` places the clip at a
random (per clip reproducible) offset in the window and fills the rest with noise shaped like the clip's
own quietest frames: the same power spectrum and level, fresh random phase, so no stretch repeats.
The live pipeline fills the window it holds before the first sample the same way (`background_like` on
the first audio), and a `live --wav` file shorter than a window is completed with it too.

A clip whose quiet frames are digital zeros (synthetic voices) is padded with zeros, as before.
`noise_windows` cuts the store's background noise into windows for the trainer's noise augmentation.
"""

from __future__ import annotations

import hashlib

import numpy as np

from kws_hpc.config import FeatureConfig

FRAME = 400  # samples per analysis frame (25 ms at 16 kHz)
HOP = 160
QUIET_SHARE = 0.2  # the quietest fifth of the frames stands for the background


def clip_rng(path: str, seed: int = 0, *more: int) -> np.random.Generator:
    """The generator of one clip (its padding; with `more`, its k-th augmented copy): the same clip is
    treated the same way in every run, whichever worker gets it."""
    return np.random.default_rng([seed, int(hashlib.sha1(path.encode()).hexdigest()[:8], 16), *more])


def background_like(wave: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of noise with the power spectrum and level of the quietest frames of `wave`."""
    wave = np.asarray(wave, np.float32)
    if n <= 0:
        return np.zeros(0, np.float32)
    if len(wave) < FRAME:
        frames = np.pad(wave, (0, FRAME - len(wave)))[None, :]
    else:
        starts = np.arange(0, len(wave) - FRAME + 1, HOP)
        frames = np.stack([wave[s:s + FRAME] for s in starts])
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1)
    quiet = frames[np.argsort(energy)[:max(1, int(np.ceil(QUIET_SHARE * len(frames))))]]
    level = float(np.sqrt(np.mean(quiet.astype(np.float64) ** 2)))
    if level <= 0:
        return np.zeros(n, np.float32)
    psd = np.mean(np.abs(np.fft.rfft(quiet * np.hanning(FRAME), axis=1)) ** 2, axis=0)
    m = max(n, FRAME)
    spectrum = np.fft.rfft(rng.standard_normal(m))
    shape = np.sqrt(np.interp(np.linspace(0, 1, len(spectrum)), np.linspace(0, 1, len(psd)), psd))
    noise = np.fft.irfft(spectrum * shape, m)[:n]
    rms = float(np.sqrt(np.mean(noise ** 2)))
    return (noise * (level / rms) if rms > 0 else noise).astype(np.float32)


def pad_clip(wave: np.ndarray, n: int, mode: str = "background",
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Exactly `n` samples: a longer clip keeps its first `n`; a shorter one is padded.

    `zeros`: digital silence after the clip. `background`: the clip at a random offset, its own
    background (`background_like`) before and after it.
    """
    wave = np.asarray(wave, np.float32)
    if len(wave) >= n:
        return wave[:n]
    missing = n - len(wave)
    if mode == "zeros":
        return np.pad(wave, (0, missing))
    rng = rng if rng is not None else np.random.default_rng(0)
    before = int(rng.integers(0, missing + 1))
    fill = background_like(wave, missing, rng)
    return np.concatenate([fill[:before], wave, fill[before:]]).astype(np.float32)


NOISE_HOP_S = 0.5  # background windows for the trainer: every half second of the noise's training stretch


def noise_windows(noise: dict, cfg: FeatureConfig) -> np.ndarray:
    """Log-mels of 1-s windows over the first 80 % of each noise file (the stretch `_silence_` training
    clips come from; validation and test silence are cut from the rest), at the file's own level."""
    from kws_hpc.features.logmel import log_mels

    n, hop = cfg.clip_samples, int(NOISE_HOP_S * cfg.sample_rate)
    waves = [w[s:s + n] for _, w in sorted(noise.items()) for s in range(0, int(0.8 * len(w)) - n + 1, hop)]
    return log_mels(np.stack(waves).astype(np.float32) if waves else np.zeros((0, n), np.float32), cfg)
