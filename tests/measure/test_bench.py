"""The benchmarks run and their baselines compute the same features as the store (no timing asserted)."""

import numpy as np

from kws_hpc.measure.bench import bench_features, bench_train, per_clip_features
from kws_hpc.features.store import load_split

from conftest import TINY_WORDS


def test_per_clip_baseline_computes_the_stores_features(tiny_store, tiny_tree):
    test = load_split(tiny_store, "test")
    ours = per_clip_features([tiny_tree / p for p in test.paths[:5]])
    assert np.max(np.abs(ours - test.features[:5])) < 0.02  # float16 storage


def test_feature_and_training_benchmarks_report_figures(tiny_store, tiny_tree, tmp_path):
    row = bench_features(tiny_tree, tmp_path, workers=0, vocab=",".join(TINY_WORDS[:10]), rounds=3)
    assert row["clips"] == row["per_clip_loop_clips"] == 200 and row["speedup"] > 0
    assert len(row["feature_job_s_each"]) == len(row["per_clip_loop_s_each"]) == row["rounds"] == 3
    assert row["feature_job_s"] == round(sorted(row["feature_job_s_each"])[1], 2)  # the median round
    assert list(tmp_path.iterdir()) == []  # every round's scratch store removed
    rows = bench_train(tiny_store, tiny_tree, cells=("gru",), epochs=1, workers=0)
    assert [r["pipeline"] for r in rows] == ["store", "wav_dataloader"]
    assert rows[0]["clips_per_epoch"] == rows[1]["clips_per_epoch"] == 170
    assert rows[0]["speedup"] == round(rows[0]["clips_per_s"] / rows[1]["clips_per_s"], 2)


def test_bench_all_writes_one_table_of_ratios(tiny_store, tiny_tree, tmp_path, capsys):
    from kws_hpc.cli import main

    out = tmp_path / "b"
    assert main(["bench", "all", "--data", str(tiny_tree), "--store", str(tiny_store), "--workers", "0",
                 "--train-epochs", "1", "--loader-workers", "0", "--trials", "1", "--sweep-epochs", "1",
                 "--space", "tiny", "--out", str(out)]) == 0
    table = (out / "all.md").read_text()
    assert table.startswith("| benchmark | figure | compared with | ratio |")
    for what in ("| features | feature job", "| train | gru store batches", "| train | lstm store batches",
                 "| sweep | ", "inference skipped: pass --model"):
        assert what in table
    rows = [line for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1 + 4 + 2 and all('"speedup"' in r for r in rows if '"pipeline": "wav' not in r
                                            and '"workers": 1,' not in r)
