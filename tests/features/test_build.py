"""The feature job: HDF5 layout and attributes, signatures, reruns, recovery, bad input."""

import json
from pathlib import Path
import os
import signal
import subprocess
import sys
import tarfile
import time

import h5py
import numpy as np
import pytest
import soundfile as sf

from kws_hpc.cli import main
from kws_hpc.config import DataConfig, FeatureConfig
from kws_hpc.errors import KwsError
from kws_hpc.features.logmel import log_mel
from kws_hpc.features.build import build_store
from kws_hpc.features.store import check_compatible, load_split, open_store

from conftest import SAMPLE, TINY_WORDS, make_tree

QUIET = dict(progress=False, log=lambda m: None)


def test_store_layout_and_attributes(tiny_store, tiny_tree):
    info = open_store(tiny_store)
    assert info.labels == TINY_WORDS[:10]
    assert tiny_store.name == info.signature
    for split in ("train", "val", "test"):
        with h5py.File(tiny_store / f"{split}.h5") as f:
            n = len(f["labels"])
            assert f["features"].shape == (n, 100, 40) and f["features"].dtype == np.float16
            assert f["features"].chunks is not None
            assert len(f["speaker"]) == len(f["path"]) == n
            assert json.loads(f.attrs["labels"]) == info.labels
            assert json.loads(f.attrs["config"])["hop_length"] == 160
            assert f.attrs["signature"] == info.signature and f.attrs["fingerprint"] == info.fingerprint
            assert ("mean" in f.attrs) == (split == "train")
    # no speaker in two splits
    speakers = {s: set(load_split(tiny_store, s).speakers) for s in ("train", "val", "test")}
    assert not (speakers["train"] & speakers["val"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["val"] & speakers["test"])
    summary = json.loads((tiny_store / "summary.json").read_text())
    assert sum(summary["counts"][s]["total"] for s in speakers) == 10 * 20
    assert summary["skipped"] == {"word not in vocabulary": 2 * 20}


def test_features_round_trip_equal_log_mel_of_the_clip(tiny_store, tiny_tree):
    test = load_split(tiny_store, "test")
    wave, sr = sf.read(tiny_tree / test.paths[0], dtype="float32")
    expected = log_mel(wave[None], FeatureConfig())[0]
    assert np.max(np.abs(test.features[0] - expected)) < 0.02  # float16 storage
    assert test.labels[0] == TINY_WORDS.index(test.paths[0].split("/")[0])
    info = open_store(tiny_store)
    train = load_split(tiny_store, "train")
    assert np.allclose(info.mean, train.features.mean(axis=(0, 1)), atol=1e-3)
    assert np.allclose(info.std, train.features.std(axis=(0, 1)), atol=1e-3)


def test_same_signature_recomputes_nothing(tiny_store, tiny_tree, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_store.iterdir()}
    again = build_store(tiny_tree, DataConfig(vocab=",".join(TINY_WORDS[:10])), out=tiny_store.parent,
                        workers=0, progress=False)
    assert again == tiny_store
    assert "nothing recomputed" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in tiny_store.iterdir()} == before


def test_signature_changes_with_config_and_data(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=10)
    a = build_store(tree, DataConfig(vocab="yes,no"), out=tmp_path / "f", workers=0, **QUIET)
    b = build_store(tree, DataConfig(vocab="yes,no"), FeatureConfig(n_mels=32), out=tmp_path / "f", workers=0, **QUIET)
    sf.write(tree / "yes" / "feedbeef_nohash_0.wav", np.zeros(16000), 16000, subtype="PCM_16")
    c = build_store(tree, DataConfig(vocab="yes,no"), out=tmp_path / "f", workers=0, **QUIET)
    assert len({a.name, b.name, c.name}) == 3
    with pytest.raises(KwsError, match="n_mels: 32 vs 40"):
        check_compatible(open_store(a), ["yes", "no"], FeatureConfig(n_mels=32), "checkpoint x")
    with pytest.raises(KwsError, match="labels"):
        check_compatible(open_store(a), ["no", "yes"], FeatureConfig(), "checkpoint x")


def test_bad_clips_are_skipped_with_reasons(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=12)
    good = (tree / "yes" / sorted(os.listdir(tree / "yes"))[0]).read_bytes()
    (tree / "yes" / "aaaa0001_nohash_0.wav").write_bytes(good[:3000])
    (tree / "yes" / "aaaa0002_nohash_0.wav").write_bytes(b"garbage" * 100)
    sf.write(tree / "no" / "aaaa0003_nohash_0.wav", np.zeros(8000), 8000, subtype="PCM_16")
    sf.write(tree / "no" / "aaaa0004_nohash_0.wav", np.zeros((16000, 2)), 16000, subtype="PCM_16")
    (tree / "no" / "readme.md").write_text("hello")
    (tree / "dog").mkdir()
    store = build_store(tree, DataConfig(vocab="yes,no"), out=tmp_path / "f", workers=2, **QUIET)
    summary = json.loads((store / "summary.json").read_text())
    reasons = {b["path"]: b["reason"] for b in summary["bad_clips"]}
    assert reasons["yes/aaaa0001_nohash_0.wav"].startswith("truncated WAV")
    assert reasons["yes/aaaa0002_nohash_0.wav"].startswith("not a WAV file")
    assert reasons["no/aaaa0003_nohash_0.wav"].startswith("sample rate 8000 Hz")
    assert reasons["no/aaaa0004_nohash_0.wav"] == "2 channels, expected mono"
    assert reasons["no/readme.md"] == "not a .wav file"
    assert reasons["dog/"] == "empty word folder"
    manifest = (store / "clips.tsv").read_text()
    assert "truncated WAV" in manifest and "aaaa0003" in manifest
    assert sum(summary["counts"][s]["total"] for s in ("train", "val", "test")) == 24


def _with_chunk_before_audio(wav: bytes, n: int) -> bytes:
    """The same WAV with an n-byte LIST chunk between its format and its data (the RIFF size mended)."""
    import struct

    body = wav[12:36] + b"LIST" + struct.pack("<I", n) + b"x" * n + wav[36:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize("extra", [0, 900, 5000])  # the header within the first read (0, 900), or past it
def test_the_header_probe_of_a_file_equals_that_of_its_bytes(tmp_path, extra):
    from kws_hpc.data.source import decode_wav
    from kws_hpc.data.source import probe as _probe

    tree = make_tree(tmp_path / "d", words=["yes"], speakers=1, noise=False)
    clip = next((tree / "yes").iterdir())
    data = _with_chunk_before_audio(clip.read_bytes(), extra) if extra else clip.read_bytes()
    clip.write_bytes(data)
    samples = len(decode_wav(data))
    cases = {"whole": data, "truncated": data[:-500], "short": data[:30], "empty": b""}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        assert _probe((name, str(tmp_path / name))) == _probe((name, payload)), name
    assert _probe(("c", str(clip))) == ("c", samples, "")
    assert _probe(("t", str(tmp_path / "truncated")))[2].startswith("truncated WAV")
    assert _probe(("d", str(tmp_path)))[1:] == (-1, "unreadable file: Is a directory")
    assert _probe(("m", str(tmp_path / "missing.wav")))[1:] == (-1, "unreadable file: No such file or directory")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["features", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    junk = tmp_path / "junk"
    (junk / "yes").mkdir(parents=True)
    (junk / "yes" / "x_nohash_0.wav").write_bytes(b"nope")
    assert main(["features", "--data", str(junk), "--vocab", "yes", "--out", str(tmp_path / "f"),
                 "--workers", "0", "--no-progress"]) == 2
    assert "nothing usable" in capsys.readouterr().err
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())


def test_tar_gz_gives_the_same_features(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no", "up"], speakers=12)
    archive = tmp_path / "sc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=".")
    cfg = DataConfig(vocab="yes,no,up")
    a = build_store(tree, cfg, out=tmp_path / "f", workers=2, **QUIET)
    b = build_store(archive, cfg, out=tmp_path / "g", workers=2, **QUIET)
    assert a.name == b.name
    for split in ("train", "test"):
        sa, sb = load_split(a, split), load_split(b, split)
        order = {p: i for i, p in enumerate(sb.paths)}
        idx = [order[p] for p in sa.paths]
        assert np.array_equal(sa.features, sb.features[idx]) and np.array_equal(sa.labels, sb.labels[idx])


def test_augmented_copies_follow_each_clip(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=10)
    store = build_store(tree, DataConfig(vocab="yes,no", augment=2), out=tmp_path / "f", workers=0, **QUIET)
    train = load_split(store, "train")
    assert list(train.augmented[:6]) == [0, 1, 2, 0, 1, 2]
    assert train.paths[0] == train.paths[1] == train.paths[2]
    assert not np.allclose(train.features[0], train.features[1])
    assert len(load_split(store, "test").augmented) == int((load_split(store, "test").augmented == 0).sum())


def test_killed_job_leaves_nothing_that_looks_finished_and_rerun_completes(tmp_path):
    tree = make_tree(tmp_path / "d", words=TINY_WORDS, speakers=60, noise=True)
    out = tmp_path / "f"
    cmd = [sys.executable, "-m", "kws_hpc", "features", "--data", str(tree), "--vocab", "all", "--out", str(out),
           "--workers", "1", "--augment", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("*/.train.h5.*.partial")):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = next(p for p in out.iterdir() if p.is_dir())  # not its .lock
    assert not (store / "train.h5").exists() and not (store / "summary.json").exists()
    with pytest.raises(KwsError, match="unfinished"):
        open_store(store)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == str(store)
    assert not list(store.glob("*.partial")) and len(load_split(store, "train").labels) > 0


def test_rerun_keeps_finished_splits(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=10)
    cfg = DataConfig(vocab="yes,no")
    store = build_store(tree, cfg, out=tmp_path / "f", workers=0, **QUIET)
    train_mtime = (store / "train.h5").stat().st_mtime_ns
    (store / "val.h5").unlink()
    (store / "summary.json").unlink()
    msgs = []
    build_store(tree, cfg, out=tmp_path / "f", workers=0, progress=False, log=msgs.append)
    assert "train.h5 already written, kept" in msgs
    assert (store / "train.h5").stat().st_mtime_ns == train_mtime and (store / "val.h5").exists()


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared Speech Commands sample not present")
def test_real_sample_reads_correctly(tmp_path):
    with pytest.raises(KwsError, match="no word folder for 'forward'"):  # a v0.02 word: not in this v0.01 sample
        build_store(SAMPLE, DataConfig(vocab="seed12"), out=tmp_path, workers=2, **QUIET)
    with pytest.raises(KwsError, match="no clip of 'cat' in val, 'bird' in test; too few speakers"):
        build_store(SAMPLE, DataConfig(vocab="yes,no,bird,cat,dog"), out=tmp_path, workers=2, **QUIET)
    assert not list(tmp_path.iterdir())  # refused before anything is written
    words = "yes,no,dog,up,down,left,right,stop,go"
    store = build_store(SAMPLE, DataConfig(vocab=words), out=tmp_path, workers=2, **QUIET)
    summary = json.loads((store / "summary.json").read_text())
    totals = sum(summary["counts"][s]["total"] for s in ("train", "val", "test"))
    assert totals == 9 * 10
    feats = load_split(store, "train").features
    assert np.isfinite(feats).all() and feats.std() > 1.0


def test_cli_synth_then_features_builds_a_speaker_disjoint_store(tmp_path, capsys):
    import shutil

    if not (shutil.which("espeak-ng") or shutil.which("flite")):
        pytest.skip("no speech synthesizer (apt-get install espeak-ng flite)")
    corpus, out = tmp_path / "corpus", tmp_path / "features"
    assert main(["data", "synth", str(corpus), "--speakers", "30", "--words", "yes,no,up", "--workers", "2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(corpus)
    args = ["features", "--data", str(corpus), "--vocab", "yes,no,up", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    store = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in store.iterdir()) == ["clips.tsv", "config.toml", "summary.json", "test.h5",
                                                       "train.h5", "val.h5"]
    splits = {s: set(load_split(store, s).speakers) for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == len(set().union(*splits.values())) == 30
    assert main(args) == 0
    assert "nothing recomputed" in capsys.readouterr().out


def test_features_as_a_local_submitit_job(tmp_path, capsys):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=10)
    out = tmp_path / "f"
    code = main(["features", "--data", str(tree), "--vocab", "yes,no", "--out", str(out), "--workers", "0",
                 "--executor", "local"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and any("submitted kws-features as local job" in line for line in printed)
    store = Path(printed[-1])
    assert store.parent == out and open_store(store).labels == ["yes", "no"]
    assert list((out / "jobs").glob("*_log.out"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "short"])
def test_a_damaged_split_is_refused_then_rebuilt(tmp_path, capsys, damage):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=12)
    cfg = DataConfig(vocab="yes,no")
    store = build_store(tree, cfg, out=tmp_path / "f", workers=0, **QUIET)
    good = load_split(store, "train").features
    train = store / "train.h5"
    if damage == "garbage":
        train.write_bytes(b"\x00" * 4096)
    elif damage == "truncated":
        train.write_bytes(train.read_bytes()[: train.stat().st_size // 2])
    else:  # a well-formed file that lost rows: summary.json says how many there must be
        with h5py.File(train, "a") as f:
            for name in ("features", "labels", "speaker", "path", "augmented"):
                data = f[name][:3]
                del f[name]
                f.create_dataset(name, data=data)
    with pytest.raises(KwsError, match="train.h5 (is unreadable or truncated|holds 3 rows)"):
        open_store(store)
    assert main(["features", "--data", str(tree), "--vocab", "yes,no", "--out", str(tmp_path / "f"),
                 "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train.h5" in out and "rebuilding it" in out and "val.h5 already written, kept" in out
    np.testing.assert_array_equal(load_split(open_store(store).path, "train").features, good)


def test_two_feature_jobs_at_once_share_the_work(tmp_path):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=12)
    out = tmp_path / "f"
    cmd = [sys.executable, "-m", "kws_hpc", "features", "--data", str(tree), "--vocab", "yes,no", "--out", str(out),
           "--workers", "1", "--augment", "3", "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    said = "\n".join(o[0] for o in outs)
    assert "waiting for it to finish" in said and ("completed by another job" in said or "nothing recomputed" in said)
    stores = [p for p in out.iterdir() if p.is_dir()]
    assert len(stores) == 1 and not list(stores[0].glob(".*"))
    assert open_store(stores[0]).signature == stores[0].name
