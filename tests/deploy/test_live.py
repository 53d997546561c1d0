"""Live runs: the microphone (resampling, a missing device), `kws-hpc live` over streams, sound files."""

from __future__ import annotations

import json
import sys
import threading
import types

import numpy as np
import pytest
from conftest import LoudScorer, tone_bursts

from kws_hpc.cli import main
from kws_hpc.config import FeatureConfig
from kws_hpc.deploy.audiofile import run_wav
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.pipeline import Pipeline
from kws_hpc.evaluate.scoring import THRESHOLDS

SR = 16000
LABELS = ["yes", "no", "_unknown_"]


def test_mic_resampler_blocks_equal_resampling_the_wholetone_bursts():
    import soxr

    from kws_hpc.deploy.mic import _resampler

    assert _resampler(SR, SR) is None
    rng = np.random.default_rng(0)
    for rate in (48000, 44100, 8000):
        x = rng.standard_normal(rate).astype(np.float32)
        r = _resampler(rate, SR)
        parts, at = [], 0
        while at < len(x):
            n = int(rng.integers(50, 5000))
            parts.append(r.resample_chunk(x[at:at + n]))
            at += n
        parts.append(r.resample_chunk(np.zeros(0, np.float32), last=True))
        got = np.concatenate(parts)
        want = soxr.resample(x, rate, SR)
        assert len(got) == len(want) == SR
        assert np.abs(got - want).max() < 1e-6


def _fake_sounddevice(rates=(48000,), inputs=True, audio=None):
    """A stand-in for the sounddevice module: one device, `rates` it accepts, `audio` it delivers."""
    sd = types.ModuleType("sounddevice")
    sd.PortAudioError = type("PortAudioError", (Exception,), {})
    device = {"name": "Fake Mic", "max_input_channels": 1 if inputs else 0, "default_samplerate": rates[0]}

    def query_devices(device_id=None, kind=None):
        if kind == "input" and not inputs:
            raise sd.PortAudioError("Error querying device -1")
        return device if kind else [device]

    def check_input_settings(device=None, channels=None, samplerate=None, dtype=None):
        if samplerate not in rates:
            raise sd.PortAudioError("Invalid sample rate")

    class InputStream:
        def __init__(self, samplerate, blocksize, callback, **kw):
            self.rate, self.block, self.callback = samplerate, blocksize, callback

        def __enter__(self):
            def feed():
                for at in range(0, len(audio), self.block):
                    chunk = audio[at:at + self.block]
                    self.callback(chunk[:, None], len(chunk), None, None)
            threading.Thread(target=feed, daemon=True).start()
            return self

        def __exit__(self, *exc):
            return False

    sd.query_devices, sd.check_input_settings = query_devices, check_input_settings
    sd.InputStream = InputStream
    return sd


def test_mic_path_resamples_and_detects_like_the_file_path(monkeypatch):
    from scipy.signal import resample_poly

    from kws_hpc.deploy.mic import listen, open_input

    x = tone_bursts(4.0, bursts=[(1.5, 1.75)])
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(audio=resample_poly(x, 3, 1)))
    mic = open_input(None, SR)
    assert mic.rate == 48000  # the device cannot do 16 kHz: opened at its own rate, resampled
    cfg = DetectorConfig(threshold=0.7, refractory_s=1.5)
    lines: list = []
    dets = listen(Pipeline(LoudScorer(), LABELS, FeatureConfig(), cfg), mic, seconds=3.5, log=lines.append,
                  on_detection=lambda d: None)
    assert [d.label for d in dets] == ["yes"] and dets[0].time == pytest.approx(1.8)
    assert "48000 Hz (resampled to 16000 Hz)" in lines[0]


def test_missing_microphone_or_portaudio_fails_with_one_line(exported, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(inputs=False))
    assert main(["live", "--model", str(exported), "--mic"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "--wav FILE" in captured.err
    assert main(["live", "--list-devices"]) == 0 and "no input device" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if PortAudio or the package were missing
    assert main(["live", "--model", str(exported)]) == 2
    assert "PortAudio" in capsys.readouterr().err


def test_live_cli_on_a_stream_scores_and_times(exported, tiny_tree, tiny_store,
                                               tmp_path, capsys):
    from kws_hpc.evaluate.teststream import make_stream

    wav, tsv = make_stream(tiny_tree, tmp_path / "s.wav", minutes=0.3, seed=5, store=tiny_store, split="test")
    out = tmp_path / "live.json"
    assert main(["live", "--model", str(exported), "--wav", str(wav), "--truth", str(tsv), "--sweep",
                 "--json", str(out), "--threshold", "0.3"]) == 0
    text = capsys.readouterr().out
    for part in ("threshold 0.30", "score:", "keywords:", "voice gate:", "threshold  miss %",
                 "real-time factor"):
        assert part in text
    report = json.loads(out.read_text())
    assert report["score"]["keywords"] > 0 and report["cost"]["hops"] == 180 and len(report["sweep"]) == len(THRESHOLDS)
    assert main(["live", "--model", str(exported), "--wav", str(wav), "--streaming", "--quiet"]) == 0
    assert "real-time factor" in capsys.readouterr().out


def test_live_cli_on_a_negative_stream_counts_false_alarms_only(exported, tiny_tree, tiny_store,
                                                                tmp_path, capsys):
    from kws_hpc.evaluate.teststream import make_stream, read_truth

    wav, tsv = make_stream(tiny_tree, tmp_path / "neg.wav", minutes=0.5, seed=7, store=tiny_store, split="test",
                           keyword_share=0.0)
    assert read_truth(tsv) and all(e.kind != "keyword" for e in read_truth(tsv))
    out = tmp_path / "neg.json"
    # a low threshold, so the tones of the other words and the noise make the detector fire
    assert main(["live", "--model", str(exported), "--wav", str(wav), "--truth", str(tsv), "--sweep",
                 "--json", str(out), "--threshold", "0.1"]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    s, dets = report["score"], report["detections"]
    assert dets and s["keywords"] == 0 and s["hits"] == 0 and s["false_alarms"] == len(dets)
    assert s["hit_rate"] is None and s["miss_rate"] is None
    assert s["fa_per_hour"] == pytest.approx(len(dets) * 3600 / report["seconds"])
    assert sum(s["confused"].values()) == len(dets)
    assert "no keywords in 0.50 min" in text and "  n/a" in text
    rows = {r["threshold"]: r for r in report["sweep"]}
    assert rows[0.1]["false_alarms"] == len(dets) and rows[0.1]["miss_rate"] is None
    assert rows[0.999]["false_alarms"] <= rows[0.5]["false_alarms"] <= rows[0.1]["false_alarms"]


def test_live_cli_refuses_bad_input(exported, tmp_path, capsys):
    assert main(["live", "--model", str(tmp_path / "none.onnx"), "--wav", "x.wav"]) == 2
    assert main(["live", "--model", str(exported), "--truth", "t.tsv"]) == 2
    assert main(["live", "--model", str(exported), "--wav", str(tmp_path / "none.wav")]) == 2
    assert main(["live", "--model", str(exported), "--wav", "x.wav", "--threshold", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("kws-hpc: error:") == 4


def test_run_wav_reads_other_rates_and_channels(tmp_path):
    import soundfile as sf

    x = tone_bursts(3.0, bursts=[(1.0, 1.25)])
    from scipy.signal import resample_poly

    stereo = np.stack([resample_poly(x, 441, 160)] * 2, axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100)
    pipe = Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(threshold=0.7))
    said = []
    dets = run_wav(pipe, tmp_path / "s.wav", log=said.append)
    assert [d.label for d in dets] == ["yes"] and abs(pipe.seconds - 3.0) < 0.11
    assert said == ["s.wav: 2 channels mixed down to mono", "s.wav: 44100 Hz resampled to 16000 Hz"]
