"""Atomic writes and the inter-process lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kws_hpc import io


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    io.write_json(path, {"x": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert io.read_json(path) == {"x": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert io.read_json(tmp_path / "missing.json") is None


def test_temporary_names_are_unique_per_writer(tmp_path):
    names = {io.temp_name(tmp_path / "train.h5", ".partial").name for _ in range(50)}
    assert len(names) == 50 and all(n.startswith(".train.h5.") and n.endswith(".partial") for n in names)


def test_tsv_and_npz(tmp_path):
    io.write_tsv(tmp_path / "t.tsv", ["a", "b"], [{"a": 1, "b": "x"}])
    assert (tmp_path / "t.tsv").read_text() == "a\tb\n1\tx\n"
    rows = [{"a": 1.5, "b": "x\ty"}, {"a": -1, "b": 'q"'}]  # a tab or a quote in a field is quoted alike
    io.write_tsv(tmp_path / "d.tsv", ["a", "b"], rows)
    io.write_tsv(tmp_path / "s.tsv", ["a", "b"], ((r["a"], r["b"]) for r in rows))
    assert (tmp_path / "s.tsv").read_text() == (tmp_path / "d.tsv").read_text() == 'a\tb\n1.5\t"x\ty"\n-1\t"q"""\n'
    io.write_tsv(tmp_path / "e.tsv", ["a", "b"], [])
    assert (tmp_path / "e.tsv").read_text() == "a\tb\n"
    import numpy as np

    io.write_npz(tmp_path / "z.npz", y=np.arange(4))
    assert np.load(tmp_path / "z.npz")["y"].tolist() == [0, 1, 2, 3]


def test_lock_makes_a_second_holder_wait_and_say_so(tmp_path):
    target = tmp_path / "store"
    target.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from kws_hpc import io\n"
        f"with io.lock({str(target)!r}):\n    print('held', flush=True); time.sleep(1.5)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said, t0 = [], time.time()
    with io.lock(target, what="store x", log=said.append):
        waited = time.time() - t0
    holder.wait()
    assert waited > 0.5 and said == ["store x is being written by another process; waiting for it to finish"]
    assert (tmp_path / "store.lock").exists()  # a lock file stays beside what it guards


def test_lock_that_guarded_nothing_leaves_nothing(tmp_path):
    with io.lock(tmp_path / "never-made"):
        pass
    assert not list(tmp_path.iterdir())
