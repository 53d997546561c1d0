"""Training on the tiny tone store: learning, options, determinism, resume, run folders, evaluate."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kws_hpc.cli import main
from kws_hpc.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from kws_hpc.errors import KwsError
from kws_hpc.features.store import load_split
from kws_hpc.train import load_checkpoint, load_run, train

from conftest import TINY_WORDS, event_scalars

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
RESULT_KEYS = {"test_accuracy", "macro_f1", "per_class", "confusion", "labels", "params", "seconds_per_epoch",
               "best_epoch", "epochs_run", "best_val_acc", "inference_ms_per_clip", "device", "run_signature",
               "store_signature", "model", "train", "stopped", "threads", "backgrounds"}
CKPT_KEYS = {"model", "optimizer", "scheduler", "scaler", "epoch", "best_val_acc", "best_epoch",
             "epochs_since_best", "history", "rng", "labels", "feature_config", "model_config",
             "train_config", "store_signature", "run_signature", "format_version"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _lenient_kernels():
    """Deterministic runs switch strict kernels on globally; other tests should not inherit them."""
    yield
    torch.use_deterministic_algorithms(False)


def tiny_cfg(store, model: dict | None = None, **train) -> RunConfig:
    m = dict(hidden=16, layers=1, dropout=0.0) | (model or {})
    t = dict(epochs=2, batch_size=16, lr=1e-2, schedule="none", device="cpu", time_masks=0, freq_masks=0) | train
    return RunConfig(store=str(store), model=ModelConfig(**m), train=TrainConfig(**t))


def quiet(msg: str) -> None:
    pass


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def metrics_of(run: Path) -> list:
    return [{k: h[k] for k in ("epoch",) + METRICS} for h in json.loads((run / "history.json").read_text())]


@pytest.fixture(scope="module")
def gru_run(tiny_store, tmp_path_factory) -> Path:
    """A finished small GRU run shared by the read-only tests below."""
    cfg = tiny_cfg(tiny_store, epochs=3, time_masks=1, freq_masks=1, schedule="cosine")
    return train(cfg, out=tmp_path_factory.mktemp("runs"), log=quiet, progress=False)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_both_cells_learn_the_tiny_store(tiny_store, tmp_path, cell):
    cfg = tiny_cfg(tiny_store, {"cell": cell, "hidden": 32, "head": "mean"}, epochs=12, patience=12,
                   stream_aug=0.0)  # the tones over the store's white noise take the LSTM longer
    result = load_run(train(cfg, out=tmp_path, log=quiet, progress=False))
    assert result["history"][-1]["train_acc"] >= 0.7  # chance is 0.1
    assert result["test_accuracy"] >= 0.5  # two unseen speakers, 20 clips


@pytest.mark.parametrize("model", [
    {"head": "last", "bidirectional": True}, {"head": "mean"}, {"head": "attention", "bidirectional": True},
    {"cell": "lstm", "head": "attention", "conv_channels": 8, "layers": 2, "dropout": 0.2},
    {"cell": "lstm", "bidirectional": True, "head": "last", "layers": 2},
])
def test_every_model_option_trains_one_epoch(tiny_store, tmp_path, model):
    run = train(tiny_cfg(tiny_store, model, epochs=1), out=tmp_path, log=quiet, progress=False)
    result = load_run(run)
    assert result["epochs_run"] == 1 and result["model"] == result["config"]["model"]
    assert {k: result["model"][k] for k in model} == model


@pytest.mark.parametrize("train_opts", [
    {"schedule": "onecycle", "label_smoothing": 0.1},
    {"schedule": "plateau", "time_masks": 2, "freq_masks": 2},
])
def test_schedules_and_augmentation_train(tiny_store, tmp_path, train_opts):
    result = load_run(train(tiny_cfg(tiny_store, **train_opts), out=tmp_path, log=quiet, progress=False))
    assert len(result["history"]) == 2 and result["train"]["schedule"] == train_opts["schedule"]
    if train_opts["schedule"] == "onecycle":  # one-cycle ends far below its peak
        assert result["history"][-1]["lr"] < 1e-3  # peak 1e-2


def test_deterministic_runs_are_bit_identical(tiny_store, tmp_path):
    cfg = tiny_cfg(tiny_store, {"dropout": 0.3, "layers": 2}, time_masks=1, freq_masks=1, deterministic=True)
    a = train(cfg, out=tmp_path / "a", log=quiet, progress=False)
    b = train(cfg, out=tmp_path / "b", log=quiet, progress=False)
    assert a.name == b.name
    for name in ("best.pt", "last.pt"):
        assert_same_weights(a / name, b / name)
    assert metrics_of(a) == metrics_of(b)
    assert load_run(a)["test_accuracy"] == load_run(b)["test_accuracy"]


def test_resume_equals_uninterrupted(tiny_store, tmp_path):
    cfg = tiny_cfg(tiny_store, {"dropout": 0.3, "layers": 2}, epochs=4, schedule="cosine", time_masks=1,
                   freq_masks=1, deterministic=True, patience=10)
    whole = train(cfg, out=tmp_path / "whole", log=quiet, progress=False)

    def stop_after_two(epoch, entry):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "cut", on_epoch=stop_after_two, log=quiet, progress=False)
    cut = tmp_path / "cut" / whole.name
    assert (cut / "last.pt").is_file() and not (cut / "result.json").exists()
    assert len(json.loads((cut / "history.json").read_text())) == 2
    assert not list(cut.glob("*.tmp"))
    logs = []
    assert train(cfg, out=tmp_path / "cut", log=logs.append, progress=False) == cut
    assert any("resuming" in m and "epoch 2" in m for m in logs)
    for name in ("best.pt", "last.pt"):
        assert_same_weights(whole / name, cut / name)
    assert metrics_of(whole) == metrics_of(cut)
    assert load_run(whole)["test_accuracy"] == load_run(cut)["test_accuracy"]


def test_same_signature_again_is_done(gru_run, tiny_store):
    mtimes = {p.name: p.stat().st_mtime_ns for p in gru_run.iterdir()}
    cfg = tiny_cfg(tiny_store, epochs=3, time_masks=1, freq_masks=1, schedule="cosine")
    logs = []
    assert train(cfg, out=gru_run.parent, log=logs.append, progress=False) == gru_run
    assert logs == [f"run {gru_run.name} is done: {gru_run}"]
    assert {p.name: p.stat().st_mtime_ns for p in gru_run.iterdir()} == mtimes


def test_run_folder_files(gru_run):
    assert sorted(p.name for p in gru_run.iterdir()) == sorted(
        ["config.json", "config.toml", "history.json", "metrics.csv", "best.pt", "last.pt", "result.json",
         "predictions.npz"])
    history = json.loads((gru_run / "history.json").read_text())
    rows = list(csv.DictReader((gru_run / "metrics.csv").open()))
    assert [(int(r["epoch"]), float(r["val_acc"])) for r in rows] == [(h["epoch"], h["val_acc"]) for h in history]
    result = json.loads((gru_run / "result.json").read_text())
    assert set(result) == RESULT_KEYS
    config = json.loads((gru_run / "config.json").read_text())
    assert set(config) == {"store", "store_signature", "run_signature", "model", "train", "labels",
                           "feature_config", "backgrounds"}
    assert config["labels"] == result["labels"] == TINY_WORDS[:10]
    assert result["run_signature"] == gru_run.name and result["stopped"] == "max_epochs"
    assert result["params"] > 0 and result["inference_ms_per_clip"] > 0 and result["seconds_per_epoch"] > 0
    pred = np.load(gru_run / "predictions.npz")
    n, c = len(pred["y_true"]), len(result["labels"])
    assert pred["probs"].shape == (n, c) and pred["embeddings"].shape == (n, 16) and len(pred["paths"]) == n
    assert np.allclose(pred["probs"].sum(1), 1, atol=1e-5)
    assert result["test_accuracy"] == float(np.mean(pred["y_true"] == pred["y_pred"]))
    assert np.array_equal(np.asarray(result["confusion"]).sum(1), np.bincount(pred["y_true"], minlength=c))
    assert sum(v["support"] for v in result["per_class"].values()) == n
    ckpt = torch.load(gru_run / "best.pt", weights_only=True)
    assert CKPT_KEYS <= set(ckpt) and ckpt["epoch"] == ckpt["best_epoch"] == result["best_epoch"]
    assert {"feat_mean", "feat_std"} <= set(ckpt["model"])
    assert [h["epoch"] for h in json.loads((gru_run / "history.json").read_text())] == [1, 2, 3]


def test_evaluate_cli_prints_result_metrics(gru_run, tiny_store, capsys):
    assert main(["evaluate", str(gru_run), "--store", str(tiny_store)]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = load_run(gru_run)
    assert printed["accuracy"] == result["test_accuracy"] and printed["split"] == "test"
    for key in ("macro_f1", "per_class", "confusion", "labels"):
        assert printed[key] == result[key], key


@pytest.fixture(scope="module")
def other_stores(tiny_tree, tmp_path_factory) -> dict:
    from kws_hpc.features.build import build_store

    out = tmp_path_factory.mktemp("other_features")
    labels = build_store(tiny_tree, DataConfig(vocab=",".join(TINY_WORDS[2:])), out=out, workers=0,
                         progress=False, log=quiet)
    mels = build_store(tiny_tree, DataConfig(vocab=",".join(TINY_WORDS[:10])), FeatureConfig(n_mels=32),
                       out=out, workers=0, progress=False, log=quiet)
    return {"labels": labels, "n_mels": mels}


@pytest.mark.parametrize("kind, named", [("labels", "labels"), ("n_mels", "n_mels: 40 vs 32")])
def test_evaluate_refuses_an_incompatible_store(gru_run, other_stores, capsys, kind, named):
    assert main(["evaluate", str(gru_run / "best.pt"), "--store", str(other_stores[kind])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err


def test_load_checkpoint_rebuilds_and_refuses_unlabelled(gru_run, tmp_path):
    model, ckpt = load_checkpoint(gru_run)
    assert ckpt["labels"] == TINY_WORDS[:10] and not model.training
    assert torch.equal(model.feat_std, weights(gru_run / "best.pt")["feat_std"])
    for key in ("labels", "feature_config"):
        bad = dict(ckpt)
        del bad[key]
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(KwsError, match=key):
            load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(KwsError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(KwsError, match="has not finished"):
        load_run(tmp_path)


def test_stream_windows_are_on_by_default_and_use_the_stores_extra_classes(tiny_tree, tmp_path):
    from kws_hpc.config import DataConfig
    from kws_hpc.features.build import build_store
    from kws_hpc.features.store import open_store
    from kws_hpc.train.loop import _Trainer

    store = build_store(tiny_tree, DataConfig(vocab="yes,no,up", extras=True), out=tmp_path / "f", workers=0,
                        progress=False, log=quiet)
    info = open_store(store)
    data = load_split(store, "train")
    x, y = torch.from_numpy(data.features).float(), torch.from_numpy(data.labels).long()
    cfg = tiny_cfg(store, partial_words=1.0, noise_aug=0.0)  # the stream windows alone
    assert cfg.train.stream_aug == TrainConfig().stream_aug > 0
    tr = _Trainer(cfg, info, torch.device("cpu"), False, len(y))
    torch.manual_seed(0)
    xb, yb = tr.augment(x[:64], y[:64], x, y, None)
    silence, unknown = info.labels.index("_silence_"), info.labels.index("_unknown_")
    assert len(tr.pool) == int((y == silence).sum()) > 0  # without stored noise: the _silence_ clips
    changed = (xb != x[:64]).flatten(1).any(dim=1)
    assert 0 < changed.sum() < 64 and (yb[changed & (y[:64] != silence)] == unknown).all()
    assert (yb[~changed] == y[:64][~changed]).all()


def test_stream_windows_change_what_is_learned(tiny_store, tmp_path):
    runs = [load_run(train(tiny_cfg(tiny_store, deterministic=True, stream_aug=share),
                           out=tmp_path / str(share), log=quiet, progress=False)) for share in (0.0, 0.5)]
    assert runs[0]["train"]["stream_aug"] == 0.0 and runs[1]["train"]["stream_aug"] == 0.5
    assert runs[0]["history"][-1]["train_loss"] != runs[1]["history"][-1]["train_loss"]


def test_bad_options_are_one_line_errors(tiny_store, tmp_path, capsys):
    with pytest.raises(KwsError, match="dropout"):
        train(tiny_cfg(tiny_store, {"dropout": 1.5}), out=tmp_path, log=quiet)
    with pytest.raises(KwsError, match="stream-aug"):
        train(tiny_cfg(tiny_store, stream_aug=1.5), out=tmp_path, log=quiet)
    with pytest.raises(KwsError, match="does not exist"):
        train(tiny_cfg(tmp_path / "nowhere"), out=tmp_path, log=quiet)
    for argv in (["--device", "tpu"], ["--resume"], ["--partial-words", "-1"], ["--warp-aug", "1.5"]):
        assert main(["train", "--store", str(tiny_store), "--out", str(tmp_path), *argv]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_trains_and_prints_the_run_folder_last(tiny_store, tmp_path, capsys):
    argv = ["train", "--store", str(tiny_store), "--model", "lstm", "--hidden", "8", "--layers", "1",
            "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path), "--device", "cpu", "--no-progress",
            "--deterministic"] + (["--amp"] if not torch.cuda.is_available() else [])
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run = Path(out[-1])
    assert run.parent == tmp_path and (run / "result.json").is_file()
    assert any(line.startswith("epoch   1/1") for line in out)
    assert torch.cuda.is_available() or any("warning: --amp" in line for line in out)
    assert json.loads((run / "config.json").read_text())["model"]["cell"] == "lstm"
    assert main(argv + ["--resume"]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-1] == str(run) and "is done" in again[0]
    board = tmp_path / "tensorboard" / "train" / run.name  # on by default: the package is installed
    assert any(line == f"tensorboard: {board} (watch with: tensorboard --logdir {tmp_path})" for line in out)
    scalars = event_scalars(board)
    history = json.loads((run / "history.json").read_text())
    assert scalars["accuracy/val"] == [(h["epoch"], pytest.approx(h["val_acc"])) for h in history]
    assert {"loss/train", "loss/val", "accuracy/train", "lr", "seconds_per_epoch"} <= set(scalars)


def test_no_tensorboard_writes_the_csv_alone(tiny_store, tmp_path, capsys):
    argv = ["train", "--store", str(tiny_store), "--hidden", "8", "--layers", "1", "--conv-channels", "0",
            "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path), "--device", "cpu", "--no-progress",
            "--no-tensorboard"]
    assert main(argv) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run / "metrics.csv").read_text().splitlines()[0] == "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"
    assert not (tmp_path / "tensorboard").exists()


def test_a_second_identical_training_waits_for_the_first_and_finds_it_done(tiny_store, tmp_path):
    cmd = [sys.executable, "-u", "-m", "kws_hpc", "train", "--store", str(tiny_store), "--out", str(tmp_path),
           "--hidden", "64", "--layers", "2", "--head", "last", "--epochs", "15", "--patience", "15",
           "--device", "cpu", "--no-progress", "--threads", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    while not any(line.startswith("epoch ") for line in lines):  # the first one holds the run's lock
        lines.append(first.stdout.readline())
        assert lines[-1] or first.poll() is None, lines
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    rest, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-500:]
    said = "".join(lines) + rest
    assert said.count("epoch   1/15") == 1 and "epoch   1/" not in second.stdout  # trained once
    assert "waiting for it to finish" in second.stdout and " is done: " in second.stdout
    run = second.stdout.strip().splitlines()[-1]
    assert run == said.strip().splitlines()[-1] and load_run(run)["epochs_run"] == 15


def test_noise_augmentation_uses_the_stores_noise_is_deterministic_and_off_at_evaluation(tiny_store, tmp_path):
    from kws_hpc.features.store import load_noise
    from kws_hpc.train.evaluate import evaluate_checkpoint

    noise = load_noise(tiny_store)
    assert noise is not None and noise.shape[1:] == (100, 40) and len(noise) == 31  # 16 s of noise, 0.5-s hop
    runs = [train(tiny_cfg(tiny_store, deterministic=True, noise_aug=1.0, stream_aug=0.0),
                  out=tmp_path / name, log=quiet, progress=False) for name in ("a", "b")]
    a, b = (load_run(r) for r in runs)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert all(torch.equal(weights(runs[0] / "best.pt")[k], v) for k, v in weights(runs[1] / "best.pt").items())
    plain = load_run(train(tiny_cfg(tiny_store, deterministic=True, stream_aug=0.0, noise_aug=0.0),
                           out=tmp_path / "c", log=quiet, progress=False))
    assert plain["history"][0]["train_loss"] != a["history"][0]["train_loss"]  # the noise was there in training
    # and not at evaluation: the run's own test score equals a plain evaluation of its best checkpoint
    assert evaluate_checkpoint(runs[0], tiny_store)["accuracy"] == a["test_accuracy"]


def test_background_noise_is_on_by_default_and_only_adds_power(tiny_store):
    from kws_hpc.features.store import load_noise, open_store
    from kws_hpc.train.loop import _Trainer

    info = open_store(tiny_store)
    data = load_split(tiny_store, "train")
    x, y = torch.from_numpy(data.features).float(), torch.from_numpy(data.labels).long()
    cfg = tiny_cfg(tiny_store, stream_aug=0.0)  # the default share and SNR range of the noise
    assert cfg.train.noise_aug == TrainConfig().noise_aug > 0
    tr = _Trainer(cfg, info, torch.device("cpu"), False, len(y))
    torch.manual_seed(0)
    xb, yb = tr.augment(x[:64], y[:64], x, y, torch.from_numpy(load_noise(tiny_store)).float())
    changed = (xb != x[:64]).flatten(1).any(dim=1)
    assert 0 < changed.sum() < len(xb) and torch.equal(yb, y[:64])  # a share of the batch, labels kept
    assert (xb[changed] >= x[:64][changed] - 1e-5).all()  # a sum of sounds: no log-mel bin loses power


def test_warp_augmentation_is_deterministic_off_at_evaluation_and_names_its_own_run(tiny_store, tmp_path):
    from kws_hpc.train.evaluate import evaluate_checkpoint

    runs = [train(tiny_cfg(tiny_store, deterministic=True, warp_aug=1.0, stream_aug=0.0),
                  out=tmp_path / name, log=quiet, progress=False) for name in ("a", "b")]
    a, b = (load_run(r) for r in runs)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert all(torch.equal(weights(runs[0] / "best.pt")[k], v) for k, v in weights(runs[1] / "best.pt").items())
    plain_run = train(tiny_cfg(tiny_store, deterministic=True, stream_aug=0.0), out=tmp_path / "c", log=quiet,
                      progress=False)
    plain = load_run(plain_run)
    assert plain_run.name != runs[0].name and a["train"]["warp_aug"] == 1.0
    assert plain["history"][0]["train_loss"] != a["history"][0]["train_loss"]  # the warp was there in training
    assert evaluate_checkpoint(runs[0], tiny_store)["accuracy"] == a["test_accuracy"]  # and not at evaluation
