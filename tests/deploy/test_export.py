"""Export: ONNX graph parity (full window and stepped), the self-describing file, refusals, --best."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kws_hpc.cli import main
from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
from kws_hpc.errors import KwsError
from kws_hpc.train.models import KwsRNN
from kws_hpc.deploy.onnx_model import META_KEY, OnnxScorer, TorchScorer, load_exported, to_onnx, with_metadata


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    """A GRU (hidden 16) trained for 2 epochs on the tiny store: a real run folder."""
    from kws_hpc.train.loop import train

    cfg = RunConfig(store=str(tiny_store), model=ModelConfig(hidden=16, layers=1, head="last", clip_norm=False,
                                                               conv_channels=0),
                    train=TrainConfig(epochs=2, device="cpu"))
    return train(cfg, out=tmp_path_factory.mktemp("runs"), log=lambda m: None, progress=False)


@pytest.fixture(scope="session")
def exported(tiny_run, tmp_path_factory) -> Path:
    from kws_hpc.deploy.export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    return export_checkpoint(tiny_run, out, calibrate_minutes=0.5, negative_minutes=1.0, log=lambda m: None)


def _model(seed=0, **kw) -> KwsRNN:
    torch.manual_seed(seed)
    m = KwsRNN(ModelConfig(**{"hidden": 12, "layers": 2, "clip_norm": False, "conv_channels": 0, **kw}), 40, 6).eval()
    m.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    return m


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean"])
def test_onnx_matches_model_full_window_and_stepped(cell, head):
    m = _model(cell=cell, head=head)
    onnx_scorer, ref = OnnxScorer(to_onnx(m)), TorchScorer(m)
    x = np.random.default_rng(1).standard_normal((3, 100, 40)).astype(np.float32)
    full = m(torch.from_numpy(x)).detach().numpy()
    assert np.abs(onnx_scorer.window(x) - full).max() <= 1e-5
    assert onnx_scorer.window(x[:1, :37]).shape == (1, 6)  # batch and time are dynamic
    state, torch_state = None, None
    for t in range(0, 100, 10):  # step hop by hop carrying the state: equals the full window
        logits, state = onnx_scorer.step(x[:, t:t + 10], state)
        torch_logits, torch_state = ref.step(x[:, t:t + 10], torch_state)
    assert np.abs(logits - full).max() <= 1e-5
    assert np.abs(torch_logits - full).max() <= 1e-5
    kws_state = None  # and the model's own step() agrees with the exported graph
    for t in range(0, 100, 7):
        step_logits, kws_state = m.step(torch.from_numpy(x[:, t:t + 7]), kws_state)
    assert np.abs(step_logits.detach().numpy() - logits).max() <= 1e-5


@pytest.mark.parametrize("kw", [{"head": "attention"}, {"bidirectional": True}, {"conv_channels": 8},
                                {"clip_norm": True, "head": "attention", "cell": "lstm"},
                                {"conv_channels": 8, "rnn_stride": 2, "head": "attention"},
                                {"rnn_stride": 3, "cell": "lstm", "head": "last"}])
def test_models_that_cannot_stream_export_without_state(kw):
    m = _model(**kw)
    s = OnnxScorer(to_onnx(m))
    x = np.random.default_rng(2).standard_normal((2, 100, 40)).astype(np.float32)
    assert not s.can_stream and s.inputs == ["features"]
    for frames in (100, 37):  # 37: the strided layers' last group is shorter than the rest
        assert np.abs(s.window(x[:, :frames]) - m(torch.from_numpy(x[:, :frames])).detach().numpy()).max() <= 1e-5
    with pytest.raises(KwsError, match="cannot stream"):
        s.step(x[:, :10], None)


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


@pytest.mark.parametrize("second", [{"cell": "lstm", "head": "mean"}, {"conv_channels": 8}])
def test_averaged_graph_gives_the_mean_posterior(second):
    a, b = _model(0, cell="gru", head="last"), _model(1, **second)
    x = np.random.default_rng(3).standard_normal((3, 100, 40)).astype(np.float32)
    want = (_softmax(a(torch.from_numpy(x)).detach().numpy()) + _softmax(b(torch.from_numpy(x)).detach().numpy())) / 2
    s, ref = OnnxScorer(to_onnx([a, b])), TorchScorer([a, b])
    for scorer in (s, ref):
        assert np.abs(_softmax(scorer.window(x)) - want).max() <= 1e-5
        assert np.abs(np.exp(scorer.window(x)).sum(1) - 1).max() <= 1e-5  # log of a distribution
    assert np.abs(_softmax(s.window(x)) - _softmax(a(torch.from_numpy(x)).detach().numpy())).max() > 1e-3
    assert s.can_stream == b.can_stream  # stepping only when every member can
    if s.can_stream:
        assert s.state_size == 12 * 2 + 2 * 12 * 2 + 13  # GRU 2 x 12, LSTM (h, c) 2 x 2 x 12, mean head 12 + 1
        state = None
        for t in range(0, 100, 10):
            logits, state = s.step(x[:, t:t + 10], state)
        assert np.abs(_softmax(logits) - want).max() <= 1e-5
    else:
        assert s.inputs == ["features"]


@pytest.fixture(scope="session")
def tiny_lstm_run(tiny_store, tmp_path_factory) -> Path:
    from kws_hpc.train.loop import train

    cfg = RunConfig(store=str(tiny_store), train=TrainConfig(epochs=1, device="cpu", seed=1),
                    model=ModelConfig(cell="lstm", hidden=8, layers=1, head="mean", clip_norm=False, conv_channels=0))
    return train(cfg, out=tmp_path_factory.mktemp("runs2"), log=lambda m: None, progress=False)


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


def test_averaged_traces_score_as_the_averaged_graph(tiny_run, tiny_lstm_run, tiny_store):
    """The report scores the pair from the two models' recorded traces: the same as running the pair's graph."""
    from kws_hpc.deploy.det import averaged_traces, make_stream, measure, trace_curve
    from kws_hpc.deploy.detector import DetectorConfig
    from kws_hpc.deploy.onnx_model import checkpoint_scorer
    from kws_hpc.train import load_checkpoint

    pos, neg = make_stream(tiny_store, "test", 0.5, 5, False), make_stream(tiny_store, "test", 0.5, 6, True)
    cfg, traces, models = DetectorConfig(), [], []
    for run in (tiny_run, tiny_lstm_run):
        scorer, labels, fc, _ = checkpoint_scorer(run)
        traces.append(measure(scorer, labels, fc, cfg, pos, neg)[0])
        models.append(load_checkpoint(run)[0])
    want_traces, want_curve, _, _ = measure(OnnxScorer(to_onnx(models, fc.frames)), labels, fc, cfg, pos, neg)
    got = averaged_traces(traces)
    for (t, s, sec), (wt, ws, wsec) in zip(got, want_traces):
        assert np.array_equal(t, wt) and sec == wsec and np.abs(s - ws).max() <= 1e-5
    assert np.abs(got[0][1] - traces[0][0][1]).max() > 1e-3  # not one model's trace
    assert trace_curve(got, labels, cfg, pos, neg)[0] == want_curve
    with pytest.raises(ValueError, match="hops"):
        averaged_traces([traces[0], ((traces[1][0][0][:-1], traces[1][0][1][:-1], 1.0), traces[1][1])])
