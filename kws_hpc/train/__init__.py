"""Stage 3, training: the models, the stream-window augmentation, one loop for GRU and LSTM, the run
folder (`RunDir`) that owns every file of a run, and scoring a checkpoint on any store."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "train": "loop", "run_dir": "loop", "check_config": "loop",
    "RunDir": "rundir", "find_runs": "rundir", "best_run": "rundir", "best_runs": "rundir", "load_run": "rundir",
    "load_checkpoint": "evaluate", "evaluate_checkpoint": "evaluate", "predict": "evaluate", "metrics": "evaluate",
    "build_model": "models", "KwsRNN": "models",
})
