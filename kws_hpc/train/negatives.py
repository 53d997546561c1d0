"""The hard-negatives file: windows a model nearly fires on, added to a training split as `_unknown_`.

One numpy `.npz`, written by `kws-hpc mine` (`evaluate.mine`) and read by `kws-hpc train --hard-negatives`:
`features` [N, frames, n_mels] (log-mels in the store's dtype), `times` and `scores` [N] (where each window
ends in the mined stream and its best keyword score), `store_signature` (the store whose features they
match) and `run_signature` (the run that was mined). Only this module spells those keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws_hpc.errors import KwsError
from kws_hpc.io import write_npz

KEYS = ("features", "times", "scores", "store_signature", "run_signature")


def write_hard_negatives(path: Path, features: np.ndarray, times: np.ndarray, scores: np.ndarray,
                         store_signature: str, run_signature: str) -> None:
    """Write the file atomically."""
    write_npz(path, features=features, times=times, scores=scores,
              store_signature=np.array(store_signature), run_signature=np.array(run_signature))


def load_hard_negatives(path: str | Path, store_signature: str, frames: int, n_mels: int) -> np.ndarray:
    """The windows of a `mine` file, refused (KwsError, one line) when they belong to another store."""
    path = Path(path).expanduser()
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in KEYS}
    except (OSError, ValueError, KeyError) as e:
        raise KwsError(f"--hard-negatives {path}: not a file written by `kws-hpc mine` ({type(e).__name__}); "
                       "mine it again") from None
    if str(data["store_signature"]) != store_signature:
        raise KwsError(f"--hard-negatives {path} was mined from a run of store {data['store_signature']}, not "
                       f"{store_signature}; mine it with a run of this store")
    feats = data["features"]
    if feats.ndim != 3 or feats.shape[1:] != (frames, n_mels):
        raise KwsError(f"--hard-negatives {path}: windows of shape {feats.shape[1:]}, the store's are "
                       f"{(frames, n_mels)}; mine it again")
    return feats
