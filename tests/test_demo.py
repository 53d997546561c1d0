"""`kws-hpc demo` end to end at a tiny size, and a re-run that reuses what is done."""

import json
import shutil
from pathlib import Path

import pytest

from kws_hpc.demo import DemoConfig, run_demo

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") or shutil.which("flite")),
                                reason="no speech synthesizer (apt-get install espeak-ng flite)")


def test_demo_runs_every_stage_and_reuses_them(tmp_path):
    cfg = DemoConfig(speakers=20, trials=1, sweep_epochs=1, retrain_epochs=1)
    lines = []
    where = run_demo(tmp_path / "demo", cfg, log=lines.append)
    for key in ("report", "model", "stream", "truth", "live"):
        assert Path(where[key]).is_file(), key
    assert set(where["best"]) == {"gru", "lstm"}
    live = json.loads(Path(where["live"]).read_text())
    assert live["score"]["keywords"] > 0
    assert (tmp_path / "demo" / "demo.json").is_file()
    assert any("Open first" in line for line in lines)

    again = []
    run_demo(tmp_path / "demo", cfg, log=again.append)
    assert any("nothing recomputed" in line for line in again)
    best = {m: json.loads((Path(r) / "result.json").read_text()) for m, r in where["best"].items()}
    assert all(b["epochs_run"] == 1 for b in best.values())
