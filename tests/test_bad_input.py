"""Every command refuses bad input the same way: exit code 2, one line on stderr naming what is wrong,
no traceback, and no half-written file left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_hpc.cli import main

from conftest import TINY_WORDS, make_tree

TRAIN = ["--hidden", "8", "--layers", "1", "--head", "last", "--no-clip-norm", "--epochs", "1", "--device", "cpu",
         "--no-progress"]


@pytest.fixture(scope="module")
def world(tiny_tree, tiny_store, tmp_path_factory) -> dict:
    """A store, a finished run and an exported model, plus broken copies of each."""
    root = tmp_path_factory.mktemp("bad-input")
    quiet = ["--no-progress"]
    runs = root / "runs"
    assert main(["train", "--store", str(tiny_store), "--out", str(runs), *TRAIN]) == 0
    run = next(p for p in runs.iterdir() if (p / "config.json").is_file())
    model = root / "model.onnx"
    assert main(["export", str(run), "--out", str(model), "--calibrate-minutes", "0"]) == 0
    other = root / "other"  # a store of other labels
    assert main(["features", "--data", str(tiny_tree), "--vocab", ",".join(TINY_WORDS[:3]), "--out", str(other),
                 "--workers", "0", *quiet]) == 0
    w = {"tree": tiny_tree, "store": tiny_store, "run": run, "runs": runs, "model": model,
         "other": next(p for p in other.iterdir() if p.is_dir()), "root": root}
    for name, damage in (("garbage", lambda f: f.write_bytes(b"\x89HDF\r\n" + b"x" * 500)),
                         ("truncated", lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]))):
        copy = root / f"store-{name}"
        shutil.copytree(tiny_store, copy)
        damage(copy / "train.h5")
        w[f"store_{name}"] = copy
    cut = root / "cut-runs" / run.name  # the run again, unfinished, with last.pt cut short
    shutil.copytree(run, cut)
    (cut / "result.json").unlink()
    (cut / "last.pt").write_bytes((cut / "last.pt").read_bytes()[:1000])
    w["cut_runs"] = cut.parent
    few = make_tree(root / "few", words=TINY_WORDS[:3], speakers=3)  # hash split leaves splits empty
    w["few"] = few
    (root / "plain.txt").write_text("not a folder")
    (root / "empty").mkdir()
    (root / "nothing").mkdir()
    (root / "bin.journal").write_bytes(bytes(range(256)) * 4)
    (root / "text.journal").write_text("hello\nworld\n")
    import optuna  # a real journal with a damaged record in the middle

    good = root / "good.journal"
    optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(good))))
    (root / "mid.journal").write_text(good.read_text() + "garbage\n" + good.read_text())
    (root / "bad.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    (root / "ckpt.pt").write_bytes(b"not a checkpoint")
    sf.write(root / "zero.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    sf.write(root / "short.wav", np.zeros(100, np.float32), 16000, subtype="PCM_16")
    sf.write(root / "long.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    (root / "cut.wav").write_bytes((root / "long.wav").read_bytes()[:5000])
    (root / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    return w


# (command line with {placeholders}, what the one line must say)
CASES = [
    # features
    ("features --data {root}/missing --out {tmp}/f", "does not exist"),
    ("features --data {root}/plain.txt --out {tmp}/f", "neither a folder nor a .tar.gz"),
    ("features --data {root}/empty --out {tmp}/f", "no word folder for 'yes'"),
    ("features --data {tree} --vocab YES,n_o --out {tmp}/f", "no word folder for 'YES', 'n_o'"),
    ("features --data {tree} --val-percent 150 --out {tmp}/f", "--val-percent 150"),
    ("features --data {tree} --quota -1 5 5 --out {tmp}/f", "each cap must be >= 1"),
    ("features --data {tree} --augment -1 --out {tmp}/f", "--augment -1"),
    ("features --data {tree} --n-mels 0 --out {tmp}/f", "--n-mels 0"),
    ("features --data {tree} --vocab yes,no --out /proc/kws/f --workers 0", "cannot create the store folder"),
    ("features --data {tree} --vocab yes,no --out {root}/plain.txt --workers 0", "cannot create the store folder"),
    ("features --data {tree} --workers -1 --out {tmp}/f", "--workers -1"),
    ("features --data {few} --vocab yes,no,up --out {tmp}/f --workers 0 --no-progress", "no clip of "),
    ("features --data {root}/bad.tar.gz --out {tmp}/f", "cannot read archive"),
    ("features --data {tree} --vocab yes --split official --out {tmp}/f", "validation_list.txt"),
    ("features --data {tree} --executor local --profile nope --out {tmp}/f", "no job profile 'nope'"),
    ("features --data {tree} --dtype float8 --out {tmp}/f", "invalid choice: 'float8'"),
    # train
    ("train --store {root}/missing --out {tmp}/r", "does not exist"),
    ("train --store {root}/empty --out {tmp}/r", "is unfinished"),
    ("train --store {store_garbage} --out {tmp}/r", "train.h5 is unreadable or truncated"),
    ("train --store {store_truncated} --out {tmp}/r", "train.h5 is unreadable or truncated"),
    ("train --store {store} --epochs 0 --out {tmp}/r", "epochs 0 must be >= 1"),
    ("train --store {store} --lr -1 --out {tmp}/r", "lr -1.0 must be > 0"),
    ("train --store {store} --dropout 1.5 --out {tmp}/r", "dropout 1.5"),
    ("train --store {store} --threads 0 --out {tmp}/r", "--threads 0"),
    ("train --store {store} --rnn-stride 0 --out {tmp}/r", "rnn-stride 0: use 1..4"),
    ("train --store {store} --device cuda --out {tmp}/r", "CUDA is not available"),
    ("train --store {store} --out {root}/plain.txt " + " ".join(TRAIN), "cannot create the runs folder"),
    ("train --store {store} --out {cut_runs} " + " ".join(TRAIN), "last.pt is unreadable"),
    ("train --store {store} --resume --out {tmp}/r", "nothing to resume"),
    ("train --store {store} --model rnn", "invalid choice: 'rnn'"),
    ("train --store {store} --hard-negatives {root}/missing.npz --out {tmp}/r", "hard-negatives"),
    ("train --store {store} --hard-negatives {root}/plain.txt --out {tmp}/r " + " ".join(TRAIN), "has none"),
    # mine
    ("mine {root}/missing --out {tmp}/h.npz", "not a finished run"),
    ("mine {run} --out {tmp}/h.npz", "no _unknown_ class"),
    ("mine {run} --out {tmp}/h.npz --floor 1.5", "--floor 1.5"),
    ("mine {run} --out {tmp}", "name a file *.npz"),
    ("mine {run} --out {root}/plain.txt/h.npz", "cannot make its folder"),
    # evaluate
    ("evaluate {root}/missing --store {store}", "does not exist"),
    ("evaluate {root}/ckpt.pt --store {store}", "not a readable checkpoint"),
    ("evaluate {run} --store {other}", "was trained on labels"),
    ("evaluate {run} --store {store_garbage}", "train.h5 is unreadable"),
    # sweep
    ("sweep ls --out {root}/nothing", "no storage at"),
    ("sweep ls --storage {root}/bin.journal", "is not an Optuna journal"),
    ("sweep show x --storage {root}/text.journal", "is not an Optuna journal"),
    ("sweep ls --storage {root}/mid.journal", "is not a readable Optuna journal"),
    ("sweep ls --storage sqlite:///{tmp}/new/x.db", "does not exist"),
    ("sweep run --store {store} --model gru --storage sqlite:////proc/x/y.db --executor debug", "cannot open storage"),
    ("sweep run --store {store} --model gru --trials 0", "--trials and --workers must be at least 1"),
    ("sweep run --store {store} --model gru --space nope", "no search space 'nope'"),
    ("sweep run --store {store} --model gru --heartbeat 0", "--heartbeat must be >= 1"),
    ("sweep run --store {store_garbage} --model gru --out {tmp}/s", "train.h5 is unreadable"),
    # report
    ("report --runs {root}/missing", "does not exist"),
    ("report --runs {root}/nothing", "no run folders"),
    ("report --runs {runs} --storage {root}/bin.journal --out {tmp}/rep", "is not an Optuna journal"),
    ("report --runs {runs} --storage {root}/mid.journal --out {tmp}/rep", "is not a readable Optuna journal"),
    # export
    ("export {root}/missing --out {tmp}/m.onnx", "does not exist"),
    ("export {run} --out {tmp}/m.txt", "name it *.onnx"),
    ("export --best {root}/nothing --out {tmp}/m.onnx", "no finished run"),
    ("export {run} --out {tmp}/m.onnx --hold -1", "--hold -1.0"),
    ("export --out {tmp}/m.onnx", "give either a run folder"),
    # live
    ("live --wav {root}/long.wav", "--model FILE.onnx is required"),
    ("live --model {root}/missing.onnx --wav {root}/long.wav", "does not exist"),
    ("live --model {model} --wav {root}/missing.wav", "does not exist"),
    ("live --model {model} --wav {root}/zero.wav", "holds 0 samples"),
    ("live --model {model} --wav {root}/short.wav", "holds 100 samples"),
    ("live --model {model} --wav {root}/cut.wav", "truncated WAV"),
    ("live --model {model} --wav {root}/junk.wav", "WAV"),
    ("live --model {model} --truth {root}/t.tsv", "go with --wav FILE"),
    ("live --model {model} --wav {root}/long.wav --sweep", "--sweep needs --truth"),
    ("live --model {model} --wav {root}/long.wav --threshold 2", "--threshold 2.0"),
    ("live --model {model} --wav {root}/long.wav --hop 0.105", "whole number"),
    ("live --model {model} --wav {root}/long.wav --threads 0", "--threads 0"),
    # bench
    ("bench train --store {store} --data {root}/empty --out {tmp}/b", "training clips are not under"),
    ("bench infer --model {root}/missing.onnx --out {tmp}/b", "does not exist"),
    ("bench features --data {tree} --vocab nope --out {tmp}/b", "no word folder for 'nope'"),
    ("bench features --data {tree} --rounds 0 --out {tmp}/b", "--rounds 0 must be >= 1"),
    ("bench sweep --store {store} --space nope --out {tmp}/b", "no search space 'nope'"),
    ("bench sweep --store {store} --out {root}/long.wav/b", "choose another --out"),
    # data
    ("data synth {tmp}/c --speakers 0", "speakers >= 1"),
    ("data synth {tmp}/c --takes 0", "takes >= 1"),
    ("data synth {tmp}/c --words Yes,no", "lower-case"),
    ("data stream --corpus {tree} --out {tmp}/s.mp3", "must end in .wav"),
    ("data stream --corpus {tree} --out {tmp}/s.wav --keyword-share 2", "--keyword-share and --noise-share"),
    ("data stream --corpus {root}/missing --out {tmp}/s.wav", "does not exist"),
    ("data stream --corpus {tree} --out {tmp}/s.wav --keyword-share 0 --minutes 0.005", "holds no word or noise"),
    ("data download --version v9", "invalid choice: 'v9'"),
]


@pytest.mark.parametrize("line,says", CASES, ids=[f"{i:02d}-{c[0].split()[0]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_and_exit_2(world, tmp_path, capsys, line, says):
    argv = line.format(tmp=tmp_path, **{k: str(v) for k, v in world.items()}).split()
    before = {p for p in Path(world["root"]).rglob("*")}
    code = main(argv)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert says in lines[0], lines[0]
    left = [p for p in list(tmp_path.rglob("*")) + list(Path(world["root"]).rglob("*"))
            if p.name.endswith((".tmp", ".partial"))
            or (p.suffix == ".lock" and p not in before and not p.with_suffix("").exists())]
    assert not left, left
    if "new/x.db" in line:
        assert not (tmp_path / "new").exists()  # a read-only command creates nothing
    if line.startswith("bench"):
        assert not (tmp_path / "b").exists()  # a failed benchmark leaves no --out folder it made


def test_the_table_covers_every_command():
    commands = {c[0].split()[0] for c in CASES}
    assert {"features", "train", "evaluate", "sweep", "report", "export", "live", "data", "bench", "mine"} <= commands
    assert len(CASES) >= 40
