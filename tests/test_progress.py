"""Progress in a log file: a line every few percent with rate and ETA, no carriage returns."""

from __future__ import annotations

import io
import subprocess
import sys

from kws_hpc.progress import EVERY, LineProgress, bar


def test_a_file_gets_one_line_per_step_with_rate_and_eta():
    out = io.StringIO()
    with bar(1000, "train.h5", "clip", file=out) as b:
        assert isinstance(b, LineProgress)
        for _ in range(100):
            b.update(10)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 100 // EVERY  # 10 %, ..., 90 %, then the closing line
    assert lines[0].startswith("train.h5: 10% (100/1,000 clip)") and "clip/s, ETA " in lines[0]
    assert lines[-1].startswith("train.h5: 100% (1,000/1,000 clip)") and ", in 0:0" in lines[-1]


def test_transient_disabled_and_failed_work_print_nothing_to_a_file():
    out = io.StringIO()
    with bar(10, "epoch 1", "batch", leave=False, file=out) as b:
        b.update(10)
    with bar(10, "quiet", enabled=False, file=out) as b:
        b.update(10)
    try:
        with bar(10, "broken", file=out) as b:
            b.update(5)
            raise ValueError
    except ValueError:
        pass
    assert [line for line in out.getvalue().splitlines() if not line.startswith("broken: 50%")] == []


def test_a_terminal_gets_a_tqdm_bar():
    code = ("import os, pty, sys\n"
            "pid, fd = pty.fork()\n"
            "if pid == 0:\n"
            "    import fcntl, struct, termios\n"
            "    fcntl.ioctl(2, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))  # a pty starts 0 wide\n"
            "    from kws_hpc.progress import bar\n"
            "    with bar(4, 'tty', 'x') as b:\n"
            "        print(type(b).__name__, file=sys.stderr)\n"
            "        b.update(4)\n"
            "    os._exit(0)\n"
            "data = b''\n"
            "while True:\n"
            "    try:\n"
            "        chunk = os.read(fd, 1024)\n"
            "    except OSError:\n"
            "        break\n"
            "    if not chunk:\n"
            "        break\n"
            "    data += chunk\n"
            "os.waitpid(pid, 0)\n"
            "sys.stdout.write(data.decode())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).stdout
    assert b"tqdm" in out and b"4/4" in out and b"\r" in out  # a bar drawn in place
