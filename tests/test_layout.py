"""The package's shape: stage packages whose public names resolve and import cheaply. Which stage may
import which is the layer contract in setup.cfg, checked by `lint-imports` (`make test` runs it)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

STAGES = ("data", "features", "train", "evaluate", "launch", "sweep", "report", "deploy", "measure")


@pytest.mark.parametrize("stage", STAGES)
def test_stage_exports_resolve_and_are_not_shadowed_by_submodules(stage):
    pkg = importlib.import_module(f"kws_hpc.{stage}")
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name in dir(pkg):
        assert name not in submodules, f"kws_hpc.{stage}.{name} is both an export and a submodule"
        assert getattr(pkg, name) is not None
    with pytest.raises(AttributeError):
        getattr(pkg, "no_such_name")


def test_importing_the_packages_and_the_cli_pulls_in_no_heavy_library():
    code = ("import sys, kws_hpc.cli; kws_hpc.cli.build_parser(); "
            + "; ".join(f"import kws_hpc.{stage}" for stage in STAGES) + "; "
            "print(sorted(m for m in ('torch', 'optuna', 'onnxruntime', 'matplotlib', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
