"""The benchmarks run and their baselines compute the same features as the store (no timing asserted)."""

import numpy as np

from kws_hpc.bench import bench_features, bench_train, per_clip_features
from kws_hpc.features.store import load_split

from conftest import TINY_WORDS


def test_per_clip_baseline_computes_the_stores_features(tiny_store, tiny_tree):
    test = load_split(tiny_store, "test")
    ours = per_clip_features([tiny_tree / p for p in test.paths[:5]])
    assert np.max(np.abs(ours - test.features[:5])) < 0.02  # float16 storage


def test_feature_and_training_benchmarks_report_figures(tiny_store, tiny_tree, tmp_path):
    row = bench_features(tiny_tree, tmp_path, workers=0, vocab=",".join(TINY_WORDS[:10]))
    assert row["clips"] == row["per_clip_loop_clips"] == 200 and row["speedup"] > 0
    rows = bench_train(tiny_store, tiny_tree, cells=("gru",), epochs=1, workers=0)
    assert [r["pipeline"] for r in rows] == ["store", "wav_dataloader"]
    assert rows[0]["clips_per_epoch"] == rows[1]["clips_per_epoch"] == 170
