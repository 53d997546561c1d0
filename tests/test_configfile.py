"""Config files: --config for each stage, flags over the file, --print-config read back, bad keys one line,
the file every run folder and store keeps, and a new user's journey from one file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from kws_hpc.cli import main

from conftest import TINY_WORDS, make_tree

ROOT = Path(__file__).resolve().parents[1]


def printed(capsys, *argv) -> str:
    assert main([*argv, "--print-config"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command, table, flags", [
    (["features"], "features", ["--data", "clips", "--vocab", "yes,no", "--quota", "5", "6", "7", "--no-extras"]),
    (["train"], "train", ["--store", "s", "--model", "lstm", "--noise-snr-db", "3", "9", "--no-clip-norm"]),
    (["sweep", "run"], "sweep", ["--store", "s", "--model", "gru", "lstm", "--trials", "3", "--threads", "1"]),
    (["export"], "export", ["runs/a", "runs/b", "--out", "m.onnx", "--smooth", "0.2"]),
    (["report"], "report", ["--runs", "r", "--det-minutes", "1", "2"]),
    (["live"], "live", ["--model", "m.onnx", "--threshold", "0.7", "--no-vad"]),
])
def test_print_config_is_read_back_by_config(tmp_path, capsys, command, table, flags):
    first = printed(capsys, *command, *flags)
    values = tomllib.loads(first)[table]
    path = tmp_path / "a.toml"
    path.write_text(first)
    assert printed(capsys, *command, "--config", str(path)) == first  # the round trip
    again = tomllib.loads(printed(capsys, *command, "--config", str(path), "--print-config"))[table]
    assert again == values
    key, value = {"features": ("vocab", "up"), "train": ("batch_size", 16), "sweep": ("trials", 9),
                  "export": ("out", "n.onnx"), "report": ("runs", "q"), "live": ("threshold", 0.25)}[table]
    override = ["--" + key.replace("_", "-"), str(value)]
    assert tomllib.loads(printed(capsys, *command, "--config", str(path), *override))[table][key] == value


def test_print_config_shows_values_as_the_flags_give_them(capsys):
    train = tomllib.loads(printed(capsys, "train", "--store", "s", "--model", "lstm", "--no-tensorboard"))["train"]
    assert (train["model"], train["store"], train["tensorboard"], train["noise_snr_db"]) == ("lstm", "s", False, [5.0, 20.0])
    features = tomllib.loads(printed(capsys, "features", "--data", "d", "--quota", "5", "6", "7"))["features"]
    assert features["quota"] == [5, 6, 7] and "unknown_percent" not in features  # None: the default


@pytest.mark.parametrize("text, says", [
    ("[train]\nbatchsize = 32\n", "[train] has no key 'batchsize' (did you mean batch_size?)"),
    ("[train]\nbatch_size = \"big\"\n", "[train] batch_size = \"big\": use a whole number"),
    ("[train]\nmodel = \"cnn\"\n", "[train] model = \"cnn\": use one of gru, lstm"),
    ("[train]\nnoise_snr_db = [1.0]\n", "noise_snr_db = [1.0]: use a list of 2 values"),
    ("[train]\ndeterministic = 1\n", "deterministic = 1: use true or false"),
    ("[trian]\nepochs = 3\n", "unknown table [trian]; the tables are [features], [train]"),
    ("epochs = 3\n", "key 'epochs' outside a table"),
    ("[train\n", "is not valid TOML"),
])
def test_a_bad_key_or_value_is_one_line_exit_2(tmp_path, capsys, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--store", "s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and str(path) in err[0], err
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_run_folder_and_a_store_keep_the_file_that_makes_them_again(tmp_path, capsys):
    corpus = make_tree(tmp_path / "clips", words=TINY_WORDS[:4], speakers=12)
    assert main(["features", "--data", str(corpus), "--vocab", ",".join(TINY_WORDS[:3]), "--out",
                 str(tmp_path / "f"), "--workers", "0", "--no-progress"]) == 0
    store = Path(capsys.readouterr().out.strip().splitlines()[-1])
    kept = tomllib.loads((store / "config.toml").read_text())["features"]
    assert kept["vocab"] == ",".join(TINY_WORDS[:3]) and kept["data"] == str(corpus)
    assert main(["features", "--config", str(store / "config.toml")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(store) and "nothing recomputed" in out[0]

    assert main(["train", "--store", str(store), "--out", str(tmp_path / "runs"), "--hidden", "8", "--layers", "1",
                 "--conv-channels", "0", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--threads", "1",
                 "--no-progress", "--no-tensorboard"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    recipe = tomllib.loads((run / "config.toml").read_text())["train"]
    config = json.loads((run / "config.json").read_text())
    assert recipe["store"] == str(store) and recipe["out"] == str(tmp_path / "runs")
    assert recipe["model"] == config["model"]["cell"] and recipe["epochs"] == config["train"]["epochs"] == 1
    assert main(["train", "--config", str(run / "config.toml"), "--no-progress"]) == 0  # the same run, done
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(run) and "is done" in out[0]


def test_a_new_users_journey_runs_from_one_config_file(tmp_path, capsys, monkeypatch):
    """folder of clips -> features -> sweep -> report -> export -> live, each `--config my_words.toml`."""
    monkeypatch.chdir(tmp_path)
    doc = tomllib.loads((ROOT / "examples" / "my_words.toml").read_text())
    words = doc["features"]["vocab"].split(",")
    make_tree(tmp_path / doc["features"]["data"], words=words + ["house", "tree"], speakers=16)
    small = {"features": {"workers": 0, "no_progress": True},  # what a laptop-sized test changes, nothing else
             "sweep": {"trials": 2, "workers": 1, "space": "tiny", "epochs": 1, "executor": "debug", "device": "cpu",
                       "threads": 1},
             "report": {"det_minutes": [0.0, 0.0]}, "export": {"calibrate_minutes": 0.0}, "live": {"quiet": True}}
    from kws_hpc.configfile import dumps

    config = tmp_path / "my_words.toml"
    config.write_text(dumps({t: {**doc[t], **small.get(t, {})} for t in doc}))
    assert main(["features", "--config", str(config)]) == 0
    store = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert store.parent == tmp_path / doc["features"]["out"]
    assert main(["sweep", "run", "--config", str(config)]) == 0
    capsys.readouterr()
    runs = tmp_path / doc["sweep"]["out"]
    for model in doc["sweep"]["model"]:
        assert (runs / "tensorboard" / f"kws-{model}-{store.name}").is_dir()  # the store the [features] table made
    assert main(["report", "--config", str(config)]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == runs / "report" / "index.html"
    assert main(["export", "--config", str(config)]) == 0
    model = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert model == tmp_path / doc["export"]["out"] and model.is_file()
    assert main(["data", "stream", "--corpus", str(tmp_path / doc["features"]["data"]), "--out", "stream.wav",
                 "--minutes", "0.2", "--keywords", ",".join(words)]) == 0
    capsys.readouterr()
    assert main(["live", "--config", str(config), "--wav", "stream.wav", "--truth", "stream.tsv",
                 "--json", "live.json"]) == 0
    assert json.loads((tmp_path / "live.json").read_text())["detections"] is not None
