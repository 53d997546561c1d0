"""The package's shape: one subpackage per stage, small modules, package names that import cheaply."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kws_hpc

PACKAGE = Path(kws_hpc.__file__).parent
STAGES = ("data", "features", "train", "evaluate", "launch", "sweep", "report", "deploy", "measure")


def test_one_subpackage_per_stage_and_small_modules():
    subpackages = {m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if m.ispkg}
    assert set(STAGES) <= subpackages
    too_long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
                if (n := len(p.read_text().splitlines())) > 350}
    assert not too_long


@pytest.mark.parametrize("stage", STAGES)
def test_stage_exports_resolve_and_are_not_shadowed_by_submodules(stage):
    pkg = importlib.import_module(f"kws_hpc.{stage}")
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name in dir(pkg):
        assert name not in submodules, f"kws_hpc.{stage}.{name} is both an export and a submodule"
        assert getattr(pkg, name) is not None
    with pytest.raises(AttributeError):
        getattr(pkg, "no_such_name")


def test_importing_the_package_and_the_cli_pulls_in_no_heavy_library():
    code = ("import sys, kws_hpc.cli, kws_hpc.train, kws_hpc.sweep, kws_hpc.deploy; kws_hpc.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'optuna', 'onnxruntime', 'matplotlib', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_commands_hold_no_orchestration():
    """A command parses, calls library functions and prints: no loops over jobs, no submitit, no cli.main."""
    for path in (PACKAGE / "commands").glob("*.py"):
        text = path.read_text()
        for word in ("submit_array(", "wait(", "cli import main", "for h in handles"):
            assert word not in text, f"{path.name} does {word!r} itself"
    assert "cli import main" not in (PACKAGE / "demo.py").read_text()
