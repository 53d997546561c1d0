"""Calibration by a false-alarm budget: the rule on constructed DET tables, and what the exported file keeps."""

from __future__ import annotations

import math

import pytest

from kws_hpc.cli import main
from kws_hpc.deploy.onnx_model import load_exported
from kws_hpc.evaluate.scoring import DetPoint, miss_at, pick_by_budget


def table(*rows) -> list[DetPoint]:
    return [DetPoint(*r) for r in rows]


def test_budget_met_by_several_picks_the_lowest_miss_then_the_fewest_false_alarms():
    curve = table((0.5, 0.05, 10.0), (0.6, 0.08, 4.0), (0.7, 0.10, 2.0), (0.8, 0.10, 1.0), (0.9, 0.30, 0.0))
    assert pick_by_budget(curve, 2.0) == (curve[3], True)  # 0.7 and 0.8 miss as few; 0.8 fires less
    assert pick_by_budget(curve, 4.0) == (curve[1], True)
    assert pick_by_budget(curve, 100.0) == (curve[0], True)
    assert pick_by_budget(curve, 0.0) == (curve[4], True)
    assert miss_at(curve, 2.0).miss_rate == 0.10 and miss_at(curve, 0.5).threshold == 0.9


def test_budget_met_by_none_takes_the_fewest_false_alarms():
    curve = table((0.5, 0.05, 20.0), (0.6, 0.10, 8.0), (0.7, 0.20, 6.0), (0.8, 0.40, 6.0), (0.9, 0.50, 6.0))
    assert pick_by_budget(curve, 2.0) == (curve[2], False)  # fewest false alarms, then the fewest misses
    assert miss_at(curve, 2.0) is None


def test_ties_go_to_the_middle_of_the_widest_run():
    curve = table((0.5, 0.05, 3.0), (0.6, 0.10, 1.0), (0.7, 0.10, 1.0), (0.8, 0.20, 0.0),
                  (0.9, 0.10, 1.0), (0.95, 0.10, 1.0), (0.97, 0.10, 1.0), (0.99, 0.50, 0.0))
    # seven thresholds meet 2/h; the lowest miss (0.10) at 1/h holds two runs: 0.6-0.7 and 0.9-0.97
    assert pick_by_budget(curve, 2.0) == (curve[5], True)
    flat = table((0.5, 0.2, 0.0), (0.6, 0.2, 0.0), (0.7, 0.2, 0.0), (0.8, 0.2, 0.0))
    assert pick_by_budget(flat, 2.0)[0].threshold == 0.7  # four alike: the upper middle
    nothing = table((0.5, 0.3, 9.0), (0.6, 0.4, 9.0), (0.7, 0.5, 9.0))
    assert pick_by_budget(nothing, 1.0) == (nothing[0], False)  # equal false alarms: the fewest misses


def test_exported_file_keeps_the_budget_threshold_and_validation_figures(exported):
    model = load_exported(exported)
    c = model.meta["calibration"]
    assert c["method"] == "validation_streams" and c["fa_per_hour_budget"] == 2.0 and c["split"] == "val"
    assert c["threshold"] == model.detector.threshold
    assert c["positive"]["minutes"] == 0.5 and c["negative"]["minutes"] == 1.0
    assert c["positive"]["keywords"] > 0 and c["negative"]["events"]["keyword"] == 0
    assert c["miss_rate"] == pytest.approx(1 - c["hit_rate"])
    assert c["fa_per_hour"] == pytest.approx(c["negative"]["false_alarms"] * 60.0)  # 1 min: 60 per hour each
    curve = [DetPoint(*row) for row in c["curve"]]
    point, met = pick_by_budget(curve, 2.0)
    assert (point.threshold, met) == (c["threshold"], c["budget_met"])
    if met:
        assert c["fa_per_hour"] <= 2.0
    else:
        assert c["fa_per_hour"] == min(p.fa_per_hour for p in curve)


def test_export_cli_budget_moves_the_threshold(tiny_run, tmp_path, capsys):
    thresholds = {}
    for budget in ("0", "100000"):
        out = tmp_path / f"m{budget}.onnx"
        assert main(["export", str(tiny_run), "--out", str(out), "--calibrate-minutes", "0.5",
                     "--negative-minutes", "0.5", "--fa-per-hour", budget]) == 0
        text = capsys.readouterr().out
        assert f"budget of {budget} false alarms/h" in text
        c = load_exported(out).meta["calibration"]
        assert c["fa_per_hour_budget"] == float(budget)
        thresholds[budget] = c["threshold"]
        if c["budget_met"]:
            assert c["fa_per_hour"] <= float(budget)
        else:
            assert "no threshold keeps false alarms within" in text
    assert thresholds["100000"] <= thresholds["0"]
    loose = load_exported(tmp_path / "m100000.onnx").meta["calibration"]
    assert loose["miss_rate"] == min(row[1] for row in loose["curve"] if not math.isnan(row[1]))
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "x.onnx"), "--fa-per-hour", "-1"]) == 2


def test_without_a_negative_stream_false_alarms_are_counted_on_the_keyword_stream(tiny_run, tmp_path):
    from kws_hpc.deploy.export import export_checkpoint

    lines: list = []
    out = export_checkpoint(tiny_run, tmp_path / "m.onnx", calibrate_minutes=0.5, negative_minutes=0,
                            fa_per_hour=5.0, log=lines.append)
    c = load_exported(out).meta["calibration"]
    assert c["method"] == "validation_streams" and c["fa_per_hour_budget"] == 5.0
    assert "none asked" in c["negative"]["skipped"] and c["fa_per_hour"] == c["positive"]["fa_per_hour"]
    assert any("on a 0.5-min keyword validation stream" in line for line in lines)
