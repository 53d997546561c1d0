"""Shared-memory slots that carry the feature job's results from the workers to the writing process.

A worker writes a task's features into a free slot and sends back only the slot's number and row count,
so the main process neither unpickles the features (~490 MB at 100,000 clips) nor competes with the
workers for that CPU. The mapping is anonymous and inherited at fork, so slots exist only with forked
workers; elsewhere the features travel through the pool's pipe as before.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import queue
from typing import Optional

import numpy as np

from kws_hpc.config import FeatureConfig

SLOT_BYTES = 256 << 20  # at most this much shared memory in all; at least two slots per worker

_SLOTS: Optional["Slots"] = None  # the job's slots, set before the workers fork (they inherit it)


class Stopped(Exception):
    """The job stopped while a task waited for a free slot."""


class Slots:
    """`count` slots of `rows` x frames x n_mels features each; `take` blocks until one is free."""

    def __init__(self, count: int, rows: int, cfg: FeatureConfig):
        shape = (count, rows, cfg.frames, cfg.n_mels)
        dtype = np.dtype(cfg.dtype)
        self.map = mmap.mmap(-1, int(np.prod(shape)) * dtype.itemsize)
        self.array = np.ndarray(shape, dtype, buffer=self.map)
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(count):
            self.free.put(i)
        self.stopped = False

    def take(self) -> int:
        """A free slot's number (in the thread that hands out tasks); Stopped once `stop` was called."""
        while True:
            try:
                return self.free.get(timeout=0.1)
            except queue.Empty:
                if self.stopped:
                    raise Stopped from None

    def put(self, slot: int, feats: np.ndarray) -> int:
        """Write a task's features into its slot (in a worker); returns the row count."""
        self.array[slot, :len(feats)] = feats
        return len(feats)

    def read(self, slot: int, rows: int) -> np.ndarray:
        """The features a worker wrote (a view: use them before `release`)."""
        return self.array[slot, :rows]

    def release(self, slot: int) -> None:
        self.free.put(slot)

    def stop(self) -> None:
        """Let a `take` that waits give up (the job is ending, maybe on an error)."""
        self.stopped = True


def open_slots(workers: int, rows: int, cfg: FeatureConfig) -> Optional[Slots]:
    """Slots for `workers` forked workers and tasks of up to `rows` rows, or None (no workers, or they
    are not forked)."""
    global _SLOTS
    if workers <= 0 or mp.get_context().get_start_method() != "fork":
        _SLOTS = None
        return None
    slot = rows * cfg.frames * cfg.n_mels * np.dtype(cfg.dtype).itemsize
    _SLOTS = Slots(max(2 * workers, min(4 * workers, SLOT_BYTES // max(1, slot))), rows, cfg)
    return _SLOTS


def worker_slots() -> Optional[Slots]:
    """The slots a forked worker inherited (None without them)."""
    return _SLOTS


def close_slots() -> None:
    """Forget the job's slots (the mapping goes once nothing refers to it)."""
    global _SLOTS
    _SLOTS = None
