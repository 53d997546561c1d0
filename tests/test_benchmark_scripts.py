"""Every script committed in benchmarks/ runs, on a tiny input, and prints what its benchmark file reads.

The figures themselves come from the full-size commands in benchmarks/*.md; this only keeps the scripts
from rotting as the package changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_tree

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run(script: str, *args, timeout: int = 600) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p.stdout


def test_every_script_has_a_smoke_test():
    here = Path(__file__).read_text()
    for script in BENCH.glob("*.py"):
        assert f'"{script.name}"' in here, f"benchmarks/{script.name} has no smoke test here"


def test_mkbig(tmp_path):
    src = make_tree(tmp_path / "src", words=["yes", "no"], speakers=3)
    out = run("mkbig.py", src, tmp_path / "big", "--copies", 2)
    assert "12 clips linked" in out
    names = sorted(p.name for p in (tmp_path / "big" / "yes").iterdir())
    assert len(names) == 6 and all("_nohash_" in n for n in names)
    assert (tmp_path / "big" / "yes" / names[0]).stat().st_nlink >= 2  # a hard link, not a copy


def test_cvfolds(tmp_path):
    src = make_tree(tmp_path / "src", words=["yes", "no", "up", "down"], speakers=10)
    test = [f"yes/{p.name}" for p in sorted((src / "yes").iterdir())[:2]]
    (src / "testing_list.txt").write_text("\n".join(test) + "\n")
    out = run("cvfolds.py", "--src", src, "--noise", src / "_background_noise_", "--out", tmp_path / "cv",
              "--folds", 3)
    assert "pool: 38 clips; test list: 2 clips" in out
    folds = [set((tmp_path / "cv" / f"fold{k}" / "validation_list.txt").read_text().split()) for k in range(3)]
    assert sum(map(len, folds)) == 38 and not (folds[0] & folds[1])  # each pool clip validates in one fold


@pytest.fixture(scope="module")
def ablation(tiny_store, tmp_path_factory) -> Path:
    from kws_hpc.measure.ablation import ablate

    out = tmp_path_factory.mktemp("ablate")
    ablate([str(tiny_store)], [("defaults", ["--epochs", "1"]), ("lstm", ["--model", "lstm", "--epochs", "1"])],
           [0], out, jobs=1, log=lambda m: None)
    return out


def test_ablate_pool(ablation):
    out = run("ablate_pool.py", ablation / "ablation.json")
    lines = [line for line in out.splitlines() if line.startswith("| defaults") or line.startswith("| lstm")]
    assert len(lines) == 2 and "| 1 |" in lines[0]


def test_tta(ablation):
    out = run("tta.py", ablation / "runs")
    assert out.count("| gru |") == 1 and out.count("| lstm |") == 1 and "--epochs 1" in out


def test_jobmb(tiny_tree, tmp_path):
    out = run("jobmb.py", tiny_tree, "--rounds", 1, "--sizes", 8, 16, "--workers", 1, "--vocab", "yes,no",
              "--scratch", tmp_path / "scratch")
    assert "workers 1: medians 8:" in out and not (tmp_path / "scratch").exists()


def test_bfstep():
    out = run("bfstep.py", "--rounds", 1, "--steps", 1)
    assert "float32" in out and "bfloat16 autocast" in out and out.strip().endswith("x")


def test_live(tiny_tree, tmp_path):
    out = run("live.py", "--out", tmp_path / "live", "--data", tiny_tree, "--models", "gru", "--seeds", 0,
              "--features-args", "--vocab yes,no,up,down --extras", "--train-args", "--epochs 1",
              "--export-args", "--calibrate-minutes 0.3 --negative-minutes 0.3",
              "--val-minutes", 0.3, 0.3, "--test-minutes", 0.3, 0.3)
    row = json.loads((tmp_path / "live" / "results.jsonl").read_text().splitlines()[-1])
    assert row["family"] == "gru" and 0 <= row["test"]["found"] <= 1 and row["test"]["keywords"] > 0
    assert "| defaults | gru | 1 |" in out


def test_all(tmp_path):
    out = run("all.py", "--out", tmp_path / "all", "--tiny", "--only", "features", "real")
    assert "| feature job vs a per-clip loop" in out and "| real speech, 4 words" in out
    assert json.loads((tmp_path / "all" / "real.json").read_text())["seeds"] == 1
    again = run("all.py", "--out", tmp_path / "all", "--tiny", "--only", "features")  # kept figures: not run again
    assert "features:" not in again and "| feature job" in again


def test_live_folds(tmp_path):
    src = make_tree(tmp_path / "src", words=["yes", "no", "up", "down", "left", "right"], speakers=12)
    test = [f"{w}/{p.name}" for w in ("yes", "no", "up", "down", "left") for p in sorted((src / w).iterdir())[:2]]
    (src / "testing_list.txt").write_text("\n".join(test) + "\n")
    out = run("live_folds.py", "--out", tmp_path / "lf", "--name", "tiny", "--data", src, "--folds", 2,
              "--train-args=--epochs 1", "--minutes", 0.3, 0.3)
    row = json.loads((tmp_path / "lf" / "results.jsonl").read_text())
    assert row["folds"] == 2 and row["keywords"] > 0 and "| tiny | gru | 2 |" in out
    fold0 = tmp_path / "lf" / next(p.name for p in (tmp_path / "lf").glob("folds-*")) / "fold0"
    assert not set((fold0 / "validation_list.txt").read_text().split()) & set(test)
