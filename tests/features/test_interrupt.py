"""Ctrl-C during the feature job: the whole process group gets SIGINT, the job ends at once (exit 130, one
line), leaves no finished-looking file, and the same command then completes the store."""

import multiprocessing as mp
import subprocess
import sys
import textwrap

import pytest

from conftest import make_tree

# The job with slow header checks; the main process sends SIGINT to its whole group (itself and the workers,
# as a terminal's Ctrl-C does) once `at` clips of the phase have been counted.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from kws_hpc.cli import main
    from kws_hpc.features import build as B
    phase, at = sys.argv[1], int(sys.argv[2])
    probe, bar = B.probe, B.progress_bar
    def slow_probe(item):
        time.sleep(0.01)
        return probe(item)
    class Bar:
        def __init__(self, total, desc, *a):
            self.desc, self.n = desc, 0
        def __enter__(self):
            return self
        def __exit__(self, *a):
            return False
        def update(self, k=1):
            self.n += k
            if (phase in self.desc) and self.n >= at:
                os.killpg(0, signal.SIGINT)
                time.sleep(5)  # the signal lands here
    B.probe, B.progress_bar = slow_probe, Bar
    sys.exit(main(["features", "--data", sys.argv[3], "--vocab", "yes,no", "--out", sys.argv[4], "--workers", "2",
                   "--augment", "1", "--no-progress"]))
""")


@pytest.mark.skipif(mp.get_context().get_start_method() != "fork", reason="the workers are forked")
@pytest.mark.parametrize("phase", ["checking", "train.h5"])
def test_ctrl_c_ends_the_job_at_once_and_the_rerun_completes(tmp_path, phase):
    tree = make_tree(tmp_path / "d", words=["yes", "no"], speakers=150)
    out = tmp_path / "f"
    cmd = [sys.executable, "-c", SCRIPT, phase, "40", str(tree), str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["kws-hpc: interrupted; re-running the same command continues "
                                               "where it stopped"]
    assert not list(out.glob("*/*.h5")) and not list(out.glob("*/summary.json"))  # (checking: no store folder yet)
    again = subprocess.run([sys.executable, "-m", "kws_hpc", "features", "--data", str(tree), "--vocab", "yes,no",
                            "--out", str(out), "--workers", "2", "--augment", "1", "--no-progress"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    store = next(p for p in out.iterdir() if p.is_dir())
    assert all((store / f"{s}.h5").is_file() for s in ("train", "val", "test"))
