"""Device choice, seeding and RNG snapshots."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from kws_hpc.errors import KwsError
from kws_hpc.io import save_torch
from kws_hpc.runtime import get_device, rng_state, set_rng_state, set_seed


def test_get_device_choices():
    assert get_device("cpu") == torch.device("cpu")
    auto = get_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto == torch.device("cpu")
    with pytest.raises(KwsError, match="unknown device 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(KwsError, match="CUDA is not available"):
            get_device("cuda")
    if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        with pytest.raises(KwsError, match="MPS is not available"):
            get_device("mps")


def _draws(gen: torch.Generator) -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen))


def test_set_seed_and_rng_snapshots_replay_every_stream():
    try:
        set_seed(7, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        gen = torch.Generator().manual_seed(3)
        first = _draws(gen)
        set_seed(7)
        assert not torch.are_deterministic_algorithms_enabled()
        gen = torch.Generator().manual_seed(3)
        assert _draws(gen) == first
        snap = rng_state(gen)
        later = _draws(gen)
        _draws(gen)
        set_rng_state(snap, gen)
        assert _draws(gen) == later
    finally:
        torch.use_deterministic_algorithms(False)


def test_rng_snapshot_survives_a_weights_only_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(5)
    snap = rng_state(gen)
    expected = _draws(gen)
    save_torch({"rng": snap}, tmp_path / "s.pt")
    assert not list(tmp_path.glob("*.tmp"))
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"], gen)
    assert _draws(gen) == expected


def test_default_threads_share_the_cores_this_process_may_use():
    import subprocess
    import sys

    code = ("import os, torch\n"
            "from kws_hpc.runtime import default_threads, set_threads\n"
            "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            "print(default_threads(), default_threads(4), set_threads(None), torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CPUS_PER_TASK"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["1", "1", "1", "1"], out.stderr  # one allowed core, whatever the machine has
    from kws_hpc.runtime import default_threads

    cores = len(os.sched_getaffinity(0))
    assert default_threads() == cores and default_threads(cores * 2) == 1
    assert default_threads(2) == max(1, cores // 2)
