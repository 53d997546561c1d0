"""bfloat16 autocast on the CPU: where it runs, what it names, and that evaluation stays float32."""

from __future__ import annotations

import json

import pytest
import torch

from kws_hpc import runtime
from kws_hpc.config import RunConfig, TrainConfig, from_dict, to_dict
from kws_hpc.train import load_run, train
from kws_hpc.train.evaluate import evaluate_checkpoint

from test_loop import _one_thread, quiet, tiny_cfg, weights  # noqa: F401  (_one_thread: autouse fixture)

NATIVE = runtime.native_bf16()


def _config(run) -> dict:
    return json.loads((run / "config.json").read_text())["train"]


@pytest.mark.skipif(not NATIVE, reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_bf16_trains_in_bfloat16_is_deterministic_and_evaluates_in_float32(tiny_store, tmp_path):
    logs = []
    runs = [train(tiny_cfg(tiny_store, deterministic=True, bf16=True), out=tmp_path / name, log=logs.append,
                  progress=False) for name in ("a", "b")]
    plain = train(tiny_cfg(tiny_store, deterministic=True, bf16=False), out=tmp_path / "c", log=quiet,
                  progress=False)
    assert runs[0].name == runs[1].name != plain.name and _config(runs[0])["bf16"] and not _config(plain)["bf16"]
    assert any("(bfloat16 autocast)" in m for m in logs)
    a, b, c = (load_run(r) for r in (*runs, plain))
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert all(torch.equal(weights(runs[0] / "best.pt")[k], v) for k, v in weights(runs[1] / "best.pt").items())
    assert a["history"][0]["train_loss"] != c["history"][0]["train_loss"]  # the forward pass was bfloat16
    assert all(v.dtype == torch.float32 for v in weights(runs[0] / "best.pt").values() if v.is_floating_point())
    assert evaluate_checkpoint(runs[0], tiny_store)["accuracy"] == a["test_accuracy"]  # evaluated in float32


def test_bf16_is_float32_where_the_cpu_lacks_it_and_the_run_says_so(tiny_store, tmp_path, monkeypatch):
    plain = train(tiny_cfg(tiny_store, bf16=False, epochs=1), out=tmp_path, log=quiet, progress=False)
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    logs = []
    asked = train(tiny_cfg(tiny_store, bf16=True, epochs=1), out=tmp_path, log=logs.append, progress=False)
    assert asked == plain and logs == [f"run {plain.name} is done: {plain}"]  # the float32 run it is
    assert not _config(plain)["bf16"]


def test_configs_written_before_bf16_read_as_float32_and_keep_their_signature():
    from kws_hpc.config import _without_neutral

    old = {k: v for k, v in to_dict(TrainConfig()).items() if k != "bf16"}
    assert from_dict(TrainConfig, old).bf16 is False
    assert "bf16" not in _without_neutral(TrainConfig(bf16=False))  # float32 runs keep their old folders
    on, off = (RunConfig(store="s", train=TrainConfig(bf16=b)).signature("x") for b in (True, False))
    assert on != off
