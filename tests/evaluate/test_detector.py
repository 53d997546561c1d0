"""The detector's decision logic: trigger thresholds, hold and refractory time, smoothing, the voice gate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tone_bursts

from kws_hpc.errors import KwsError
from kws_hpc.evaluate.detector import Detection, DetectorConfig, EnergyVAD, Gate, Smoother, Trigger, replay

LABELS = ["yes", "no", "_unknown_"]


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
    quiet = vad.push(tone_bursts(2.0))
    assert not quiet[10:].any() and -70 < vad.floor_db < -55  # 1e-3 white noise is -60 dBFS
    voice = vad.push(tone_bursts(0.5, bursts=[(0.1, 0.4)]))
    assert voice[12:38].all() and not voice[45:].any()
    louder = vad.push(tone_bursts(15.0, noise=3e-2))  # the background rises by 30 dB and stays
    assert louder[:50].all() and not louder[-100:].any()  # first taken for voice, then learned as floor
    assert -35 < vad.floor_db < -25
    gate = Gate(window_frames=100, min_voice=5)
    assert not gate.push(np.array([True] * 4)) and gate.push(np.array([True]))
    assert gate.push(np.zeros(95, bool)) and not gate.push(np.zeros(1, bool)) and gate.closed_frames == 96
    assert Gate(window_frames=100, min_voice=5).closed_frames == 100  # nothing heard yet counts as silence
