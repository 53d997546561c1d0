"""Cluster profiles: small TOML files under jobs/ (partition, GPUs, CPUs, memory, time limit, array
parallelism, setup lines) that `--profile NAME` picks; their keys are checked before anything is submitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from kws_hpc.defaults import find_default
from kws_hpc.errors import KwsError

EXECUTORS = ("local", "slurm", "debug")

# Keys a profile may hold: generic ones submitit translates for every backend, and Slurm-only ones.
GENERIC = ("timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb", "nodes", "tasks_per_node")
SLURM_ONLY = ("partition", "array_parallelism", "setup", "signal_delay_s", "account", "qos", "constraint",
              "exclude", "comment", "gres", "exclusive", "srun_args", "use_srun", "additional_parameters")
LOCAL_ONLY = ("setup",)
DEFAULTS = {"timeout_min": 24 * 60}  # submitit's local jobs otherwise time out after 2 minutes


def find_profile(name: str) -> Path:
    """A profile file: NAME as a path, ./jobs/NAME(.toml), or the packaged jobs/NAME(.toml)."""
    return find_default("jobs", name, what="job profile")


def load_profile(name: Optional[str], executor: Optional[str] = None) -> dict:
    """The profile as a dict; without a name, jobs/<executor>.toml when it exists, else the defaults."""
    import tomllib

    if name is None:
        try:
            path = find_profile(executor) if executor else None
        except KwsError:
            path = None
        if path is None:
            return dict(DEFAULTS)
    else:
        path = find_profile(name)
    try:
        prof = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KwsError(f"job profile {path} is not valid TOML: {e}") from None
    known = set(GENERIC) | set(SLURM_ONLY) | {"executor", "description"}
    bad = sorted(set(prof) - known)
    if bad:
        raise KwsError(f"job profile {path}: unknown key(s) {', '.join(bad)}; "
                       f"known: {', '.join(sorted(known))}")
    if prof.get("executor") not in (None, *EXECUTORS):
        raise KwsError(f"job profile {path}: executor {prof['executor']!r} is not one of "
                       f"{', '.join(EXECUTORS)}")
    return {**DEFAULTS, **prof, "_path": str(path)}
