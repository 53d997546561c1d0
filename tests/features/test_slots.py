"""Shared-memory slots: the workers' features reach the store through them, equal to one process's, and a
failing job still ends."""

import multiprocessing as mp
import signal

import h5py
import numpy as np
import pytest

from kws_hpc.config import DataConfig, FeatureConfig
from kws_hpc.errors import KwsError
from kws_hpc.features import build as B
from kws_hpc.features import slots as S

from conftest import make_tree

QUIET = dict(progress=False, log=lambda m: None)
FORK = mp.get_context().get_start_method() == "fork"


def test_slots_hand_out_each_slot_once_and_give_up_once_stopped():
    slots = S.Slots(2, rows=3, cfg=FeatureConfig())
    a, b = slots.take(), slots.take()
    assert {a, b} == {0, 1}
    feats = np.arange(3 * 100 * 40, dtype=np.float16).reshape(3, 100, 40)
    assert slots.put(a, feats[:2]) == 2
    np.testing.assert_array_equal(slots.read(a, 2), feats[:2])
    slots.release(a)
    assert slots.take() == a
    slots.stop()
    with pytest.raises(S.Stopped):
        slots.take()  # none free: it would otherwise wait for ever


def test_no_slots_without_forked_workers():
    assert S.open_slots(0, 64, FeatureConfig()) is None
    S.close_slots()


@pytest.mark.skipif(not FORK, reason="slots need forked workers")
def test_workers_store_through_slots_equals_one_process(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "d", words=["yes", "no", "up"], speakers=60)
    cfg = DataConfig(vocab="yes,no", extras=True, augment=2)
    reads = []
    read = S.Slots.read
    monkeypatch.setattr(S.Slots, "read", lambda self, slot, rows: reads.append(rows) or read(self, slot, rows))
    monkeypatch.setattr(B, "CHUNK", 16)  # several tasks per split, more than there are slots
    monkeypatch.setattr(S, "SLOT_BYTES", 1)  # the fewest slots: two per worker
    one = B.build_store(tree, cfg, out=tmp_path / "one", workers=0, **QUIET)
    two = B.build_store(tree, cfg, out=tmp_path / "two", workers=2, **QUIET)
    assert one.name == two.name and sum(reads) > 0
    assert sum(reads) == sum(len(h5py.File(two / f"{s}.h5")["labels"]) for s in ("train", "val", "test"))
    for split in ("train", "val", "test"):
        with h5py.File(one / f"{split}.h5") as a, h5py.File(two / f"{split}.h5") as b:
            for key in a:
                np.testing.assert_array_equal(a[key][:], b[key][:])
            for key in ("mean", "std") if split == "train" else ():
                np.testing.assert_array_equal(a.attrs[key], b.attrs[key])


@pytest.mark.skipif(not FORK, reason="slots need forked workers")
def test_a_failing_task_ends_the_job_with_its_error_and_no_partial_file(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=80)
    featurize, calls = B._featurize, []

    def fail_third(task):  # runs in the one forked worker
        calls.append(1)
        if len(calls) == 3:
            raise KwsError("a clip that cannot be decoded")
        return featurize(task)

    def hung(*_):
        raise TimeoutError("the feature job did not end after its task failed")

    monkeypatch.setattr(B, "_featurize", fail_third)
    monkeypatch.setattr(B, "CHUNK", 8)
    monkeypatch.setattr(S, "SLOT_BYTES", 1)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)  # a job that cannot end fails here instead of hanging the suite
    try:
        with pytest.raises(KwsError, match="cannot be decoded"):
            B.build_store(tree, DataConfig(vocab="yes,no"), out=tmp_path / "f", workers=1, **QUIET)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    store = next(p for p in (tmp_path / "f").iterdir() if p.is_dir())
    assert not list(store.glob(".*.partial")) and not list(store.glob("*.h5"))
    assert S.worker_slots() is None
