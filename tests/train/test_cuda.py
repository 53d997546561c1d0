"""On a CUDA device: the store lives on the device and a training epoch never waits for the host per batch.

Skipped where there is no CUDA device. torch's sync debug mode warns at every operation that makes the host
wait for the device (`.item()`, `nonzero`, a `bool()` of a tensor, a blocking copy); an epoch of 6 batches
must wait as often as one of 2, so only the epoch's own end (its loss and accuracy) may wait.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from kws_hpc.config import DataConfig, RunConfig, TrainConfig
from kws_hpc.features.build import build_store
from kws_hpc.features.store import open_store
from kws_hpc.runtime import as_run
from kws_hpc.train import loop

from conftest import TINY_WORDS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BATCH = 8


@pytest.fixture(scope="module")
def extras_store(tiny_tree, tmp_path_factory):
    """The tiny store with `_silence_` and `_unknown_`, so every default augmentation has work to do."""
    cfg = DataConfig(vocab=",".join(TINY_WORDS[:6]), extras=True)
    return build_store(tiny_tree, cfg, out=tmp_path_factory.mktemp("features"), workers=0, progress=False,
                       log=lambda m: None)


def _host_waits(fn) -> int:
    """How many times `fn()` made the host wait for the device."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.parametrize("amp", [False, True])
def test_a_cuda_epoch_waits_for_the_host_as_often_whatever_its_number_of_batches(extras_store, amp):
    cfg = as_run(RunConfig(store=str(extras_store), train=TrainConfig(device="cuda", amp=amp, batch_size=BATCH)))
    info, dev = open_store(cfg.store), torch.device("cuda")
    data = loop._load(info, dev, lambda m: None)
    x, y = data["train"]
    assert x.device.type == "cuda" and len(y) >= 6 * BATCH  # the store fits: batches are indexed on the device
    waits = {}
    for batches in (2, 6):
        n = batches * BATCH
        trainer = loop._Trainer(cfg, info, dev, amp, n)
        trainer.fit_epoch(x[:n], y[:n], data["noise"], None)  # first: the noise pool, kernels, the allocator
        waits[batches] = _host_waits(lambda: trainer.fit_epoch(x[:n], y[:n], data["noise"], None))
    assert waits[6] == waits[2], waits
