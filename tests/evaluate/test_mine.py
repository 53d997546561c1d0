"""Hard negatives: `mine` keeps the windows of training-speaker audio where the model fires, and
`train --hard-negatives` adds them to the training split as `_unknown_`, refusing another store's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kws_hpc.config import UNKNOWN, DataConfig, ModelConfig, RunConfig, TrainConfig, check_config
from kws_hpc.errors import KwsError


@pytest.fixture(scope="module")
def extras_run(tiny_tree, tmp_path_factory):
    """A store with `_silence_` and `_unknown_` and a one-epoch GRU trained on it."""
    from kws_hpc.features.build import build_store
    from kws_hpc.train.loop import train

    store = build_store(tiny_tree, DataConfig(vocab="yes,no", extras=True), out=tmp_path_factory.mktemp("f"),
                        workers=0, progress=False, log=lambda m: None)
    cfg = RunConfig(store=str(store), model=ModelConfig(hidden=8, layers=1, head="last", clip_norm=False,
                                                          conv_channels=0),
                    train=TrainConfig(epochs=1, device="cpu"))
    return store, train(cfg, out=tmp_path_factory.mktemp("runs"), log=lambda m: None, progress=False), cfg


@pytest.fixture(scope="module")
def mined(extras_run, tmp_path_factory):
    from kws_hpc.evaluate.mine import mine

    _, run, _ = extras_run
    return mine(run, tmp_path_factory.mktemp("hn") / "hn.npz", minutes=1.0, floor=0.05, progress=False,
                log=lambda m: None)


def test_mining_keeps_the_windows_that_score_a_keyword_on_training_speakers(extras_run, mined):
    from kws_hpc.config import FeatureConfig
    from kws_hpc.evaluate.det import make_stream
    from kws_hpc.evaluate.mine import MINE_SEED
    from kws_hpc.features.logmel import log_mels
    from kws_hpc.features.store import open_store

    store, _, _ = extras_run
    z = np.load(mined)
    feats, times, scores = z["features"], z["times"], z["scores"]
    assert str(z["store_signature"]) == open_store(store).signature
    assert len(feats) > 0 and feats.shape[1:] == (100, 40) and len(times) == len(scores) == len(feats)
    assert (scores >= 0.05).all() and np.all(np.diff(times) > 0)
    # each window is the second of the training-speaker stream that ends at its hop
    stream = make_stream(store, "train", 1.0, MINE_SEED, negative=True)
    assert not any(e.kind == "keyword" for e in stream.truth)
    end = int(round(times[0] * 16000))
    again = log_mels(stream.audio[None, end - 16000:end].astype(np.float32), FeatureConfig())
    assert np.allclose(again[0].astype(np.float16), feats[0], atol=1e-2)
    # a higher floor keeps fewer windows
    from kws_hpc.evaluate.mine import mine

    fewer = mine(extras_run[1], mined.parent / "hi.npz", minutes=1.0, floor=float(np.median(scores)),
                 progress=False, log=lambda m: None)
    assert 0 < len(np.load(fewer)["features"]) < len(feats)


def test_training_adds_them_as_unknown_and_names_another_run(extras_run, mined):
    from kws_hpc.features.store import open_store
    from kws_hpc.train.loop import _load

    store, _, cfg = extras_run
    info = open_store(store)
    plain = _load(info, torch.device("cpu"), lambda m: None)
    said = []
    more = _load(info, torch.device("cpu"), said.append, str(mined))
    n = len(np.load(mined)["features"])
    x0, y0 = plain["train"]
    x1, y1 = more["train"]
    assert len(y1) == len(y0) + n and torch.equal(x1[:len(y0)], x0) and torch.equal(y1[:len(y0)], y0)
    assert (y1[len(y0):] == list(info.labels).index(UNKNOWN)).all()
    assert torch.equal(x1[len(y0):], torch.from_numpy(np.load(mined)["features"]).to(x0.dtype))
    assert f"{n} hard negatives" in said[0]
    assert torch.equal(more["val"][1], plain["val"][1])  # validation and test are untouched
    with_hn = RunConfig(store=cfg.store, model=cfg.model, train=TrainConfig(epochs=1, hard_negatives=str(mined)))
    check_config(with_hn)
    assert with_hn.signature(info.signature) != cfg.signature(info.signature)
    moved = mined.parent / "moved.npz"  # the file's bytes name the run, not its path
    moved.write_bytes(mined.read_bytes())
    same = RunConfig(store=cfg.store, model=cfg.model, train=TrainConfig(epochs=1, hard_negatives=str(moved)))
    assert same.signature(info.signature) == with_hn.signature(info.signature)


def test_another_stores_windows_or_a_store_without_unknown_are_refused(extras_run, mined, tiny_store, tmp_path):
    from kws_hpc.train.negatives import load_hard_negatives
    from kws_hpc.features.store import open_store
    from kws_hpc.train.loop import _load

    with pytest.raises(KwsError, match="was mined from a run of store"):
        load_hard_negatives(mined, "000000000000", 100, 40)
    with pytest.raises(KwsError, match="has none"):
        _load(open_store(tiny_store), torch.device("cpu"), lambda m: None, str(mined))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(KwsError, match="not a file written by"):
        load_hard_negatives(junk, open_store(extras_run[0]).signature, 100, 40)
    with pytest.raises(KwsError, match="no such file"):
        check_config(RunConfig(store="s", train=TrainConfig(hard_negatives=str(tmp_path / "none.npz"))))
