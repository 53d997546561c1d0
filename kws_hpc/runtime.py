"""Where and how reproducibly a run executes: device choice, seeding, determinism, RNG snapshots.

`set_seed` always seeds python, numpy and torch (a seed is part of every run signature);
`deterministic=True` adds the strict flags, which make two CPU runs bit-identical and CUDA runs as
deterministic as cuDNN/cuBLAS allow. MPS cannot be made deterministic; asking for it warns.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import warnings

import numpy as np
import torch

from kws_hpc.errors import KwsError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is missing is a KwsError."""
    name = (name or "auto").lower()
    base = name.split(":")[0]
    if base not in DEVICES:
        raise KwsError(f"unknown device {name!r}: use one of {', '.join(DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise KwsError("device cuda was requested but CUDA is not available here; use --device auto or cpu")
    if base == "mps" and not _mps_available():
        raise KwsError("device mps was requested but MPS is not available here; use --device auto or cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True on a CPU that computes bfloat16 itself (x86 AVX512-BF16 or AMX-BF16, from /proc/cpuinfo);
    elsewhere bfloat16 autocast is emulated and no faster than float32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def as_run(cfg):
    """A RunConfig as it runs here: `bf16` holds only on a CPU device that computes bfloat16 natively, so
    elsewhere the run is float32 and its signature and config.json say so."""
    if cfg.train.bf16 and not (get_device(cfg.train.device).type == "cpu" and native_bf16()):
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, bf16=False))
    return cfg


def set_seed(seed: int, deterministic: bool = False, device: torch.device | str | None = None) -> None:
    """Seed python, numpy and torch (all CUDA devices too); `deterministic` adds the strict flags.

    The strict flags are set both ways, so a non-deterministic run after a deterministic one in the
    same process (a sweep worker, say) gets the fast kernels back.
    """
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible matmuls; read when its handle is created
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    mps = device is not None and torch.device(device).type == "mps"
    warn_only = deterministic and mps  # MPS lacks deterministic kernels for some ops: warn, do not fail
    now = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if now != (deterministic, warn_only):  # only on change: the call imports torch._inductor (seconds)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if deterministic and mps:
        warnings.warn("MPS has no deterministic mode: runs on mps are seeded but not bit-identical; "
                      "use --device cpu for bit-identical runs", RuntimeWarning, stacklevel=2)


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Snapshot of every random stream a run draws from, in types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generator": generator.get_state() if generator is not None else None,
    }


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restore what `rng_state` captured (CUDA states only where CUDA is present)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])


def set_threads(threads: int | None, jobs: int = 1) -> int:
    """torch's CPU threads (`--threads`); None: `default_threads(jobs)`. Returns the number set."""
    if threads is None:
        threads = default_threads(jobs)
    if threads < 1:
        raise KwsError(f"--threads {threads} must be >= 1")
    torch.set_num_threads(threads)
    return threads


def default_threads(jobs: int = 1) -> int:
    """The cores this process may use shared between the `jobs` it runs at once (at least one each):
    torch's own default counts every core of the machine, and two trainings that each take them all
    run far slower side by side than with a share each."""
    return max(1, available_cpus() // max(1, jobs))


def available_cpus() -> int:
    """Cores this process may use (a Slurm allocation, an affinity mask), not all of the node's."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_stop = False  # set by a job's pre-emption handler (kws_hpc.launch.executors._guard_preemption)


def request_stop(on: bool = True) -> None:
    """Ask the training loop to end this process after its next checkpoint (`on=False` clears it)."""
    global _stop
    _stop = on


def stop_requested() -> bool:
    return _stop
