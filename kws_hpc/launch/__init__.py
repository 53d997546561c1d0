"""Jobs: cluster profiles (jobs/*.toml) and submitit executors, so any stage runs here, in local
processes or on Slurm, and is requeued after a time-out; and the Optuna storage that workers on many nodes
share (a journal file, safe on NFS, or a database), which the sweeps write and the report reads."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "JobOptions": "executors", "submit": "executors", "submit_array": "executors", "wait": "executors",
    "result": "executors", "check_job": "executors", "make_executor": "executors", "Task": "executors",
    "load_profile": "profiles", "find_profile": "profiles", "EXECUTORS": "profiles", "DEFAULTS": "profiles",
    "open_storage": "storage", "storage_url": "storage", "default_storage": "storage",
})
