"""Short clips padded with their own background: in the store, in `live --wav`, at a stream's start."""

import numpy as np
import soundfile as sf

from kws_hpc.config import DataConfig, FeatureConfig
from kws_hpc.features.build import build_store
from kws_hpc.features.padding import background_like, clip_rng, pad_clip
from kws_hpc.features.store import load_split

from conftest import make_tree, tone_word

QUIET = dict(workers=0, progress=False, log=lambda m: None)


def short_clip(seconds=0.4, floor=0.01, seed=0) -> np.ndarray:
    """A tone word over a room noise of RMS `floor`, `seconds` long."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    word = tone_word("yes", 0, rng)[3000:3000 + n // 2]
    x = floor * rng.standard_normal(n)
    x[n // 4:n // 4 + len(word)] += word
    return x.astype(np.float32)


def db(x) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20)


def test_a_0_4_s_clip_is_padded_with_its_own_background_at_a_random_offset():
    clip = short_clip()
    out = pad_clip(clip, 16000, "background", clip_rng("yes/a_nohash_0.wav"))
    assert out.shape == (16000,) and out.dtype == np.float32
    at = next(i for i in range(16000 - len(clip) + 1) if np.array_equal(out[i:i + len(clip)], clip))
    fill = np.concatenate([out[:at], out[at + len(clip):]])
    assert len(fill) == 16000 - len(clip) and np.all(fill != 0)
    assert abs(db(fill) - 20 * np.log10(0.01)) < 1.5  # the clip's own floor, not silence and not the word
    # the same clip is padded the same way every time; another clip name moves it
    assert np.array_equal(out, pad_clip(clip, 16000, "background", clip_rng("yes/a_nohash_0.wav")))
    offsets = {next(i for i in range(16000) if np.array_equal(o[i:i + 10], clip[:10]))
               for o in (pad_clip(clip, 16000, "background", clip_rng(f"yes/{k}.wav")) for k in range(8))}
    assert len(offsets) > 4
    # zeros: the old way; a long clip is cut; a digitally silent floor stays digital silence
    assert np.array_equal(pad_clip(clip, 16000, "zeros"), np.pad(clip, (0, 16000 - len(clip))))
    assert np.array_equal(pad_clip(np.ones(20000, np.float32), 16000), np.ones(16000, np.float32))
    silent = np.zeros(6400, np.float32)
    silent[2000:3000] = 0.5
    assert not np.any(background_like(silent, 100, np.random.default_rng(0)))


def test_the_store_pads_short_clips_with_background_unless_asked_for_zeros(tmp_path):
    root = make_tree(tmp_path / "set", words=["yes", "no"], speakers=12)
    for k, f in enumerate(sorted((root / "yes").glob("*.wav"))):
        sf.write(f, short_clip(seed=k), 16000, subtype="PCM_16")  # every "yes" is 0.4 s over room noise
    floor = np.log(FeatureConfig().log_floor)
    frames = {}
    for pad in ("background", "zeros"):
        store = build_store(root, DataConfig(vocab="yes,no", val_percent=20, test_percent=20, pad=pad),
                            out=tmp_path / "f", **QUIET)
        d = load_split(store, "train")
        yes = d.features[d.labels == 0]
        frames[pad] = (yes <= floor + 0.05).all(axis=2).sum(axis=1)  # frames of digital silence per clip
    assert (frames["zeros"] >= 55).all()  # 0.6 s of zeros after the clip
    assert (frames["background"] == 0).all()


def test_live_fills_the_window_before_a_stream_and_after_a_short_file_with_background(tmp_path):
    from kws_hpc.deploy.audiofile import run_wav
    from kws_hpc.evaluate.detector import DetectorConfig
    from kws_hpc.evaluate.pipeline import Pipeline
    from kws_hpc.features.logmel import log_mel

    class Recorder:  # a scorer that keeps the windows it is shown
        can_stream = False

        def __init__(self):
            self.seen = []

        def window(self, feats):
            self.seen.append(feats[0])
            return np.zeros((1, 2), np.float32)

    clip = short_clip()
    sf.write(tmp_path / "short.wav", clip, 16000, subtype="PCM_16")
    rec = Recorder()
    pipe = Pipeline(rec, ["yes", "no"], FeatureConfig(), DetectorConfig(vad=False))
    run_wav(pipe, tmp_path / "short.wav", log=lambda m: None)
    assert pipe.seconds == 1.0 and len(rec.seen) == 10  # the 0.4-s file was completed to a window
    floor = np.log(FeatureConfig().log_floor)
    assert all(not (w <= floor + 1e-3).all(axis=1).any() for w in rec.seen)  # no frame of digital silence
    # the last window holds the whole clip and its background: as loud as the store's padded clip
    stored = log_mel(pad_clip(clip, 16000, "background", clip_rng("x"))[None], FeatureConfig())[0]
    assert abs(np.median(rec.seen[-1]) - np.median(stored)) < 1.0
