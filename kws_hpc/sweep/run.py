"""Launching a sweep: create the studies, then run their workers here or as one submitit job array."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from kws_hpc.errors import KwsError
from kws_hpc.launch.storage import open_storage
from kws_hpc.sweep.studies import SweepSpec, counts, create_sweep, study_name, trials_of
from kws_hpc.sweep.worker import run_worker


def sweep_specs(store: str | Path, models: Sequence[str], space: dict, out: str | Path, trials: int = 20,
                workers: int = 2, seed: int = 0, device: str = "auto", heartbeat: int = 30, grace: int = 120,
                study: Optional[str] = None, threads: Optional[int] = None, tensorboard: bool = True) -> dict:
    """{study name: SweepSpec}, one study per model family with the same space and budget.

    `workers` is per study; every spec records the total. `threads` per worker (None: the cores its process
    may use; `worker_threads` gives local workers their share)."""
    from kws_hpc.features.store import open_store

    if trials < 1 or workers < 1:
        raise KwsError("--trials and --workers must be at least 1")
    if study and len(models) > 1:
        raise KwsError("--study names one study; with several --model values leave it out")
    if threads is not None and threads < 1:
        raise KwsError(f"--threads {threads} must be >= 1")
    if heartbeat < 1 or grace <= heartbeat:
        raise KwsError("--heartbeat must be >= 1 and --grace longer than --heartbeat")
    store = str(Path(store).expanduser().resolve())
    open_store(store)  # a bad store is an error here, not in every worker
    common = dict(space=space, out=str(Path(out).expanduser().resolve()), trials=trials, seed=seed,
                  device=device, workers=workers * len(models), heartbeat=heartbeat, grace=grace, threads=threads,
                  tensorboard=tensorboard)
    return {study or study_name(m, store): SweepSpec(store=store, model=m, **common) for m in models}


def worker_threads(threads: Optional[int], executor: Optional[str], workers: int) -> Optional[int]:
    """Threads per worker: `threads` when given; local processes started together share this process's
    cores; in this process (one worker after another) and on Slurm (its allocation) None, all they may use."""
    from kws_hpc.runtime import default_threads

    if threads is not None or executor != "local":
        return threads
    return default_threads(workers)


def run_sweep(url: str, specs: dict, workers: int, job, log: Callable[[str], None] = print) -> Optional[dict]:
    """Create the studies and run `workers` workers on each: here (job.executor None) or as one job
    array. Waits unless job.wait is off (then returns None); returns {study: counts}."""
    storage = open_storage(url)
    for name, spec in specs.items():
        create_sweep(storage, name, spec)
        log(f"study {name}: {spec.model}, target {spec.trials} finished trials, {workers} worker(s); "
            f"storage {url}")
    calls = [(url, name, i) for name in specs for i in range(workers)]
    if job.executor is None:
        for call in calls:
            run_worker(*call, log=log)
    elif not _run_jobs(storage, specs, calls, job, log):
        log(f"follow with: kws-hpc sweep ls --storage {url}")
        return None
    final = {name: counts(trials_of(storage, name)) for name in specs}
    short = [n for n, c in final.items() if c["COMPLETE"] + c["PRUNED"] < specs[n].trials]
    if short:
        raise KwsError(f"{', '.join(short)} did not reach the target (see the worker logs above); "
                       "run the same command again to continue")
    return final


def _run_jobs(storage, specs: dict, calls: list, job, log) -> bool:
    """Submit the workers as one array and wait, printing each study's progress when it changes;
    False when job.wait is off (submitted only)."""
    from kws_hpc.launch.executors import result, submit_array, wait

    handles = submit_array(run_worker, calls, job, log)
    if not job.wait:
        return False
    seen: dict = {}

    def progress() -> None:
        for name, spec in specs.items():
            c = counts(trials_of(storage, name))
            line = (f"{name}: {c['COMPLETE'] + c['PRUNED']}/{spec.trials} finished "
                    f"({c['COMPLETE']} complete, {c['PRUNED']} pruned), {c['RUNNING']} running, "
                    f"{c['FAIL']} failed")
            if seen.get(name) != line:
                seen[name] = line
                log(line)

    wait(handles, on_poll=progress, log=log)
    progress()
    for h in handles:
        try:
            result(h)
        except KwsError as e:
            log(f"warning: {e}")
    return True
