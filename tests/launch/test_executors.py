"""Jobs: profiles under jobs/, executors, real local submitit jobs, and a time-out that requeues a run."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import time
from pathlib import Path

import pytest

from kws_hpc import launch as L
from kws_hpc.cli import main
from kws_hpc.options import add_job_args, job_options
from kws_hpc.errors import KwsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "jobs").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_profiles_load(path):
    prof = L.load_profile(str(path))
    assert prof["executor"] in L.EXECUTORS and prof["timeout_min"] > 0
    assert L.load_profile(path.stem)["_path"] == str(L.find_profile(path.stem))


def test_profile_errors_are_clear(tmp_path):
    with pytest.raises(KwsError, match="no job profile 'nope'"):
        L.load_profile("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("partition = 'x'\ngpu = 1\n")
    with pytest.raises(KwsError, match="unknown key.*gpu"):
        L.load_profile(str(bad))
    bad.write_text("partition = [\n")
    with pytest.raises(KwsError, match="not valid TOML"):
        L.load_profile(str(bad))
    assert L.load_profile(None) == L.DEFAULTS  # no name and no jobs/<executor>.toml: the defaults


def test_executor_takes_its_parameters_from_the_profile(tmp_path):
    ex = L.make_executor("local", L.load_profile("local"), tmp_path / "logs", name="t")
    assert ex.cluster == "local" and ex._executor.parameters["timeout_min"] == 1440
    assert Path(ex.folder) == (tmp_path / "logs").resolve()
    assert L.make_executor("debug", None, tmp_path).cluster == "debug"
    with pytest.raises(KwsError, match="unknown executor"):
        L.make_executor("cloud", None, tmp_path)


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="no sbatch on PATH (Slurm client not installed)")
def test_slurm_profile_becomes_sbatch_options(tmp_path):
    ex = L.make_executor("slurm", L.load_profile("slurm"), tmp_path, name="kws-train")
    text = ex._executor._make_submission_file_text("python -c pass", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=32GB", "#SBATCH --time=240", "#SBATCH --job-name=kws-train",
                 "#SBATCH --signal=USR2@120", "export PYTHONUNBUFFERED=1"):
        assert line in text, line
    assert "python -c pass" in text


def test_task_pickles_and_checkpoints_as_itself():
    task = L.Task(max, 3, 7, key=None)
    again = pickle.loads(pickle.dumps(task))
    assert again() == 7
    task.threads = 1
    delayed = task.checkpoint()
    assert isinstance(delayed.function, L.Task) and delayed.function() == 7 and delayed.args == ()
    assert delayed.function.threads == 1


def test_submit_runs_here_in_debug_and_as_a_local_job(tmp_path):
    logs = []
    assert L.submit(max, 2, 5) == 5  # no executor: a plain call
    debug = L.JobOptions("debug", log_dir=str(tmp_path))
    assert L.submit(dict, log=1, job=debug, echo=logs.append) == {"log": 1}  # a stage's log= passes through
    assert L.submit(max, 2, 5, job=L.JobOptions("debug", log_dir=str(tmp_path)), echo=logs.append) == 5
    assert L.submit(max, 2, 5, job=L.JobOptions("local", log_dir=str(tmp_path), name="t"), echo=logs.append) == 5
    assert any("submitted t as local job" in m for m in logs)
    handle = L.submit(max, 1, 2, job=L.JobOptions("local", log_dir=str(tmp_path), wait=False), echo=logs.append)
    L.wait(handle)
    assert L.result(handle) == 2


def test_failed_job_is_one_line_naming_its_log(tmp_path):
    with pytest.raises(KwsError, match=r"job \d+ failed: .*KwsError: no job profile 'nope'.* \(log: .*_log.err\)"):
        L.submit(L.load_profile, "nope", job=L.JobOptions("local", log_dir=str(tmp_path)), echo=lambda m: None)


def test_job_array_of_local_jobs(tmp_path):
    handles = L.submit_array(max, [(1, 2), (5, 3), (0, 0)], L.JobOptions("local", log_dir=str(tmp_path)),
                             log=lambda m: None)
    L.wait(handles, poll=0.2)
    assert [L.result(h) for h in handles] == [2, 5, 0]


def test_executor_options_on_a_command_line(tmp_path):
    p = argparse.ArgumentParser()
    add_job_args(p)
    args = p.parse_args([])
    assert job_options(args, tmp_path, "train") == L.JobOptions(None, None, str(tmp_path / "jobs"), "train")
    args = p.parse_args(["--profile", "slurm_local", "--log-dir", "L", "--no-wait"])
    job = job_options(args, tmp_path, "train")
    assert (job.executor, job.profile, job.log_dir, job.wait) == ("slurm", "slurm_local", "L", False)


def test_timed_out_training_job_is_requeued_and_resumes(tiny_store, tmp_path):
    """SIGUSR2 checkpoints the job (the same call) and requeues it; train() resumes from last.pt."""
    from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
    from kws_hpc.train.loop import run_dir, train

    cfg = RunConfig(store=str(tiny_store), model=ModelConfig(hidden=8, layers=1),
                    train=TrainConfig(epochs=6, patience=100, batch_size=32, device="cpu"))
    run = run_dir(cfg, tmp_path / "runs")
    profile = tmp_path / "one-core.toml"
    profile.write_text('executor = "local"\ntimeout_min = 30\ncpus_per_task = 1\n')
    job = L.JobOptions("local", profile=str(profile), log_dir=str(tmp_path / "jobs"), wait=False)
    handle = L.submit(train, cfg, out=str(tmp_path / "runs"), progress=False, job=job, echo=lambda m: None)
    deadline = time.time() + 120
    while time.time() < deadline and len(_history(run)) < 2:
        assert not handle.done(), handle.stderr()
        time.sleep(0.1)
    assert 2 <= len(_history(run)) < 6, "the job should be stopped mid-run"
    _signal_task(handle, signal.SIGUSR2)  # what Slurm sends the job on a time-out or pre-emption
    L.wait(handle, poll=0.2)
    assert L.result(handle) == run
    assert [h["epoch"] for h in _history(run)] == list(range(1, 7))
    out = handle.stdout() + handle.stderr()
    assert "this job is timed-out" in out or "this job is preempted" in out
    assert "resuming run" in out and (run / "result.json").is_file()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exit, on purpose
def test_a_preemption_whose_exit_is_lost_still_ends_training_after_the_next_checkpoint(tiny_store, tmp_path):
    """submitit's handler exits by raising SystemExit where the main thread is; raised in a finalizer, Python
    prints it and drops it. The guard a Task puts around the handler makes the loop leave after its checkpoint."""
    from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
    from kws_hpc.launch.executors import Task
    from kws_hpc.train.loop import run_dir, train

    class Finalizer:
        def __del__(self):
            raise SystemExit(-1)  # printed as "Exception ignored in ...", then dropped

    calls = []

    def submitit_like(signum, frame):  # checkpoint and requeue left out: the exit is what is lost
        calls.append(signum)
        Finalizer()

    cfg = RunConfig(store=str(tiny_store), model=ModelConfig(hidden=8, layers=1),
                    train=TrainConfig(epochs=3, patience=100, batch_size=32, device="cpu"))
    run, quiet = run_dir(cfg, tmp_path), dict(out=str(tmp_path), progress=False, log=lambda m: None)
    before = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        with pytest.raises(SystemExit):
            Task(train, cfg, on_epoch=lambda epoch, _: os.kill(os.getpid(), signal.SIGUSR2), **quiet)()
        assert calls == [signal.SIGUSR2] and (run / "last.pt").is_file()
        assert [h["epoch"] for h in _history(run)] == [1]  # it left after epoch 1's checkpoint
        assert Task(train, cfg, **quiet)() == run  # the next job resumes: the request does not outlive its job
        assert [h["epoch"] for h in _history(run)] == [1, 2, 3] and calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


def _signal_task(handle, sig) -> None:
    """Signal the job's task process (the child of submitit's local controller), as Slurm would."""
    ctl = handle._process.pid
    children = Path(f"/proc/{ctl}/task/{ctl}/children").read_text().split()
    assert children, "the local job has no running task"
    os.kill(int(children[0]), sig)


def _history(run: Path) -> list:
    try:
        return json.loads((run / "history.json").read_text())
    except (OSError, ValueError):
        return []


def test_local_array_tasks_share_the_cores_instead_of_each_taking_all(tmp_path):
    calls = [() for _ in range(2)]
    job = L.JobOptions(executor="local", log_dir=str(tmp_path / "jobs"), name="threads")
    import torch

    handles = L.submit_array(torch.get_num_threads, calls, job, log=lambda m: None)
    L.wait(handles, poll=0.2)
    assert [L.result(h) for h in handles] == [max(1, len(os.sched_getaffinity(0)) // 2)] * 2


TINY_TRAIN = ["--hidden", "8", "--layers", "1", "--conv-channels", "0", "--epochs", "1", "--batch-size", "32",
              "--device", "cpu", "--threads", "1", "--no-progress"]


def stages_as_jobs(store: Path, tmp_path: Path, jobs: list, capsys) -> dict:
    """train, evaluate, report and export, each with the job flags `jobs`; returns what they printed last."""
    runs, logs = tmp_path / "runs", tmp_path / "jobs"
    flags = [*jobs, "--log-dir", str(logs)]
    said = {}
    for stage, argv in (
            ("train", ["train", "--store", str(store), "--out", str(runs), *TINY_TRAIN]),
            ("report", ["report", "--runs", str(runs), "--det-minutes", "0", "0"]),
            ("export", ["export", "--best", str(runs), "--out", str(tmp_path / "model.onnx"),
                        "--calibrate-minutes", "0"])):
        assert main(argv + flags) == 0, stage
        captured = capsys.readouterr()
        said[stage] = captured.out.strip().splitlines()[-1]
        said[stage + "_all"] = captured.out + captured.err
    return said


def test_train_report_and_export_run_through_the_debug_executor(tiny_store, tmp_path, capsys):
    said = stages_as_jobs(tiny_store, tmp_path, ["--executor", "debug"], capsys)
    run = Path(said["train"])
    assert run.parent == tmp_path / "runs" and (run / "result.json").is_file()
    assert Path(said["report"]) == tmp_path / "runs" / "report" / "index.html" and Path(said["report"]).is_file()
    assert Path(said["export"]) == tmp_path / "model.onnx" and Path(said["export"]).is_file()
    for stage, name in (("train", "kws-train"), ("report", "kws-report"), ("export", "kws-export")):
        assert f"submitted {name} as debug job" in said[stage + "_all"], stage
    assert main(["evaluate", str(run), "--store", str(tiny_store), "--executor", "local",
                 "--log-dir", str(tmp_path / "jobs")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accuracy"] == json.loads((run / "result.json").read_text())["test_accuracy"]
    assert "submitted kws-evaluate as local job" in captured.err  # stdout is the JSON alone
