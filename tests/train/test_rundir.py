"""The run folder: the one owner of a run's files, finding runs and choosing the best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kws_hpc.errors import KwsError
from kws_hpc.train.rundir import RunDir, best_run, best_runs, find_runs, load_run


def _run(root: Path, name: str, val=None, test=None, cell="gru", best=True, config=True) -> RunDir:
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    if config:
        run.write_config({"model": {"cell": cell}, "run_signature": name})
    if best:
        run.best.write_bytes(b"weights")
    if val is not None:
        run.write_result({"best_val_acc": val, "test_accuracy": test})
    return run


def test_files_and_state(tmp_path):
    run = _run(tmp_path, "r1")
    assert run.signature == "r1" and run.is_run and not run.done and not run.resumable
    assert [p.name for p in (run.config, run.history, run.best, run.last, run.result, run.predictions)] == \
        ["config.json", "history.json", "best.pt", "last.pt", "result.json", "predictions.npz"]
    run.last.write_bytes(b"x")
    assert run.resumable
    run.write_history([{"epoch": 1}])
    run.write_predictions(y_true=np.arange(3), y_pred=np.arange(3))
    run.write_result({"test_accuracy": 0.5, "best_val_acc": 0.6})
    assert run.done and not run.resumable and run.read_history() == [{"epoch": 1}]
    assert run.read_predictions()["y_pred"].tolist() == [0, 1, 2]
    loaded = load_run(run.path)
    assert loaded["test_accuracy"] == 0.5 and loaded["config"]["run_signature"] == "r1"
    assert loaded["run_dir"] == str(run.path)
    assert not list(tmp_path.rglob("*.tmp"))


def test_load_says_what_is_wrong(tmp_path):
    with pytest.raises(KwsError, match="does not exist"):
        load_run(tmp_path / "nope")
    run = _run(tmp_path, "r")
    with pytest.raises(KwsError, match="has not finished"):
        load_run(run.path)
    run.result.write_text("{not json")
    with pytest.raises(KwsError, match="result.json is unreadable"):
        load_run(run.path)
    assert run.read_result() is None and run.read_predictions() is None


def test_find_runs_any_depth_and_extra(tmp_path):
    _run(tmp_path / "a", "r1", 0.5, 0.5)
    _run(tmp_path / "b" / "c", "r2")
    elsewhere = _run(tmp_path.parent / f"{tmp_path.name}-other", "r3", 0.1, 0.1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("[1, 2]")  # not a run's config
    found = find_runs(tmp_path, extra=[elsewhere.path])
    assert [r.signature for r in found] == ["r1", "r2", "r3"]


def test_best_run_takes_val_accuracy_then_test_accuracy(tmp_path):
    _run(tmp_path, "a", 0.80, 0.99)
    _run(tmp_path, "b", 0.90, 0.70)
    _run(tmp_path, "c", 0.90, 0.75)
    _run(tmp_path, "d", best=True)  # unfinished: not a candidate
    _run(tmp_path, "e", 0.99, 0.99, best=False)  # no checkpoint: cannot be exported
    assert best_run(tmp_path, log=lambda m: None).path.name == "c"
    with pytest.raises(KwsError, match="no finished run"):
        best_run(tmp_path / "d", log=lambda m: None)
    with pytest.raises(KwsError, match="does not exist"):
        best_run(tmp_path / "none", log=lambda m: None)


def test_best_runs_per_key_and_ties_keep_path_order(tmp_path):
    runs = [_run(tmp_path, "g1", 0.9, 0.5, "gru"), _run(tmp_path, "g2", 0.9, 0.5, "gru"),
            _run(tmp_path, "l1", 0.7, 0.9, "lstm"), _run(tmp_path, "l2", 0.8, 0.1, "lstm")]
    cell = {r.path: json.loads(r.config.read_text())["model"]["cell"] for r in runs}
    best = best_runs(reversed(runs), key=lambda r: cell[r.path])
    assert {k: v.signature for k, v in best.items()} == {"gru": "g1", "lstm": "l2"}
