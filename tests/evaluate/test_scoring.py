"""Scoring detections against a stream's truth: hits, misses, false alarms, latency, sweeps, the voice gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kws_hpc.evaluate.detector import Detection, DetectorConfig, replay
from kws_hpc.evaluate.scoring import pick_threshold, score, sweep, vad_score
from kws_hpc.evaluate.teststream import TruthEvent

LABELS = ["yes", "no", "_unknown_"]


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
    from kws_hpc.evaluate.detector import replay_hops

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
