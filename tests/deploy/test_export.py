"""Export: the self-describing file, parity checked before writing, refusals, --best, averaged runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kws_hpc.cli import main
from kws_hpc.config import ModelConfig
from kws_hpc.errors import KwsError
from kws_hpc.deploy.onnx_model import META_KEY, load_exported, with_metadata
from kws_hpc.evaluate.scorer import to_onnx
from kws_hpc.train.models import KwsRNN


def _model(seed=0, **kw) -> KwsRNN:
    torch.manual_seed(seed)
    m = KwsRNN(ModelConfig(**{"hidden": 12, "layers": 2, "clip_norm": False, "conv_channels": 0, **kw}), 40, 6).eval()
    m.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    return m


def test_export_writes_a_self_describing_file(exported, tiny_run, tiny_store):
    model = load_exported(exported)
    meta = model.meta
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    assert model.labels == ckpt["labels"] and meta["feature_config"] == ckpt["feature_config"]
    assert meta["model_config"] == ckpt["model_config"]
    assert meta["parity"]["max_abs_diff"] <= 1e-4 and meta["parity"]["stream_max_abs_diff"] <= 1e-4
    assert "test clips of store" in meta["parity"]["inputs"]
    assert meta["calibration"]["method"] == "validation_streams"
    assert 0.05 <= model.detector.threshold <= 0.999 and model.detector.refractory_s > 0
    assert meta["streaming"]["state_size"] == 16 and model.scorer.can_stream
    assert len(meta["normalization"]["mean"]) == model.feature_config.n_mels
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]  # no temp file left


def test_exported_file_gives_checkpoint_outputs(exported, tiny_run, tiny_store):
    from kws_hpc.features.store import load_split
    from kws_hpc.train import load_checkpoint

    model, _ = load_checkpoint(tiny_run)
    x = load_split(tiny_store, "test").features[:20]
    ref = model(torch.from_numpy(x)).detach().numpy()
    assert np.abs(load_exported(exported).scorer.window(x) - ref).max() <= 1e-4


def test_export_cli_prints_parity_and_the_file(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run), "--out", str(out), "--calibrate-minutes", "0"]) == 0
    text = capsys.readouterr().out
    assert "parity on" in text and "max |logit difference|" in text and text.strip().endswith(str(out))
    assert load_exported(out).meta["calibration"]["method"] == "validation_clips"


@pytest.mark.parametrize("missing", ["labels", "feature_config"])
def test_export_refuses_checkpoint_without_labels_or_feature_config(tiny_run, tmp_path, missing):
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    ckpt[missing] = None
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    out = tmp_path / "m.onnx"
    with pytest.raises(KwsError, match=missing.split("_")[0]):
        from kws_hpc.deploy.export import export_checkpoint

        export_checkpoint(bad, out, log=lambda m: None)
    assert main(["export", str(bad), "--out", str(out)]) == 2
    assert not out.exists()


def test_export_refuses_when_parity_fails(tiny_run, tmp_path, monkeypatch):
    import kws_hpc.deploy.export as ex
    from kws_hpc.train import load_checkpoint

    other, _ = load_checkpoint(tiny_run)
    with torch.no_grad():
        other.classifier.bias += 0.01  # a graph that is not the checkpoint's
    monkeypatch.setattr(ex, "to_onnx", lambda model, frames=100: to_onnx(other, frames))
    out = tmp_path / "m.onnx"
    with pytest.raises(KwsError, match="differs from checkpoint"):
        ex.export_checkpoint(tiny_run, out, calibrate_minutes=0, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_export_without_the_store_checks_parity_on_random_inputs(tiny_run, tmp_path):
    from kws_hpc.deploy.export import export_checkpoint

    lone = tmp_path / "lone.pt"
    shutil.copy(tiny_run / "best.pt", lone)  # no config.json beside it: the store is unknown
    lines: list = []
    out = export_checkpoint(lone, tmp_path / "m.onnx", log=lines.append)
    meta = load_exported(out).meta
    assert "random inputs" in meta["parity"]["inputs"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["calibration"]["method"] == "default"
    assert any("parity" in line for line in lines)


def _fake_run(root: Path, name: str, src: Path, val: float, test: float, result: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    shutil.copy(src / "best.pt", run / "best.pt")
    shutil.copy(src / "config.json", run / "config.json")
    if result:
        (run / "result.json").write_text(json.dumps({"best_val_acc": val, "test_accuracy": test}))
    return run


def test_export_best_cli(tiny_run, tmp_path, capsys):
    _fake_run(tmp_path / "runs", "x", tiny_run, 0.5, 0.5)
    out = tmp_path / "best.onnx"
    runs = str(tmp_path / "runs")
    assert main(["export", "--best", runs, "--out", str(out), "--calibrate-minutes", "0"]) == 0
    assert "best of 1 run(s)" in capsys.readouterr().out and out.is_file()
    assert main(["export", str(tiny_run), "--best", str(tmp_path / "runs"), "--out", str(out)]) == 2


def test_load_exported_refuses_foreign_and_inconsistent_files(tmp_path):
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(to_onnx(_model()))
    with pytest.raises(KwsError, match="no kws-hpc metadata"):
        load_exported(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(KwsError, match="not a readable ONNX"):
        load_exported(junk)
    wrong = tmp_path / "wrong.onnx"  # metadata that does not fit the graph (7 labels, 6 outputs)
    meta = {"format": "kws-hpc-onnx", "format_version": 1, "labels": list("abcdefg"),
            "feature_config": {"n_mels": 40}, "model_config": {"hidden": 12}}
    wrong.write_bytes(with_metadata(to_onnx(_model()), meta))
    with pytest.raises(KwsError, match="inconsistent"):
        load_exported(wrong)
    assert META_KEY == "kws_hpc"


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_export_averages_several_runs(tiny_run, tiny_lstm_run, tiny_store, tmp_path, capsys):
    from kws_hpc.features.store import load_split
    from kws_hpc.train import load_checkpoint

    out = tmp_path / "pair.onnx"
    assert main(["export", str(tiny_run), str(tiny_lstm_run), "--out", str(out), "--calibrate-minutes", "0.5",
                 "--negative-minutes", "1"]) == 0
    assert "2 models averaged" in capsys.readouterr().out
    pair = load_exported(out)
    members = pair.meta["averaged"]["members"]
    assert [m["model_config"]["cell"] for m in members] == ["gru", "lstm"]
    assert [m["source"]["checkpoint"] for m in members] == [str((r / "best.pt").resolve())
                                                            for r in (tiny_run, tiny_lstm_run)]
    assert pair.meta["parity"]["max_abs_diff"] <= 1e-4 and pair.meta["calibration"]["method"] == "validation_streams"
    assert pair.scorer.can_stream and pair.meta["streaming"]["state_size"] == 16 + 2 * 8 + 9
    x = load_split(tiny_store, "test").features[:20]
    probs = [_softmax(load_checkpoint(r)[0](torch.from_numpy(x)).detach().numpy()) for r in (tiny_run, tiny_lstm_run)]
    assert np.abs(_softmax(pair.scorer.window(x)) - (probs[0] + probs[1]) / 2).max() <= 1e-4
    import soundfile as sf

    wav = tmp_path / "quiet.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert main(["live", "--model", str(out), "--wav", str(wav), "--quiet"]) == 0
    assert f"model {out.name} (GRU + LSTM, averaged): " in capsys.readouterr().out


def test_export_refuses_runs_that_cannot_be_averaged(tiny_run, tmp_path):
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    ckpt["labels"] = list(reversed(ckpt["labels"]))  # the same shapes, another label order
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run), str(other), "--out", str(out)]) == 2
    assert main(["export", str(tiny_run), str(tiny_run / "best.pt"), "--out", str(out)]) == 2
    assert not out.exists()
    from kws_hpc.deploy.export import export_checkpoint

    with pytest.raises(KwsError, match="another label order"):
        export_checkpoint([tiny_run, other], out, log=lambda m: None)
    with pytest.raises(KwsError, match="given twice"):
        export_checkpoint([tiny_run, tiny_run / "best.pt"], out, log=lambda m: None)
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    ckpt["feature_config"] = dict(ckpt["feature_config"], f_max=ckpt["feature_config"]["f_max"] - 100)
    torch.save(ckpt, other)  # the same labels and shapes, another mel range
    with pytest.raises(KwsError, match="another feature config"):
        export_checkpoint([tiny_run, other], out, log=lambda m: None)
    assert not out.exists()
