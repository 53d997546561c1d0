"""Stage 5, sweeps: search spaces (sweeps/*.toml), studies that carry their own spec (in the study storage
of `launch.storage`), the worker that runs trials, launching workers, and retraining the best configuration."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "find_space": "space", "load_space": "space", "run_config": "space", "suggest": "space",
    "SweepSpec": "studies", "study_name": "studies", "study_id": "studies", "read_spec": "studies",
    "create_sweep": "studies", "trials_of": "studies", "counts": "studies", "best_trial": "studies",
    "budget": "studies",
    "run_worker": "worker", "objective": "worker", "OverBudget": "worker", "worker_seed": "worker",
    "run_sweep": "run", "sweep_specs": "run",
    "retrain_job": "retrain", "retrain_call": "retrain", "retrain_runs": "retrain", "retrain_best": "retrain",
})
