"""Test streams: deterministic WAV + truth, speech onsets, split filtering, the `data stream` command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import make_tree

from kws_hpc.cli import main
from kws_hpc.data.split import hash_split, read_manifest
from kws_hpc.errors import KwsError
from kws_hpc.evaluate.teststream import make_stream, read_truth, speech_bounds, stream_audio

WORDS = ["yes", "no", "up", "down", "house", "tree"]  # four seed12 keywords, two other words


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("corpus") / "sc", words=WORDS, speakers=12)


def _digest(p: Path) -> str:
    return hashlib.sha1(p.read_bytes()).hexdigest()


def test_speech_bounds_find_the_word_in_a_clip():
    rng = np.random.default_rng(0)
    x = 0.003 * rng.standard_normal(16000)
    t = np.arange(4800) / 16000
    x[6000:10800] += 0.4 * np.sin(2 * np.pi * 300 * t)
    first, end = speech_bounds(x)
    assert abs(first - 6000) <= 160 and abs(end - 10800) <= 160
    assert speech_bounds(np.zeros(16000)) == (0, 16000)  # no contrast: all of it


def test_make_stream_is_deterministic_and_truthful(corpus, tmp_path):
    a_wav, a_tsv = make_stream(corpus, tmp_path / "a.wav", minutes=0.5, seed=3)
    b_wav, b_tsv = make_stream(corpus, tmp_path / "b.wav", minutes=0.5, seed=3)
    c_wav, _ = make_stream(corpus, tmp_path / "c.wav", minutes=0.5, seed=4)
    assert _digest(a_wav) == _digest(b_wav) and _digest(a_tsv) == _digest(b_tsv)
    assert _digest(a_wav) != _digest(c_wav)
    x, sr = sf.read(a_wav, dtype="float32")
    assert sr == 16000 and len(x) == 30 * 16000
    truth = read_truth(a_tsv)
    assert {e.kind for e in truth} <= {"keyword", "other", "noise"}
    assert any(e.kind == "keyword" for e in truth)
    assert all(e.word in ("yes", "no", "up", "down") for e in truth if e.kind == "keyword")
    assert all(e.word in ("house", "tree") for e in truth if e.kind == "other")
    onsets = [e.onset for e in truth]
    assert onsets == sorted(onsets) and onsets[-1] < 30
    for e in truth:  # the speech is in the stream where the truth says, louder than the quiet between
        assert e.clip_start <= e.onset < e.offset
        word = x[int(e.onset * sr):int(e.offset * sr)]
        assert np.sqrt(np.mean(word ** 2)) > 10 * 10 ** (-55 / 20)
    for prev, nxt in zip(truth, truth[1:]):
        assert nxt.onset - prev.offset >= 0.5 - 1e-3  # the configured gap between events


def test_split_keeps_only_that_splits_speakers(corpus):
    _, truth = stream_audio(corpus, minutes=0.5, seed=0, split="test")
    sources = [e.source for e in truth if e.kind != "noise"]
    assert sources and all(hash_split(p) == "test" for p in sources)


def test_a_negative_stream_holds_other_words_and_noise_of_test_speakers_only(corpus):
    _, truth = stream_audio(corpus, minutes=2, seed=5, split="test", keyword_share=0.0, noise_share=0.2)
    kinds = {e.kind for e in truth}
    assert kinds == {"other", "noise"} and len(truth) > 20
    assert all(hash_split(e.source) == "test" for e in truth if e.kind == "other")
    noise_only, _ = stream_audio(corpus, minutes=0.2, seed=5, keywords=["yes"], keyword_share=0.0, noise_share=1.0)
    assert len(noise_only) == int(round(0.2 * 60 * 16000))


def test_store_split_follows_its_manifest(tiny_store, tiny_tree):
    _, truth = stream_audio(tiny_tree, minutes=0.5, seed=1, store=tiny_store, split="val")
    split_of = {c.path: c.split for c in read_manifest(tiny_store / "clips.tsv")}
    sources = [e.source for e in truth if e.kind != "noise"]
    assert sources and all(split_of[p] == "val" for p in sources)
    from kws_hpc.features.store import open_store

    labels = set(open_store(tiny_store).labels)
    assert all(e.word in labels for e in truth if e.kind == "keyword")
    assert all(e.kind == "other" for e in truth if e.word in ("house", "tree"))


def test_stream_errors_are_clear(corpus, tmp_path):
    with pytest.raises(KwsError, match="must end in .wav"):
        make_stream(corpus, tmp_path / "s.mp3")
    with pytest.raises(KwsError, match="no clips of keyword"):
        stream_audio(corpus, keywords=["forward"])
    with pytest.raises(KwsError, match="does not exist"):
        read_truth(tmp_path / "none.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("time\tlabel\n1.0\tyes\n")
    with pytest.raises(KwsError, match="columns word and onset"):
        read_truth(bad)


def test_data_stream_command(corpus, tmp_path, capsys):
    out = tmp_path / "s.wav"
    assert main(["data", "stream", "--corpus", str(corpus), "--out", str(out), "--minutes", "0.25",
                 "--seed", "2", "--keywords", "yes,no"]) == 0
    text = capsys.readouterr().out
    assert "keywords" in text and text.strip().endswith(str(out))
    assert out.is_file() and out.with_suffix(".tsv").is_file()
    assert {e.word for e in read_truth(out.with_suffix(".tsv")) if e.kind == "keyword"} <= {"yes", "no"}
    assert main(["data", "stream", "--corpus", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
