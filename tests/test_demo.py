"""`kws-hpc demo` end to end at a tiny size, and a re-run that reuses what is done."""

import json
import shutil
from pathlib import Path

import pytest

from kws_hpc.demo import DemoConfig, run_demo

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") or shutil.which("flite")),
                                reason="no speech synthesizer (apt-get install espeak-ng flite)")


def test_demo_runs_every_stage_and_reuses_them(tmp_path):
    cfg = DemoConfig(speakers=20, trials=1, sweep_epochs=1, retrain_epochs=1, negative_minutes=2.0,
                     calibration_minutes=(1.0, 2.0), det_minutes=(0.5, 1.0))
    lines = []
    where = run_demo(tmp_path / "demo", cfg, log=lines.append)
    for key in ("report", "model", "stream", "truth", "live", "negative_stream", "live_negative"):
        assert Path(where[key]).is_file(), key
    assert set(where["best"]) == {"gru", "lstm"}
    live = json.loads(Path(where["live"]).read_text())
    assert live["score"]["keywords"] > 0
    negative = json.loads(Path(where["live_negative"]).read_text())
    assert negative["score"]["keywords"] == 0 and negative["score"]["hit_rate"] is None
    assert negative["score"]["false_alarms"] == len(negative["detections"])
    assert negative["seconds"] == pytest.approx(120.0)
    s, n = live["score"], negative["score"]
    assert f"hits: {s['hits']} of {s['keywords']} keywords" in "\n".join(lines)
    assert f"false alarms: {n['false_alarms']} in 2 min without keywords ({n['fa_per_hour']:.1f} per hour)" in lines
    assert any(line.startswith("threshold ") and "calibrated to a budget of 2 false alarms per hour" in line
               for line in lines)
    assert "Live detection: misses vs false alarms per hour" in Path(where["report"]).read_text()
    assert (tmp_path / "demo" / "demo.json").is_file()
    assert any("Open first" in line for line in lines)

    again = []
    run_demo(tmp_path / "demo", cfg, log=again.append)
    assert any("nothing recomputed" in line for line in again)
    best = {m: json.loads((Path(r) / "result.json").read_text()) for m, r in where["best"].items()}
    assert all(b["epochs_run"] == 1 for b in best.values())
