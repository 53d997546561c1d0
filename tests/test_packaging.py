"""A wheel built from the checkout carries the default search spaces and job profiles."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True, capture_output=True)
    return next(out.glob("kws_hpc-*.whl"))


def test_wheel_holds_the_defaults(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("jobs/local.toml", "jobs/slurm.toml", "jobs/debug.toml", "sweeps/default.toml",
                 "sweeps/demo.toml", "sweeps/tiny.toml"):
        assert f"kws_hpc/defaults/{name}" in names


@pytest.mark.slow
def test_installed_wheel_sweeps_from_a_bare_folder(wheel, tiny_store, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    bare = tmp_path / "bare"  # no sweeps/ or jobs/ here: the packaged defaults are found
    bare.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import kws_hpc; print(kws_hpc.__file__)"], cwd=bare, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    cmd = [sys.executable, "-m", "kws_hpc", "sweep", "run", "--store", str(tiny_store), "--model", "gru",
           "--trials", "1", "--workers", "1", "--epochs", "1", "--executor", "debug", "--profile", "local",
           "--device", "cpu", "--out", "runs"]
    done = subprocess.run(cmd, cwd=bare, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "COMPLETE" in done.stdout and (bare / "runs" / "studies.journal").is_file()
    helped = subprocess.run([sys.executable, "-m", "kws_hpc", "sweep", "run", "--help"], cwd=bare, env=env,
                            capture_output=True, text=True, check=True).stdout
    flat = "".join(helped.split())  # argparse wraps long paths (at hyphens too)
    assert "default,demo,tinyin" in flat and str(site).replace(" ", "") in flat
    bad = subprocess.run(cmd[:-2] + ["--profile", "nope", "--out", "runs"], cwd=bare, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "local" in bad.stderr and "slurm" in bad.stderr
