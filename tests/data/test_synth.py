"""The synthetic corpus: real engines, real WAV files, a few speakers and words so it stays fast."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_hpc.data import synth
from kws_hpc.config import BACKGROUND
from kws_hpc.errors import KwsError

WORDS = ("yes", "no", "forward", "sheila")
SPEAKERS = 6
NOISE = 3  # white, pink and babble: babble is the one that needs the engines
needs_tts = pytest.mark.skipif(not (shutil.which("espeak-ng") or shutil.which("flite")),
                               reason="needs espeak-ng or flite")


def make(out: Path, **kw) -> dict:
    args = dict(words=WORDS, speakers=SPEAKERS, seed=3, noise_files=NOISE, workers=2, progress=False, takes=1)
    return synth.synth_corpus(out, **{**args, **kw})


def clips(root: Path) -> dict:
    """Relative path -> bytes of every WAV of a corpus, noise included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/*.wav"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "corpus"
    return root, make(root)


@needs_tts
def test_layout_and_wav_format(corpus):
    root, summary = corpus
    assert summary["clips"] == summary["written"] == len(WORDS) * SPEAKERS
    assert (summary["speakers"], summary["words"]) == (SPEAKERS, len(WORDS))
    assert {p.name for p in root.iterdir() if p.is_dir()} == {*WORDS, BACKGROUND}
    for word in WORDS:
        files = sorted((root / word).glob("*.wav"))
        assert len(files) == SPEAKERS
        for f in files:
            assert f.name.endswith("_nohash_0.wav") and len(f.name.split("_nohash_")[0]) == 8
            info = sf.info(f)
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    assert not list(root.rglob("*.tmp"))


@needs_tts
def test_more_takes_add_files_and_keep_the_first_takes_bytes(corpus, tmp_path):
    root, _ = corpus
    summary = make(tmp_path / "takes", words=WORDS[:2], takes=3)
    assert summary["clips"] == 2 * SPEAKERS * 3
    for word in WORDS[:2]:
        names = sorted(p.name for p in (tmp_path / "takes" / word).glob("*.wav"))
        assert len(names) == 3 * SPEAKERS and {n.split("_nohash_")[1] for n in names} == {"0.wav", "1.wav", "2.wav"}
        for n in names:  # take 0 is the one-take corpus's clip; the others are new renderings
            data = (tmp_path / "takes" / word / n).read_bytes()
            assert (data == (root / word / n).read_bytes()) if n.endswith("_0.wav") else not (root / word / n).exists()
        takes = [(tmp_path / "takes" / word / names[0].replace("_0.wav", f"_{k}.wav")).read_bytes() for k in range(3)]
        assert len(set(takes)) == 3
    assert "takes=3" in (tmp_path / "takes" / "README.md").read_text()


@needs_tts
def test_the_command_says_each_word_three_times_by_default(tmp_path, capsys):
    from kws_hpc.cli import main

    assert main(["data", "synth", str(tmp_path / "c"), "--speakers", "2", "--words", "yes", "--workers", "1"]) == 0
    assert len(list((tmp_path / "c" / "yes").glob("*_nohash_[012].wav"))) == 6 == 2 * synth.DEFAULT_TAKES
    assert main(["data", "synth", str(tmp_path / "d"), "--speakers", "2", "--words", "yes", "--takes", "1"]) == 0
    assert [p.name.split("_nohash_")[1] for p in (tmp_path / "d" / "yes").glob("*.wav")] == ["0.wav"] * 2
    assert main(["data", "synth", str(tmp_path / "e"), "--takes", "0"]) == 2
    assert "takes >= 1" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # refused before anything is written


@needs_tts
def test_speakers_tsv_names_distinct_recipes(corpus):
    root, _ = corpus
    header, *rows = (root / "speakers.tsv").read_text().splitlines()
    assert header.split("\t") == ["speaker", "engine", "voice", "variant", "pitch", "speed", "recipe"]
    ids = [r.split("\t")[0] for r in rows]
    assert len(rows) == SPEAKERS and len(set(ids)) == SPEAKERS
    for row in rows:
        speaker, engine, *_, recipe = row.split("\t")
        assert speaker == hashlib.sha1(recipe.encode()).hexdigest()[:8]
        assert engine in ("espeak-ng", "flite") and recipe.startswith(engine + ":")
    on_disk = {p.name.split("_nohash_")[0] for p in (root / WORDS[0]).glob("*.wav")}
    assert on_disk == set(ids)
    readme = (root / "README.md").read_text()
    assert "seed=3" in readme and "sheila" in readme


@needs_tts
def test_same_seed_same_bytes(corpus, tmp_path):
    root, _ = corpus
    make(tmp_path / "again", workers=1)  # a different worker count must not change a byte
    first, second = clips(root), clips(tmp_path / "again")
    assert first.keys() == second.keys() and first == second
    assert (root / "speakers.tsv").read_bytes() == (tmp_path / "again" / "speakers.tsv").read_bytes()


@needs_tts
def test_rerun_skips_existing_and_refills_missing(corpus, tmp_path):
    root, _ = corpus
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert make(copy)["written"] == 0
    lost = sorted((copy / "no").glob("*.wav"))[0]
    lost.unlink()
    (copy / "README.md").unlink()
    summary = make(copy)
    assert (summary["written"], summary["skipped"]) == (1, len(WORDS) * SPEAKERS - 1)
    assert clips(copy) == clips(root) and (copy / "README.md").exists()


@needs_tts
def test_background_noise_is_long(corpus):
    root, _ = corpus
    files = sorted((root / BACKGROUND).glob("*.wav"))
    assert [f.name for f in files] == ["babble_noise.wav", "pink_noise.wav", "white_noise.wav"]
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        assert sr == 16000 and x.ndim == 1 and 30 * sr <= len(x) <= 60 * sr
        assert 0.05 < x.std() < 0.2


@needs_tts
def test_words_are_audible_and_distinct(corpus):
    root, _ = corpus
    seen = set()
    for f in sorted(root.glob("[a-z]*/*.wav")):
        x, _ = sf.read(f, dtype="float32")
        frames = np.sqrt((x.reshape(50, 320) ** 2).mean(1))  # 20 ms frames
        assert frames.max() > 2.5 * frames.min(), f"{f}: word not above the noise floor"
        assert 2 <= frames.argmax() <= 47, f"{f}: loudest part at the edge of the clip"
        assert 10 ** (-40 / 20) < x.std() < 1
        seen.add(hashlib.sha1(x.tobytes()).hexdigest())
    assert len(seen) == len(WORDS) * SPEAKERS


@needs_tts
def test_too_many_speakers_is_a_clear_error(tmp_path):
    most = len(synth.available_voices())
    with pytest.raises(KwsError, match=f"at most {most}"):
        make(tmp_path / "big", speakers=most + 1)
    assert not (tmp_path / "big").exists()


@needs_tts
def test_speakers_are_a_stable_prefix():
    few, many = synth.pick_speakers(5, seed=1), synth.pick_speakers(40, seed=1)
    assert many[:5] == few and len({r.speaker for r in many}) == 40
    assert {r.engine for r in many} == {e for e in ("espeak-ng", "flite") if shutil.which(e)}


def test_no_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(KwsError, match="apt-get install espeak-ng flite"):
        synth.available_voices()


@pytest.mark.skipif(not shutil.which("flite"), reason="needs flite")
def test_one_engine_is_enough(monkeypatch):
    which = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda name: which(name) if name == "flite" else None)
    voices = synth.available_voices()
    assert {r.engine for r in voices} == {"flite"} and len(voices) == len({r.speaker for r in voices})


def test_bad_words_are_refused(tmp_path):
    with pytest.raises(KwsError, match="lower-case"):
        synth.synth_corpus(tmp_path, words=("yes", "-rf"), progress=False)
