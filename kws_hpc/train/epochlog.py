"""Per-epoch figures a user can watch while a run trains: `metrics.csv` beside history.json, and
TensorBoard event files (the `tensorboard` package's writer) when it is installed and asked for.

Event files go to `<runs>/tensorboard/<group>/<run signature>/` (`RunDir.tensorboard_dir`), so
`tensorboard --logdir <runs>` shows every run, the trials of a sweep grouped under their study's name.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path
from typing import Optional

from kws_hpc.errors import KwsError
from kws_hpc.io import write_text

COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
           "val_acc": "accuracy/val", "lr": "lr", "seconds": "seconds_per_epoch"}


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def want_tensorboard(asked: Optional[bool]) -> bool:
    """`--tensorboard` (True), `--no-tensorboard` (False), or neither (None: on where it is installed)."""
    if asked is None:
        return tensorboard_installed()
    if asked and not tensorboard_installed():
        raise KwsError("--tensorboard needs the tensorboard package: pip install tensorboard "
                       "(or pass --no-tensorboard)")
    return asked


def csv_text(history: list) -> str:
    """metrics.csv: one row per epoch, the columns of history.json."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for h in history:
        w.writerow([h.get(k, "") for k in COLUMNS])
    return buf.getvalue()


class EpochLog:
    """Writes each finished epoch to metrics.csv and, with a folder, to TensorBoard event files."""

    def __init__(self, csv_path: Path, tensorboard: Optional[Path] = None, first_epoch: int = 1,
                 text: Optional[dict] = None):
        self.csv_path, self.writer = csv_path, None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            tensorboard.mkdir(parents=True, exist_ok=True)
            # purge_step: events a killed run wrote past its last checkpoint are dropped on resume
            self.writer = SummaryWriter(str(tensorboard), purge_step=first_epoch if first_epoch > 1 else None)
            if first_epoch == 1:
                for tag, body in (text or {}).items():
                    self.writer.add_text(tag, body, 0)

    def epoch(self, history: list) -> None:
        """Record the last entry of `history` (and rewrite metrics.csv from all of it)."""
        write_text(self.csv_path, csv_text(history))
        if self.writer is not None:
            entry = history[-1]
            for key, tag in SCALARS.items():
                self.writer.add_scalar(tag, entry[key], entry["epoch"])
            self.writer.flush()  # watched live: do not wait for the writer's own two-minute flush

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
