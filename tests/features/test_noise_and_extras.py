"""Data that loses something says so: unreadable background noise, --extras without other words, and
training that asks for noise a store does not have."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from kws_hpc.cli import main
from kws_hpc.config import DataConfig
from kws_hpc.features.build import build_store
from kws_hpc.features.store import open_store

from conftest import make_tree

WORDS = ["yes", "no", "up"]


def _corpus(root: Path) -> Path:
    """A keyword-only corpus whose background noise lives outside it, behind a link."""
    corpus = make_tree(root / "corpus", words=WORDS, speakers=16)
    os.rename(corpus / "_background_noise_", root / "noise")
    return corpus


@pytest.mark.parametrize("kind", ["archive-absolute", "archive-relative", "folder-dangling"])
def test_noise_that_cannot_be_read_is_named_in_one_line_and_in_summary_json(tmp_path, capsys, kind):
    corpus = _corpus(tmp_path)
    link = {"archive-absolute": str(tmp_path / "noise"), "archive-relative": "../noise",
            "folder-dangling": "gone"}[kind]
    (corpus / "_background_noise_").symlink_to(link)
    data = corpus
    if kind.startswith("archive"):
        data = tmp_path / "corpus.tar.gz"
        with tarfile.open(data, "w:gz") as tar:
            tar.add(corpus, arcname="corpus")
    assert main(["features", "--data", str(data), "--vocab", ",".join(WORDS), "--out", str(tmp_path / "f"),
                 "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "background noise cannot be read" in line]
    assert len(warnings) == 1 and f"_background_noise_ is a link to {link}" in warnings[0]
    assert "--noise-aug has nothing to mix in" in warnings[0]
    store = Path(out.strip().splitlines()[-1])
    noise = json.loads((store / "summary.json").read_text())["noise"]
    assert noise["files"] == [] and [u["path"] for u in noise["unreadable"]] == ["_background_noise_"]
    assert link in noise["unreadable"][0]["reason"]


def test_readable_noise_is_listed_and_says_nothing(tmp_path, capsys):
    corpus = make_tree(tmp_path / "corpus", words=WORDS, speakers=16)
    assert main(["features", "--data", str(corpus), "--vocab", ",".join(WORDS), "--out", str(tmp_path / "f"),
                 "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "cannot be read" not in out
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["noise"] == {"files": ["_background_noise_/white.wav"], "unreadable": []}


def test_extras_on_a_keyword_only_folder_adds_silence_alone(tmp_path, capsys):
    corpus = make_tree(tmp_path / "corpus", words=WORDS, speakers=16)
    assert main(["features", "--data", str(corpus), "--vocab", ",".join(WORDS), "--extras",
                 "--out", str(tmp_path / "f"), "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "has no word folders besides the keywords, so only _silence_ is added" in out
    info = open_store(out.strip().splitlines()[-1])
    assert info.labels == WORDS + ["_silence_"]
    assert all(info.summary["counts"][s]["actual"]["_silence_"] > 0 for s in ("train", "val", "test"))


def test_extras_without_any_noise_is_one_line_naming_the_noise(tmp_path, capsys):
    corpus = make_tree(tmp_path / "corpus", words=WORDS, speakers=16, noise=False)
    assert main(["features", "--data", str(corpus), "--vocab", ",".join(WORDS), "--extras",
                 "--out", str(tmp_path / "f"), "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cut from the background noise (_background_noise_/*.wav)" in err[0]


def test_noise_aug_on_a_store_without_noise_warns_and_records_it(tmp_path, capsys):
    corpus = make_tree(tmp_path / "corpus", words=WORDS, speakers=16, noise=False)
    store = build_store(corpus, DataConfig(vocab=",".join(WORDS)), out=tmp_path / "f", workers=0, progress=False,
                        log=lambda m: None)
    args = ["train", "--store", str(store), "--out", str(tmp_path / "runs"), "--epochs", "1", "--hidden", "8",
            "--layers", "1", "--conv-channels", "0", "--batch-size", "16", "--device", "cpu", "--threads", "1",
            "--no-progress"]
    assert main(args + ["--noise-aug", "0.3"]) == 0
    out = capsys.readouterr().out
    warned = [line for line in out.splitlines() if "has no background noise for --noise-aug 0.3" in line]
    assert len(warned) == 1 and "no clip gets noise" in warned[0]
    run = Path(out.strip().splitlines()[-1])
    assert json.loads((run / "config.json").read_text())["backgrounds"] == "none"
    assert json.loads((run / "result.json").read_text())["backgrounds"] == "none"
    assert main(args + ["--noise-aug", "0"]) == 0  # asked for none: nothing to say
    assert "has no background noise" not in capsys.readouterr().out
