"""A run's course: batches of an epoch, the learning-rate schedule, and the early-stopping record a
checkpoint carries (`Progress`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from kws_hpc.config import TrainConfig


@dataclass
class Progress:
    """What a checkpoint carries besides the weights: where the run is and how it has gone."""

    epoch: int = 0
    best_val_acc: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    epochs_since_best: int = 0
    history: list = field(default_factory=list)

    def update(self, val_acc: float, val_loss: float, epoch: int) -> bool:
        """Record an epoch; True when it is the new best (higher val accuracy, ties go to lower loss)."""
        self.epoch = epoch
        better = val_acc > self.best_val_acc or (val_acc == self.best_val_acc and val_loss < self.best_val_loss)
        if better:  # ties go to the lower loss
            self.best_val_acc, self.best_val_loss, self.best_epoch, self.epochs_since_best = val_acc, val_loss, epoch, 0
        else:
            self.epochs_since_best += 1
        return better


def make_scheduler(opt: torch.optim.Optimizer, tc: TrainConfig, steps_per_epoch: int):
    """Cosine and one-cycle step per batch; plateau steps per epoch on val accuracy (halving the lr)."""
    total = max(1, tc.epochs * steps_per_epoch)
    if tc.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if tc.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=total)
    if tc.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "max", factor=0.5, patience=max(1, tc.patience // 3))
    return None


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a last batch of one is dropped (BatchNorm in the CRNN front-end needs two)."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size) if min(i + batch_size, n) - i >= 2]
