"""`kws-hpc bench ablate`: variants x seeds x stores trained for real, one table of mean +- std."""

import json

import pytest

from kws_hpc.measure.ablation import parse_variant, table
from kws_hpc.cli import main
from kws_hpc.errors import KwsError


def test_variants_parse_and_the_table_reports_mean_and_sample_std():
    assert parse_variant("cosine=--schedule cosine --lr 0.002") == ("cosine", ["--schedule", "cosine", "--lr", "0.002"])
    assert parse_variant("defaults") == ("defaults", [])
    with pytest.raises(KwsError, match="NAME=FLAGS"):
        parse_variant("=--lr 1")
    rows = [{"store": "/s/real", "variant": "a", "flags": "", "seed": k, "val": v, "test": t, "train_s": 60.0}
            for k, (v, t) in enumerate([(0.90, 0.80), (0.92, 0.82), (0.94, 0.84)])]
    md = table(rows)
    assert "| a | `defaults` | 92.00 +- 2.00 | 82.00 +- 2.00 | 1.0 |" in md and "real val" in md


def test_an_ablation_trains_every_variant_and_seed_once(tiny_store, tmp_path, capsys):
    argv = ["bench", "ablate", "--store", str(tiny_store), "--seeds", "0", "1", "--out", str(tmp_path / "a"),
            "--runs", str(tmp_path / "runs"),
            "--variant", "small=--hidden 8 --layers 1 --epochs 1", "--variant", "defaults=--hidden 16 --layers 1 "
            "--epochs 1"]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "a" / "ablation.json").read_text())
    assert [(r["variant"], r["seed"]) for r in rows] == [("small", 0), ("small", 1), ("defaults", 0), ("defaults", 1)]
    assert len({r["run"] for r in rows}) == 4 and all(0 <= r["val"] <= 1 and r["epochs"] == 1 for r in rows)
    assert "| small | `--hidden 8 --layers 1 --epochs 1` |" in (tmp_path / "a" / "ablation.md").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # again: every run is found finished, the same table
    assert json.loads((tmp_path / "a" / "ablation.json").read_text())[0]["val"] == rows[0]["val"]
    assert main(["bench", "ablate", "--store", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize("flags, why", [("--lr abc", "invalid float"), ("--dropout 1.5", "dropout"),
                                        ("--seed 3", "recipe flags only"), ("--out x", "recipe flags only")])
def test_a_bad_variant_is_one_line_before_anything_trains(tiny_store, tmp_path, capsys, flags, why):
    out = tmp_path / "a"
    assert main(["bench", "ablate", "--store", str(tiny_store), "--out", str(out), "--variant", f"x={flags}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--variant x" in err[0] and why in err[0]
    assert not out.exists()

