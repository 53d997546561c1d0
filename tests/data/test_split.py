"""Vocabularies, the hash split, official lists, quotas, _unknown_/_silence_ sampling, the manifest."""

import hashlib

import pytest

from kws_hpc.config import DataConfig
from kws_hpc.data.split import (Clip, hash_split, label_names, read_manifest, resolve_vocab, scan, select,
                          speaker_of, write_manifest)
from kws_hpc.errors import KwsError
from kws_hpc.data.source import FolderSource

from conftest import SAMPLE, make_tree


def test_speaker_is_name_up_to_nohash():
    assert speaker_of("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert speaker_of("noise/odd.wav") == "odd"


@pytest.mark.parametrize("path", ["yes/a.b_nohash_0.wav", "yes/.wav", "yes/..wav", "yes/...a.wav", "yes/noext",
                                  "a.b/c", "yes/b.", "yes/.a.b", "f.wav", "yes/_nohash_.wav", "x/y/z_nohash_1.mp3"])
def test_speaker_of_cuts_the_extension_as_splitext_does(path):
    import os

    stem = os.path.splitext(path.rsplit("/", 1)[-1])[0]
    assert speaker_of(path) == stem.split("_nohash_")[0]


def test_hash_split_is_the_data_sets_rule():
    # The rule from the data set's README, spelled out: sha1 of the speaker id as an integer.
    name = "right/988e2f9a_nohash_0.wav"
    h = int(hashlib.sha1(b"988e2f9a").hexdigest(), 16)
    pct = (h % (2 ** 27)) * (100.0 / (2 ** 27 - 1))
    expected = "val" if pct < 10 else "test" if pct < 20 else "train"
    assert hash_split(name) == expected


def test_hash_split_percentages_and_speaker_stability():
    ids = [hashlib.md5(str(i).encode()).hexdigest()[:8] for i in range(4000)]
    splits = [hash_split(f"yes/{s}_nohash_0.wav") for s in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["val"] - 0.1) < 0.02
    # every clip of a speaker, in any word folder, lands in the same split
    for s, split in zip(ids[:200], splits):
        assert {hash_split(f"{w}/{s}_nohash_{n}.wav") for w in ("no", "go") for n in range(3)} == {split}
    # other percentages move the boundaries, not the order
    wide = [hash_split(f"yes/{s}_nohash_0.wav", 20, 20) for s in ids]
    assert all(w != "train" for w, s in zip(wide, splits) if s != "train")


def test_vocabularies():
    assert resolve_vocab("seed12", [])[0][:3] == ["yes", "no", "bird"]
    words, extras = resolve_vocab("v2-12", [])
    assert extras and label_names(words, extras)[-2:] == ["_silence_", "_unknown_"]
    assert resolve_vocab("digits", [])[0][0] == "zero"
    assert resolve_vocab("all", ["b", "a", "_background_noise_"])[0] == ["a", "b"]
    assert resolve_vocab("up, down", [])[0] == ["up", "down"]
    with pytest.raises(KwsError):
        resolve_vocab("up,up", [])


def test_scan_is_speaker_disjoint_and_lists_everything(tiny_tree):
    (tiny_tree / "yes" / "notes.txt").write_text("not audio")
    try:
        clips, words, extras = scan(FolderSource(tiny_tree), DataConfig(vocab="yes,no,up"))
    finally:
        (tiny_tree / "yes" / "notes.txt").unlink()
    assert words == ["yes", "no", "up"] and not extras
    by_speaker = {}
    for c in clips:
        by_speaker.setdefault(c.speaker, set()).add(c.split)
    assert all(len(s) == 1 for s in by_speaker.values())
    reasons = {c.path: c.reason for c in clips}
    assert reasons["yes/notes.txt"] == "not a .wav file"
    assert reasons[next(p for p in reasons if p.startswith("go/"))] == "word not in vocabulary"
    assert sum(1 for c in clips if c.label) == 3 * 20


def test_scan_errors(tmp_path):
    make_tree(tmp_path, words=["yes"], speakers=2, noise=False)
    with pytest.raises(KwsError, match="no word folder for 'zero', 'one'"):
        scan(FolderSource(tmp_path), DataConfig(vocab="digits"))
    with pytest.raises(KwsError, match=r"no word folder for 'YES', 'n o' .* \(folders: yes\)"):
        scan(FolderSource(tmp_path), DataConfig(vocab="YES,yes,n o"))
    with pytest.raises(KwsError, match="validation_list.txt"):
        scan(FolderSource(tmp_path), DataConfig(vocab="yes", split="official"))


def test_official_split_reads_the_lists(tmp_path):
    make_tree(tmp_path, words=["yes", "no"], speakers=4, noise=False)
    val = sorted((tmp_path / "yes").iterdir())[0].relative_to(tmp_path).as_posix()
    test = sorted((tmp_path / "no").iterdir())[1].relative_to(tmp_path).as_posix()
    (tmp_path / "validation_list.txt").write_text(val + "\n")
    (tmp_path / "testing_list.txt").write_text(test + "\n")
    clips, _, _ = scan(FolderSource(tmp_path), DataConfig(vocab="yes,no", split="official"))
    splits = {c.path: c.split for c in clips}
    assert splits[val] == "val" and splits[test] == "test"
    assert sum(1 for s in splits.values() if s == "train") == 6


def test_quotas_cap_each_class(tiny_tree):
    cfg = DataConfig(vocab="yes,no,up", quota_train=5, quota_test=1)
    clips, words, extras = scan(FolderSource(tiny_tree), cfg)
    clips = select(clips, cfg, words, extras, {})
    for w in words:
        assert sum(1 for c in clips if c.used and c.split == "train" and c.label == w) == 5
        assert sum(1 for c in clips if c.used and c.split == "test" and c.label == w) == 1
    assert any(c.reason == "over quota (5 per class)" for c in clips)


def test_v2_12_caps_unknown_and_cuts_silence(tiny_tree):
    cfg = DataConfig(vocab="v2-12", unknown_percent=10)
    clips, words, extras = scan(FolderSource(tiny_tree), cfg)
    clips = select(clips, cfg, words, extras, {"_background_noise_/white.wav": 16000 * 20})
    train = [c for c in clips if c.used and c.split == "train"]
    known = sum(1 for c in train if c.label in words)
    n_unknown = sum(1 for c in train if c.label == "_unknown_")
    n_silence = sum(1 for c in train if c.label == "_silence_")
    assert known > 0 and n_unknown == n_silence == -(-known // 10)  # ceil(10 %)
    assert all(c.word in ("house", "tree") for c in train if c.label == "_unknown_")
    # silence of each split is cut from its own stretch of the noise file
    starts = {s: [c.start for c in clips if c.label == "_silence_" and c.split == s] for s in ("train", "test")}
    assert max(starts["train"]) + 16000 <= 0.8 * 16000 * 20 <= min(starts["test"])


def test_manifest_round_trip(tmp_path):
    clips = [Clip("yes/a_nohash_0.wav", "yes", "yes", "a", "train", 16000),
             Clip("yes/b.txt", "yes", reason="not a .wav file"),
             Clip("_background_noise_/w.wav#5", "_background_noise_", "_silence_", "_noise_", "val", 16000, "",
                  5, 0.5)]
    write_manifest(clips, tmp_path / "clips.tsv")
    assert read_manifest(tmp_path / "clips.tsv") == clips
    assert not (tmp_path / "clips.tsv.tmp").exists()



def test_extras_add_silence_and_unknown_to_any_vocabulary(tiny_tree):
    cfg = DataConfig(vocab="yes,no", extras=True, unknown_percent=50)
    clips, words, extras = scan(FolderSource(tiny_tree), cfg)
    assert extras and label_names(words, extras) == ["yes", "no", "_silence_", "_unknown_"]
    clips = select(clips, cfg, words, extras, {"_background_noise_/white.wav": 16000 * 20})
    train = [c for c in clips if c.used and c.split == "train"]
    known = sum(1 for c in train if c.label in words)
    assert sum(1 for c in train if c.label == "_unknown_") == sum(1 for c in train if c.label == "_silence_") \
        == known // 2


def test_by_default_unknown_and_silence_match_the_keywords_except_in_v2_12(tiny_tree):
    """A detector vocabulary hears as many other words and silences as keywords (or every other word
    there is); v2-12 keeps the data set's 10 %; a given share is kept as given."""
    assert DataConfig().resolved().unknown_percent == 100.0
    assert DataConfig(vocab="v2-12").resolved().unknown_percent == 10.0
    assert DataConfig(vocab="v2-12", unknown_percent=30).resolved().unknown_percent == 30.0
    cfg = DataConfig(vocab="yes,no", extras=True)
    clips, words, extras = scan(FolderSource(tiny_tree), cfg)
    clips = select(clips, cfg, words, extras, {"_background_noise_/white.wav": 16000 * 60})
    for split in ("train", "test"):
        used = [c for c in clips if c.used and c.split == split]
        known = sum(1 for c in used if c.label in words)
        others = sum(1 for c in clips if c.split == split and c.label == "_unknown_" and not c.reason.startswith("not"))
        assert sum(1 for c in used if c.label == "_silence_") == known > 0
        assert sum(1 for c in used if c.label == "_unknown_") == min(known, others) > 0


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared Speech Commands sample not present")
def test_v2_12_on_the_sample_follows_the_data_sets_rules():
    """_unknown_: every non-keyword word in turn, ceil(10 %) of the keyword clips; _silence_: as many 1-s
    cuts of the background noise, each split from its own stretch of the files."""
    from kws_hpc.config import V2_12
    from kws_hpc.features.noise import read_noise
    from kws_hpc.config import FeatureConfig

    source = FolderSource(SAMPLE)
    cfg = DataConfig(vocab="v2-12")
    clips, words, extras = scan(source, cfg)
    noise = {p: len(w) for p, w in read_noise(source, FeatureConfig())[0].items()}
    assert words == list(V2_12) and extras and len(noise) == 6
    clips = select(clips, cfg, words, extras, noise)
    others = {c.word for c in clips if c.word not in V2_12 and c.word != "_background_noise_"}
    assert len(others) == 20  # bed, bird, cat, ... zero
    for split in ("train", "val", "test"):
        used = [c for c in clips if c.used and c.split == split]
        known = sum(1 for c in used if c.label in V2_12)
        unknown = [c.word for c in used if c.label == "_unknown_"]
        candidates = {c.word for c in clips if c.split == split and c.label == "_unknown_"}
        silence = [c for c in used if c.label == "_silence_"]
        assert len(unknown) == len(silence) == -(-known // 10)
        # every word is heard before any twice
        assert len(set(unknown)) == min(len(unknown), len(candidates))
        assert all(c.path.split("#")[0] in noise and c.samples == 16000 for c in silence)
        lo, hi = {"train": (0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
        assert all(lo * noise[c.path.split("#")[0]] <= c.start <= hi * noise[c.path.split("#")[0]] - 16000
                   for c in silence)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared Speech Commands sample not present")
def test_a_link_file_reads_as_the_folder_it_names(tmp_path):
    """`_background_noise_` as a small text file holding a relative path (a symlink where links are off)."""
    root = tmp_path / "set"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "a_nohash_0.wav").write_bytes((SAMPLE / "yes").glob("*.wav").__next__().read_bytes())
    (root / "_background_noise_").write_text(str(SAMPLE / "_background_noise_"))  # absolute works too
    (root / "notes").write_text("not a folder")
    src = FolderSource(root)
    noise = [e.path for e in src.files() if e.path.startswith("_background_noise_/")]
    assert len(noise) == 6 and "_background_noise_" in src.dirs() and "notes" not in src.dirs()
    assert "_background_noise_" not in [e.path for e in src.files()]
    assert dict(src.iter_bytes(noise[:1]))[noise[0]] == (SAMPLE / noise[0]).read_bytes()
