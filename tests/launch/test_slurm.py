"""A real single-node Slurm (jobs/slurm_local.sh): a sweep as one job array, and a pre-empted run that resumes.

Skipped, with the reason, only where Slurm cannot run: no sbatch, not root, or the cluster does not start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kws_hpc import launch as L
from kws_hpc import sweep as S
from kws_hpc.cli import main

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jobs" / "slurm_local.sh"


def _sh(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def slurm():
    """Start the single-node cluster (stopping it afterwards only if it was not running before)."""
    if shutil.which("sbatch") is None:
        pytest.skip("no sbatch on PATH: apt-get install slurmctld slurmd slurm-client munge, "
                    "then jobs/slurm_local.sh start")
    if os.geteuid() != 0:
        pytest.skip("not root: jobs/slurm_local.sh needs root to start munged, slurmctld and slurmd")
    was_up = _sh("status").returncode == 0
    started = _sh("start", env={**os.environ, "SLURM_LOCAL_NO_INSTALL": "1"})
    if started.returncode != 0:
        tail = " | ".join((started.stdout + started.stderr).strip().splitlines()[-3:])
        pytest.skip(f"cannot start the single-node Slurm: {tail}")
    yield
    if not was_up:
        stopped = _sh("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert _leftovers() == [], f"still running after stop: {_leftovers()}"
        assert "not running" in _sh("stop").stdout  # a second stop finds nothing


def _leftovers() -> list:
    """Live (not zombie) Slurm daemons and job steps on this machine."""
    ps = subprocess.run(["ps", "-eo", "stat=,comm="], capture_output=True, text=True).stdout.split("\n")
    return [line.split()[1] for line in ps if line.strip() and not line.split()[0].startswith("Z")
            and line.split()[1].startswith(("slurmctld", "slurmd", "slurmstepd"))]


def _squeue(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def test_sweep_runs_as_one_slurm_job_array(slurm, tiny_store, tmp_path, capsys):
    out, logs = tmp_path / "runs", tmp_path / "jobs"
    code = main(["sweep", "run", "--store", str(tiny_store), "--model", "gru", "--trials", "2", "--workers", "2",
                 "--space", "tiny", "--epochs", "1", "--out", str(out), "--executor", "slurm",
                 "--profile", "slurm_local", "--log-dir", str(logs), "--device", "cpu"])
    assert code == 0
    assert "as Slurm job array" in capsys.readouterr().out
    name = S.study_name("gru", tiny_store)
    storage = L.open_storage(L.default_storage(out))
    trials = storage.get_all_trials(S.study_id(storage, name))
    c = S.counts(trials)
    assert c["COMPLETE"] + c["PRUNED"] == 2 and c["RUNNING"] == 0, c
    script = next(logs.glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%" in script and "#SBATCH --partition=debug" in script
    assert f"{sys.executable} -u -m submitit.core._submit" in script  # the project's venv python
    worker_logs = sorted(logs.glob("*_*_0_log.out"))
    assert len(worker_logs) == 2 and all("worker" in p.read_text() for p in worker_logs)
    for t in trials:
        assert Path(t.user_attrs["run"], "config.json").is_file()


def test_preempted_training_job_is_requeued_and_resumes(slurm, tiny_store, tmp_path):
    from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
    from kws_hpc.train.loop import run_dir, train

    cfg = RunConfig(store=str(tiny_store), model=ModelConfig(hidden=8, layers=1),
                    train=TrainConfig(epochs=6, patience=100, batch_size=32, device="cpu"))
    run = run_dir(cfg, tmp_path / "runs")
    job = L.JobOptions("slurm", profile="slurm_local", log_dir=str(tmp_path / "jobs"), wait=False)
    handle = L.submit(train, cfg, out=str(tmp_path / "runs"), progress=False, job=job, echo=lambda m: None)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_history(run)) < 2:
            assert _squeue(handle.job_id), "the job left the queue early: " + handle.stderr()
            time.sleep(0.2)
        assert 2 <= len(_history(run)) < 6
        subprocess.run(["scancel", "--signal=USR2", handle.job_id], check=True)  # as a pre-emption does
        L.wait(handle, poll=0.5)  # requeued by the job itself, restarts after cred_expire
        assert L.result(handle) == run
        assert [h["epoch"] for h in _history(run)] == list(range(1, 7))
        assert "this job is preempted" in handle.stderr()
        assert "resuming run" in handle.stdout()
    finally:  # on this single-node Slurm the requeued step's srun can outlive the finished job and hold a CPU
        subprocess.run(["scancel", handle.job_id], check=False)


def _history(run: Path) -> list:
    try:
        return json.loads((run / "history.json").read_text())
    except (OSError, ValueError):
        return []


def test_train_report_and_export_run_as_slurm_jobs(slurm, tiny_store, tmp_path, capsys):
    from test_executors import stages_as_jobs

    said = stages_as_jobs(tiny_store, tmp_path, ["--executor", "slurm", "--profile", "slurm_local"], capsys)
    run = Path(said["train"])
    assert (run / "result.json").is_file() and Path(said["report"]).is_file() and Path(said["export"]).is_file()
    for stage, name in (("train", "kws-train"), ("report", "kws-report"), ("export", "kws-export")):
        assert f"submitted {name} as slurm job" in said[stage + "_all"], stage
    scripts = sorted((tmp_path / "jobs").glob("*_submission.sh"))
    assert len(scripts) == 3 and all("#SBATCH --partition=debug" in p.read_text() for p in scripts)
    assert any("1 CPU thread(s)" in p.read_text() for p in (tmp_path / "jobs").glob("*_log.out"))  # the train log
