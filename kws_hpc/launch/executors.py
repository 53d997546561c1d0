"""submitit executors and jobs: every stage can run here, in local processes, on Slurm, or in-process.

A cluster profile is a small TOML file under jobs/ (partition, GPUs, CPUs, memory, time limit, array
parallelism, setup lines); `--executor local|slurm|debug` picks the backend and `--profile` the file.
Jobs receive paths and configs, never arrays or models, and are checkpointable: on a Slurm time-out
or pre-emption the same call is requeued, and because every stage finds or resumes its own output by
signature (a run resumes from last.pt), the requeued job continues where the first one stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from kws_hpc.errors import KwsError
from kws_hpc.launch.profiles import DEFAULTS, EXECUTORS, GENERIC, LOCAL_ONLY, SLURM_ONLY, load_profile



@dataclass(frozen=True)
class JobOptions:
    """How to launch a stage: `executor` None runs it right here, without submitit."""

    executor: Optional[str] = None  # local | slurm | debug | None
    profile: Optional[str] = None  # name under jobs/ or a TOML path
    log_dir: str = "runs/jobs"  # submitit folder: pickles and logs (must be visible to the job)
    name: str = "kws-hpc"  # job name shown by squeue
    wait: bool = True  # wait for the result, or submit and return


def make_executor(executor: str, profile: Optional[dict] = None, log_dir: str | Path = "runs/jobs",
                  name: str = "kws-hpc"):
    """A submitit AutoExecutor for `executor` configured from `profile`, writing into `log_dir`."""
    import submitit

    if executor not in EXECUTORS:
        raise KwsError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "slurm":
        _need_sbatch()
    prof = dict(DEFAULTS if profile is None else profile)
    folder = Path(log_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    ex = submitit.AutoExecutor(folder=folder, cluster=executor)
    params: dict[str, Any] = {"name": name, "tasks_per_node": 1}
    params.update({k: prof[k] for k in GENERIC if prof.get(k) is not None})
    if not params.get("gpus_per_node"):
        params.pop("gpus_per_node", None)  # --gpus-per-node=0 is an error on clusters without GPU GRES
    specific = SLURM_ONLY if executor == "slurm" else LOCAL_ONLY if executor == "local" else ()
    params.update({f"{executor}_{k}": prof[k] for k in specific if prof.get(k) is not None})
    try:
        ex.update_parameters(**params)
    except (NameError, AssertionError, ValueError) as e:
        where = prof.get("_path", "(defaults)")
        raise KwsError(f"job profile {where} does not suit {executor}: {e}") from None
    return ex


def _need_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise KwsError("--executor slurm needs Slurm's sbatch on PATH; use --executor local, or start the "
                       "single-node cluster with jobs/slurm_local.sh start")


def check_job(job: JobOptions) -> None:
    """Fail early, before anything is created, on a bad profile or a missing Slurm."""
    if job.executor is None:
        return
    if job.executor == "slurm":
        _need_sbatch()
    load_profile(job.profile, job.executor)


class Task:
    """A picklable call `fn(*args, **kwargs)` that submitit requeues as itself after a time-out.

    `checkpoint` is what submitit calls on SIGUSR2 (time-out, pre-emption): it returns the same
    call, so the requeued job starts over and each stage picks up its own files where they are.
    `threads` (the profile's cpus_per_task) caps torch's threads; on Slurm the allocation decides.
    """

    threads: Optional[int] = None

    def __init__(self, fn: Callable, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self):
        cpus = os.environ.get("SLURM_CPUS_PER_TASK") or self.threads
        if cpus:  # without CPU binding torch would start a thread per core of the whole node
            import torch

            torch.set_num_threads(int(cpus))
        _guard_preemption()
        return self.fn(*self.args, **self.kwargs)

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(_task(self.fn, self.args, self.kwargs, self.threads))

    def __repr__(self) -> str:
        return f"Task({getattr(self.fn, '__qualname__', self.fn)})"


def _guard_preemption() -> None:
    """Under submitit, wrap its pre-emption handler so that the training loop hears of the signal too
    (`runtime.request_stop`). The handler checkpoints, requeues and exits by raising SystemExit wherever the
    main thread is. Where that is a finalizer, Python prints the exit and drops it, and the job would train
    on to its end before the requeued one begins; with the guard the loop leaves after its next checkpoint."""
    import signal
    import threading

    from kws_hpc.runtime import request_stop

    request_stop(False)
    sig = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    inner = signal.getsignal(sig) if sig is not None else None
    main = threading.current_thread() is threading.main_thread()
    if not callable(inner) or getattr(inner, "kws_guard", False) or not main:
        return  # no submitit handler here (a plain process), already wrapped, or not the main thread

    def handler(signum, frame):
        request_stop()
        inner(signum, frame)

    handler.kws_guard = True
    signal.signal(sig, handler)


def _task(fn: Callable, args: tuple, kwargs: dict, threads: Optional[int]) -> Task:
    task = Task(fn, *args, **kwargs)
    task.threads = threads
    return task


def submit(fn: Callable, *args, job: Optional[JobOptions] = None, echo: Callable[[str], None] = print,
           **kwargs):
    """Run `fn(*args, **kwargs)` as a job described by `job`; returns its result.

    Without an executor it is a plain call. With one, `echo` says the job id and log file; when
    `job.wait` is False the submitit job is returned at once instead of the result. (`echo`, not
    `log`, so that a stage's own `log=` keyword passes through to it.)
    """
    job = job or JobOptions()
    if job.executor is None:
        return fn(*args, **kwargs)
    prof = load_profile(job.profile, job.executor)
    ex = make_executor(job.executor, prof, job.log_dir, job.name)
    handle = ex.submit(_task(fn, args, kwargs, prof.get("cpus_per_task")))
    echo(f"submitted {job.name} as {job.executor} job {handle.job_id}; log: {handle.paths.stdout}")
    if not job.wait:
        return handle
    wait(handle, log=echo)
    return result(handle)


def submit_array(fn: Callable, calls: Sequence[tuple], job: JobOptions,
                 log: Callable[[str], None] = print) -> list:
    """Submit `fn(*call)` for every call as one job array (one Slurm array, local processes otherwise)."""
    prof = load_profile(job.profile, job.executor)
    ex = make_executor(job.executor, prof, job.log_dir, job.name)
    threads = prof.get("cpus_per_task")
    if threads is None and job.executor == "local":  # the tasks share this machine: split its cores
        from kws_hpc.runtime import default_threads

        threads = default_threads(len(calls))
    handles = ex.submit_array([_task(fn, call, {}, threads) for call in calls])
    if job.executor == "slurm" and handles:
        what = f"Slurm job array {handles[0].job_id.split('_')[0]} ({len(handles)} tasks)"
    else:
        what = f"{len(handles)} {job.executor} job(s) {' '.join(h.job_id for h in handles)}"
    log(f"submitted {job.name} as {what}; logs: {Path(job.log_dir).resolve()}")
    return handles


def is_done(handle) -> bool:
    """Whether a job has finished. A Slurm job is done once it has a result or has left the queue:
    submitit asks `sacct`, which fails without Slurm accounting, and would wait forever for a job
    that died without writing its result."""
    if type(handle).__name__ == "DebugJob":
        return True  # runs in this process when its result is asked for
    if type(handle).__name__ != "SlurmJob":
        return handle.done()
    if handle.paths.result_pickle.exists():
        return True
    if _in_queue(handle.job_id):
        return False
    time.sleep(1.0)  # let a result written just before the job left the queue become visible
    return True


def _in_queue(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def wait(handles, poll: float = 2.0, on_poll: Optional[Callable[[], None]] = None,
         log: Callable[[str], None] = print) -> None:
    """Wait for one job or a list; `on_poll` runs between checks (progress). Ctrl-C cancels local jobs."""
    handles = handles if isinstance(handles, list) else [handles]
    try:
        while not all(is_done(h) for h in handles):
            if on_poll is not None:
                on_poll()
            time.sleep(poll)
    except KeyboardInterrupt:
        local = [h for h in handles if type(h).__name__ == "LocalJob"]
        for h in local:
            h.cancel(check=False)
        if len(local) < len(handles):
            log(f"jobs keep running on the cluster: {' '.join(h.job_id for h in handles if h not in local)} "
                "(scancel to stop them)")
        elif local:
            log(f"cancelled {len(local)} local job(s)")
        raise


def result(handle):
    """The job's return value; a failed job is a KwsError naming its log file."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    if type(handle).__name__ == "SlurmJob" and not handle.paths.result_pickle.exists():
        raise KwsError(f"job {handle.job_id} ended without a result (cancelled, killed, out of time or "
                       f"memory?); log: {handle.paths.stderr}")
    try:
        return handle.result()
    except (FailedJobError, UncompletedJobError) as e:
        parts = str(e).split("-" * 22)  # submitit frames the job's traceback between such rules
        body = parts[1] if len(parts) > 2 else str(e)
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        raise KwsError(f"job {handle.job_id} failed: {lines[-1] if lines else 'no result'} "
                       f"(log: {handle.paths.stderr})") from None
