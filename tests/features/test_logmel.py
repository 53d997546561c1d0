"""The log-mel every stage shares: torchaudio's MelSpectrogram values, computed faster."""

import numpy as np
import pytest
import torch
import torchaudio

from kws_hpc.config import FeatureConfig
from kws_hpc.features.logmel import MEL_BATCH, log_mel, log_mels


def _torchaudio_log_mel(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.n_fft, hop_length=cfg.hop_length,
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=True)
    spec = torch.log(mel(torch.from_numpy(x)).clamp(min=cfg.log_floor))
    return spec[..., : cfg.frames].transpose(1, 2).numpy()


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(n_fft=512, hop_length=128, n_mels=64, frames=125)])
def test_log_mel_equals_torchaudio_melspectrogram(cfg):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, cfg.clip_samples)) * np.array([[1e-4], [1e-3], [1e-2], [0.1], [0.5]]))
    x = x.astype(np.float32)
    ours = log_mel(x, cfg)
    assert ours.shape == (5, cfg.frames, cfg.n_mels) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _torchaudio_log_mel(x, cfg), atol=2e-5, rtol=0)


def test_torch_input_gives_a_tensor_with_the_same_values():
    x = np.random.default_rng(1).standard_normal((3, 16000)).astype(np.float32) * 0.1
    out = log_mel(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), log_mel(x))
    np.testing.assert_array_equal(log_mel(x[0]), log_mel(x[:1]))  # one clip reads as a batch of one


def test_short_input_is_padded_to_the_configured_frames_with_the_log_floor():
    cfg = FeatureConfig()
    out = log_mel(np.random.default_rng(3).standard_normal((1, 8000)).astype(np.float32) * 0.1, cfg)
    assert out.shape == (1, cfg.frames, cfg.n_mels)
    assert np.all(out[0, 51:] == np.float32(np.log(cfg.log_floor)))
    assert np.all(out[0, :50] > np.log(cfg.log_floor))


def test_log_mels_batches_give_the_values_of_one_call():
    x = np.random.default_rng(2).standard_normal((2 * MEL_BATCH + 3, 16000)).astype(np.float32) * 0.05
    np.testing.assert_allclose(log_mels(x), log_mel(x), atol=1e-5, rtol=0)
    assert log_mels(x[:0]).shape == (0, 100, 40)
