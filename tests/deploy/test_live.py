"""The detector: voice gate, smoothing, trigger, scoring, the pipeline (window and streaming), mic and CLI."""

from __future__ import annotations

import json
import sys
import threading
import types

import numpy as np
import pytest
import torch
from test_export import exported, tiny_run  # noqa: F401 (session fixtures: a trained, exported tiny model)

from kws_hpc.cli import main
from kws_hpc.config import FeatureConfig, ModelConfig
from kws_hpc.deploy.detector import Detection, DetectorConfig, EnergyVAD, Gate, Smoother, Trigger, replay
from kws_hpc.errors import KwsError
from kws_hpc.features.logmel import log_mel
from kws_hpc.deploy.pipeline import Pipeline, run_wav
from kws_hpc.train.models import KwsRNN
from kws_hpc.deploy.onnx_model import TorchScorer
from kws_hpc.deploy.scoring import THRESHOLDS, pick_threshold, score, sweep, vad_score
from kws_hpc.data.teststream import TruthEvent

SR = 16000
LABELS = ["yes", "no", "_unknown_"]


def _signal(seconds: float, bursts=(), noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """Quiet noise with 300-Hz tone bursts [(start_s, end_s)] at amplitude 0.3."""
    x = noise * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    for a, b in bursts:
        t = np.arange(int(a * SR), int(b * SR))
        x[t] += 0.3 * np.sin(2 * np.pi * 300 * t / SR)
    return x.astype(np.float32)


class LoudScorer:
    """Says "yes" when the window holds a loud frame, "_unknown_" otherwise; counts its calls."""

    can_stream = False

    def __init__(self):
        self.calls = 0

    def window(self, feats):
        self.calls += 1
        return np.array([[5.0, 0.0, 0.0] if feats[0].max() > 0 else [0.0, 0.0, 5.0]], np.float32)


def test_trigger_threshold_refractory_and_no_filler_classes():
    cfg = DetectorConfig(threshold=0.6, refractory_s=1.0, hold_s=0.0)
    trig = Trigger(LABELS, cfg)
    assert trig(0.1, np.array([0.5, 0.1, 0.4])) is None  # below threshold
    d = trig(0.2, np.array([0.7, 0.1, 0.2]))
    assert d == Detection(0.2, "yes", pytest.approx(0.7))
    assert trig(1.1, np.array([0.1, 0.9, 0.0])) is None  # refractory: one word, one trigger
    assert trig(1.2, np.array([0.1, 0.9, 0.0])).label == "no"
    assert trig(5.0, np.array([0.0, 0.0, 1.0])) is None  # _unknown_ never fires
    strict = Trigger(LABELS, DetectorConfig(threshold=0.6, class_thresholds={"yes": 0.95}, hold_s=0.0))
    assert strict(0.1, np.array([0.9, 0.05, 0.05])) is None
    assert strict(0.2, np.array([0.3, 0.65, 0.05])).label == "no"  # "no" passes its own threshold
    with pytest.raises(KwsError, match="does not know"):
        Trigger(LABELS, DetectorConfig(class_thresholds={"maybe": 0.5}))


def test_hold_lets_the_whole_word_win_over_its_first_hop():
    trig = Trigger(LABELS, DetectorConfig(threshold=0.6, refractory_s=1.0, hold_s=0.2))
    assert trig(0.1, np.array([0.1, 0.65, 0.25])) is None  # "no" crosses first: the decision opens
    assert trig(0.2, np.array([0.9, 0.05, 0.05])) is None  # "yes", more confident, takes over
    assert trig(0.3, np.array([0.7, 0.2, 0.1])) == Detection(0.3, "yes", pytest.approx(0.9))
    assert trig(1.2, np.array([0.9, 0.05, 0.05])) is None  # refractory counts from the firing
    assert trig(1.3, np.array([0.0, 0.8, 0.2])) is None and trig.flush(1.35).label == "no"
    assert trig.flush(2.0) is None
    times = np.array([0.1, 0.2])
    ended = replay(times, np.array([[0.0, 0.0, 1.0], [0.8, 0.1, 0.1]]), LABELS, DetectorConfig(hold_s=0.5))
    assert ended == [Detection(0.2, "yes", pytest.approx(0.8))]  # a stream's end fires what is on hold
    with pytest.raises(KwsError, match="--hold"):
        DetectorConfig(hold_s=-1).check()


def test_smoother_averages_recent_hops_and_counts_gaps_as_zero():
    s = Smoother(3, 2)
    assert np.allclose(s.push(np.array([1.0, 0.0])), [1.0, 0.0])
    assert np.allclose(s.push(None), [0.5, 0.0])
    s.push(np.array([0.0, 1.0]))
    assert np.allclose(s.push(np.array([0.0, 1.0])), [0.0, 2 / 3])


def test_energy_vad_marks_voice_and_its_floor_follows_the_background():
    cfg = DetectorConfig(vad_margin_db=10.0, vad_rise_db_s=3.0)
    vad = EnergyVAD(cfg)
    quiet = vad.push(_signal(2.0))
    assert not quiet[10:].any() and -70 < vad.floor_db < -55  # 1e-3 white noise is -60 dBFS
    voice = vad.push(_signal(0.5, bursts=[(0.1, 0.4)]))
    assert voice[12:38].all() and not voice[45:].any()
    louder = vad.push(_signal(15.0, noise=3e-2))  # the background rises by 30 dB and stays
    assert louder[:50].all() and not louder[-100:].any()  # first taken for voice, then learned as floor
    assert -35 < vad.floor_db < -25
    gate = Gate(window_frames=100, min_voice=5)
    assert not gate.push(np.array([True] * 4)) and gate.push(np.array([True]))
    assert gate.push(np.zeros(95, bool)) and not gate.push(np.zeros(1, bool)) and gate.closed_frames == 96
    assert Gate(window_frames=100, min_voice=5).closed_frames == 100  # nothing heard yet counts as silence


def test_score_hits_misses_false_alarms_and_latency():
    truth = [TruthEvent(1.0, 1.4, "yes", "keyword"), TruthEvent(3.0, 3.3, "no", "keyword"),
             TruthEvent(5.0, 5.5, "house", "other"), TruthEvent(7.0, 7.4, "yes", "keyword"),
             TruthEvent(9.0, 9.5, "_noise_", "noise")]
    dets = [Detection(1.3, "yes", 0.9), Detection(1.6, "yes", 0.8),  # a hit, then the same word again: FA
            Detection(3.2, "yes", 0.9),  # on "no": a substitution (FA) and "no" is missed
            Detection(5.4, "no", 0.9),  # on another word: FA
            Detection(6.9, "yes", 0.9),  # before the onset: FA ...
            Detection(7.5, "yes", 0.9),  # ... this one is the hit
            Detection(9.2, "_unknown_", 0.9)]  # not a keyword: FA
    s = score(dets, truth, LABELS, seconds=36.0, tolerance_s=1.5)
    assert (s.keywords, s.hits, s.misses, s.false_alarms, s.substitutions) == (3, 2, 1, 5, 1)
    assert s.latencies == pytest.approx([0.3, 0.5]) and s.fa_per_hour == pytest.approx(500.0)
    assert s.per_class["yes"] == {"truth": 2, "hits": 2, "false_alarms": 3}
    late = score([Detection(2.6, "yes", 0.9)], truth[:1], LABELS, 10.0, tolerance_s=1.5)
    assert (late.hits, late.false_alarms) == (0, 1)
    assert "2 hits (66.7 %)" in s.summary() and s.as_dict()["hit_rate"] == pytest.approx(2 / 3)
    # each false alarm is put on the latest word that began before it and ended at most 1.5 s earlier:
    # the same word again, another keyword, another word (twice: 5.4 s and 6.9 s), noise
    assert s.confused == {"yes": 1, "no": 1, "house": 2, "_noise_": 1}
    assert s.confusions() == "house 2, _noise_ 1, no 1, yes 1" and s.as_dict()["confused"] == s.confused


def test_a_negative_stream_counts_every_detection_as_a_false_alarm():
    truth = [TruthEvent(1.0, 1.4, "house", "other"), TruthEvent(4.0, 5.0, "_noise_", "noise"),
             TruthEvent(8.0, 8.4, "off", "other")]
    dets = [Detection(1.5, "yes", 0.9), Detection(8.6, "up", 0.9), Detection(8.9, "up", 0.8),
            Detection(20.0, "no", 0.7)]
    s = score(dets, truth, LABELS, seconds=1800.0)
    assert (s.keywords, s.hits, s.false_alarms) == (0, 0, 4) and s.fa_per_hour == pytest.approx(8.0)
    assert s.confused == {"house": 1, "off": 2, "(quiet)": 1}
    assert s.summary() == "no keywords in 30.00 min: 4 false alarms (8.00 per hour)"
    assert s.hit_rate != s.hit_rate and s.miss_rate != s.miss_rate  # NaN: there was nothing to hit
    d = s.as_dict()  # in JSON: not applicable, not 0/0
    assert d["hit_rate"] is None and d["miss_rate"] is None and d["fa_per_hour"] == pytest.approx(8.0)
    json.dumps(d, allow_nan=False)


def test_sweep_and_pick_threshold_on_a_recorded_trace():
    times = np.round(np.arange(1, 101) * 0.1, 6)
    smoothed = np.zeros((100, 3), np.float32)
    smoothed[20:24, 0] = 0.9  # "yes" said at 1.8 s: strong
    smoothed[60:63, 1] = 0.5  # a weak "no" where nothing was said
    truth = [TruthEvent(1.8, 2.1, "yes", "keyword")]
    rows = sweep(times, smoothed, LABELS, DetectorConfig(), truth, seconds=10.0)
    by = dict(rows)
    assert by[0.4].hits == 1 and by[0.4].false_alarms == 1
    assert by[0.6].hits == 1 and by[0.6].false_alarms == 0 and by[0.95].hits == 0
    assert 0.5 < pick_threshold(rows) <= 0.9
    every_hop = DetectorConfig(threshold=0.4, refractory_s=0.0, hold_s=0.0)
    assert len(replay(times, smoothed, LABELS, every_hop)) == 7


def test_vad_score_against_truth():
    flags = np.zeros(1000, bool)
    flags[100:140] = True  # the word at 1.0-1.4 s
    flags[500:520] = True  # part of a noise burst at 5-6 s
    truth = [TruthEvent(1.0, 1.4, "yes", "keyword", clip_start=0.8),
             TruthEvent(3.0, 3.2, "tree", "other", clip_start=2.6),
             TruthEvent(5.0, 6.0, "_noise_", "noise", 5.0)]
    v = vad_score(flags, truth)
    assert v["words_reached"] == 0.5 and v["speech_recall"] == pytest.approx(40 / 60)
    assert v["noise_active"] == pytest.approx(0.2) and v["quiet_active"] == 0.0


def test_pipeline_detects_once_with_latency_and_skips_silence():
    x = _signal(5.0, bursts=[(1.5, 1.75)])
    scorer = LoudScorer()
    cfg = DetectorConfig(threshold=0.7, smooth_s=0.3, refractory_s=1.5, hold_s=0.0)
    pipe = Pipeline(scorer, LABELS, FeatureConfig(), cfg, record=True)
    dets = []
    for i in range(0, len(x), 1234):  # odd-sized pieces: hops are cut by the pipeline
        dets += pipe.push(x[i:i + 1234])
    assert [d.label for d in dets] == ["yes"] and dets[0].time == pytest.approx(1.8)  # 3 loud hops smoothed
    assert scorer.calls < len(pipe.costs) / 2  # the gate kept the model off in the quiet
    cost = pipe.rtf()
    assert cost["hops"] == 50 and cost["rtf"] > 0 and cost["model_runs"] == scorer.calls
    again = Pipeline(LoudScorer(), LABELS, FeatureConfig(),
                     DetectorConfig(threshold=0.7, refractory_s=0.0, hold_s=0.0))
    assert len(again.push(x)) > 3  # without a refractory time one word triggers on every hop
    truth = [TruthEvent(1.5, 1.75, "yes", "keyword", 1.5)]
    assert score(dets, truth, LABELS, pipe.seconds).latencies == [pytest.approx(0.3)]


class _Spy:
    """A streaming scorer that remembers the frames it stepped over since the last reset."""

    can_stream = True

    def __init__(self, inner):
        self.inner, self.frames, self.resets, self.logits = inner, [], 0, None

    def step(self, frames, state):
        if state is None:
            self.frames, self.resets = [], self.resets + 1
        self.frames.append(frames[0])
        self.logits, state = self.inner.step(frames, state)
        return self.logits, state


def test_streaming_equals_the_full_forward_pass_over_the_same_frames():
    torch.manual_seed(0)
    model = KwsRNN(ModelConfig(hidden=8, layers=2, head="last", clip_norm=False, conv_channels=0), 40, 3).eval()
    spy = _Spy(TorchScorer(model))
    x = _signal(6.0, bursts=[(1.0, 1.6), (4.0, 4.3)])
    pipe = Pipeline(spy, LABELS, FeatureConfig(), DetectorConfig(streaming=True, preroll_s=0.3))
    pipe.push(x[:int(2.0 * SR)])  # into the first word: the state is carried hop after hop
    seen = np.concatenate(spy.frames)
    first = pipe.next_frame - len(seen)
    full = log_mel(x[None, :int(2.0 * SR)], FeatureConfig(frames=200))[0]
    assert np.abs(seen - full[first:first + len(seen)]).max() < 1e-3  # frames of one STFT over the stream
    forward = model(torch.from_numpy(seen[None])).detach().numpy()
    assert np.abs(spy.logits - forward).max() < 1e-5  # stepping == one forward pass over those frames
    pipe.push(x[int(2.0 * SR):])
    assert spy.resets == 2  # reset in the silence, restarted on the second word (with its pre-roll)
    assert abs(first * 160 / SR - (1.0 - 0.3)) < 0.15


def test_streaming_refuses_models_and_settings_that_cannot():
    with pytest.raises(KwsError, match="cannot stream"):
        Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(streaming=True))
    with pytest.raises(KwsError, match="needs the voice gate"):
        DetectorConfig(streaming=True, vad=False).check()
    with pytest.raises(KwsError, match="whole number"):
        Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(hop_s=0.105))


def test_mic_resampler_blocks_equal_resampling_the_whole_signal():
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

    x = _signal(4.0, bursts=[(1.5, 1.75)])
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(audio=resample_poly(x, 3, 1)))
    mic = open_input(None, SR)
    assert mic.rate == 48000  # the device cannot do 16 kHz: opened at its own rate, resampled
    cfg = DetectorConfig(threshold=0.7, refractory_s=1.5)
    lines: list = []
    dets = listen(Pipeline(LoudScorer(), LABELS, FeatureConfig(), cfg), mic, seconds=3.5, log=lines.append,
                  on_detection=lambda d: None)
    assert [d.label for d in dets] == ["yes"] and dets[0].time == pytest.approx(1.8)
    assert "48000 Hz (resampled to 16000 Hz)" in lines[0]


def test_missing_microphone_or_portaudio_fails_with_one_line(exported, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(inputs=False))
    assert main(["live", "--model", str(exported), "--mic"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "--wav FILE" in captured.err
    assert main(["live", "--list-devices"]) == 0 and "no input device" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if PortAudio or the package were missing
    assert main(["live", "--model", str(exported)]) == 2
    assert "PortAudio" in capsys.readouterr().err


def test_live_cli_on_a_stream_scores_and_times(exported, tiny_tree, tiny_store,  # noqa: F811
                                               tmp_path, capsys):
    from kws_hpc.data.teststream import make_stream

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


def test_live_cli_on_a_negative_stream_counts_false_alarms_only(exported, tiny_tree, tiny_store,  # noqa: F811
                                                                tmp_path, capsys):
    from kws_hpc.data.teststream import make_stream, read_truth

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


def test_live_cli_refuses_bad_input(exported, tmp_path, capsys):  # noqa: F811
    assert main(["live", "--model", str(tmp_path / "none.onnx"), "--wav", "x.wav"]) == 2
    assert main(["live", "--model", str(exported), "--truth", "t.tsv"]) == 2
    assert main(["live", "--model", str(exported), "--wav", str(tmp_path / "none.wav")]) == 2
    assert main(["live", "--model", str(exported), "--wav", "x.wav", "--threshold", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("kws-hpc: error:") == 4


def test_run_wav_reads_other_rates_and_channels(tmp_path):
    import soundfile as sf

    x = _signal(3.0, bursts=[(1.0, 1.25)])
    from scipy.signal import resample_poly

    stereo = np.stack([resample_poly(x, 441, 160)] * 2, axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100)
    pipe = Pipeline(LoudScorer(), LABELS, FeatureConfig(), DetectorConfig(threshold=0.7))
    said = []
    dets = run_wav(pipe, tmp_path / "s.wav", log=said.append)
    assert [d.label for d in dets] == ["yes"] and abs(pipe.seconds - 3.0) < 0.11
    assert said == ["s.wav: 2 channels mixed down to mono", "s.wav: 44100 Hz resampled to 16000 Hz"]


def test_live_window_features_equal_the_stores(tiny_store, tiny_tree):
    from kws_hpc.data.source import decode_wav
    from kws_hpc.features.store import load_split, open_store

    class Capture(LoudScorer):
        def window(self, feats):
            self.feats = feats
            return super().window(feats)

    info, test = open_store(tiny_store), load_split(tiny_store, "test")
    clip = decode_wav((tiny_tree / test.paths[0]).read_bytes())
    scorer = Capture()
    pipe = Pipeline(scorer, LABELS, info.feature_config, DetectorConfig(vad=False))
    pipe.push(clip[:SR])  # after one second the rolling window is exactly the clip
    assert np.abs(scorer.feats[0] - test.features[0]).max() < 0.02  # the store keeps float16


@pytest.mark.parametrize("threshold", [0.12, 0.18])
def test_batched_offline_pipeline_decides_as_hop_by_hop(exported, tiny_tree, tiny_store, threshold):  # noqa: F811
    """The offline path (the model on many queued windows at once) records the trace and fires the
    detections the hop-by-hop pipeline does, including the hops still queued when the input ends."""
    from kws_hpc.data.teststream import stream_audio
    from kws_hpc.deploy.onnx_model import load_exported

    model = load_exported(exported)
    audio, _ = stream_audio(tiny_tree, 0.4, 5, store=tiny_store, split="test")
    cfg = DetectorConfig(threshold=threshold, hold_s=0.2)
    runs = {}
    for batch in (1, 7, 64):
        pipe = Pipeline(model.scorer, model.labels, model.feature_config, cfg, record=True, batch=batch)
        dets = []
        for at in range(0, len(audio), 4321):  # pushes that do not line up with hops or batches
            dets += pipe.push(audio[at:at + 4321])
        dets += pipe.finish()
        runs[batch] = (pipe, dets)
    one, dets_one = runs[1]
    assert dets_one and 0 < sum(one.ran) < len(one.ran)  # it fires, and the voice gate skips some hops
    for batch in (7, 64):
        pipe, dets = runs[batch]
        assert pipe.queue == [] and len(pipe.costs) == len(one.costs) and pipe.ran == one.ran
        assert np.array_equal(pipe.trace.arrays()[0], one.trace.arrays()[0])
        assert np.abs(pipe.trace.arrays()[1] - one.trace.arrays()[1]).max() < 1e-4
        assert [(d.time, d.label) for d in dets] == [(d.time, d.label) for d in dets_one]


def _score_by_scanning(dets, truth, labels, tol=1.5):
    """The matching rule of `scoring.score`, written as a plain scan over every word for every detection."""
    keywords = {lab for lab in labels if not lab.startswith("_")}
    expected = sorted((e for e in truth if e.word in keywords), key=lambda e: e.onset)
    events = sorted(truth, key=lambda e: e.onset)
    used, hits, fas, subs, confused = [False] * len(expected), 0, 0, 0, {}
    for d in sorted(dets, key=lambda d: d.time):
        near = [i for i, e in enumerate(expected) if e.onset <= d.time + 1e-9 <= e.onset + tol + 2e-9]
        match = next((i for i in near if not used[i] and expected[i].word == d.label), None)
        if match is None:
            fas += 1
            subs += any(expected[i].word != d.label for i in near)
            word = "(quiet)"
            for e in events:
                if e.onset > d.time + 1e-9:
                    break
                if d.time <= e.offset + tol + 1e-9:
                    word = e.word
            confused[word] = confused.get(word, 0) + 1
        else:
            used[match], hits = True, hits + 1
    return hits, fas, subs, confused


@pytest.mark.parametrize("seed", range(4))
def test_array_replay_and_fast_matching_equal_the_hop_by_hop_rules(seed):
    """Sweeps replay an hour 120 times: the array replay (no hold) fires exactly what `Trigger` fires hop
    by hop, and the scoring finds the same hits, false alarms and confused words as a plain scan."""
    from kws_hpc.deploy.detector import replay_hops

    rng = np.random.default_rng(seed)
    labels = ["yes", "no", "up", "_silence_", "_unknown_"]
    n = 3000
    times = np.round(np.arange(1, n + 1) * 0.1, 6)
    raw = rng.dirichlet(np.full(5, 0.3), size=n).astype(np.float32)
    raw[rng.random(n) < 0.3] = 0  # closed gate
    smoothed = np.stack([raw[max(0, i - 2):i + 1].mean(axis=0) for i in range(n)]).astype(np.float32)
    smoothed[::97, 0] = smoothed[::97, 1] = 0.7  # ties: the first keyword wins
    truth, t = [], 0.5
    while t < n * 0.1:
        word = labels[rng.integers(3)] if rng.random() < 0.6 else str(rng.choice(["bed", "off", "_noise_"]))
        length = float(rng.uniform(0.2, 0.8))
        truth.append(TruthEvent(round(t, 3), round(t + length, 3), word, "keyword" if word in labels else "other"))
        t += length + float(rng.uniform(0.1, 2.0))
    for threshold, refractory, per_class in ((0.3, 1.0, {}), (0.6, 0.5, {"no": 0.9}), (0.05, 0.0, {}),
                                            (0.95, 2.0, {"yes": 0.2})):
        cfg = DetectorConfig(threshold=threshold, refractory_s=refractory, class_thresholds=per_class)
        fast, slow = replay(times, smoothed, labels, cfg), replay_hops(times, smoothed, labels, cfg)
        assert fast == slow and len(slow) > 0
        s = score(fast, truth, labels, n * 0.1)
        assert (s.hits, s.false_alarms, s.substitutions, s.confused) == _score_by_scanning(fast, truth, labels)
    held = DetectorConfig(threshold=0.3, hold_s=0.2)  # a hold needs the hop-by-hop trigger
    assert replay(times, smoothed, labels, held) == replay_hops(times, smoothed, labels, held)
