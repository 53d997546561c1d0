"""Progress of long work on stderr: a tqdm bar on a terminal, plain lines in a log file.

On a terminal a bar redraws itself in place. Written to a file (a job's log, `2> log.txt`) those redraws
would fill it with carriage returns, so there a stage prints one line each time it passes another
`EVERY` percent, with its rate and the time it still needs, and a last line when it ends. A transient
bar (`leave=False`, an epoch's batches) prints nothing to a file: the stage after it says how it went.
`enabled=False` (`--no-progress`) prints nothing anywhere.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

EVERY = 10  # percent between two lines in a log file


def bar(total: Optional[int], desc: str, unit: str = "it", enabled: bool = True, leave: bool = True,
        initial: int = 0, unit_scale: bool = False, file: Optional[TextIO] = None):
    """A progress counter over `total` steps with tqdm's `update(n)` and context-manager calls."""
    out = file or sys.stderr
    if enabled and _is_terminal(out):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=out, leave=leave, initial=initial,
                    unit_scale=unit_scale, unit_divisor=1024 if unit_scale else 1000)
    return LineProgress(total, desc, unit, out, enabled=enabled and leave, initial=initial, scale=unit_scale)


def _is_terminal(out) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):  # a closed or bare stream
        return False


class LineProgress:
    """tqdm's counting calls, printing one line per `EVERY` percent passed (and one at the end)."""

    def __init__(self, total: Optional[int], desc: str, unit: str, out: TextIO, enabled: bool = True,
                 initial: int = 0, scale: bool = False):
        self.total, self.desc, self.unit, self.out, self.enabled = total, desc, unit, out, enabled
        self.n = self.start_n = initial
        self.scale = scale
        self.t0 = time.monotonic()
        self.shown = -1  # the last EVERY-percent step printed
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.enabled or not self.total:
            return
        step = int(100 * self.n / self.total) // EVERY
        if step > self.shown and self.n < self.total:
            self.shown = step
            if step:  # 0 % says nothing a reader needs
                self._line(final=False)

    def _amount(self, v: float) -> str:
        if not self.scale:
            return f"{v:,.0f}"
        for prefix in ("", "Ki", "Mi", "Gi"):
            if v < 1024 or prefix == "Gi":
                return f"{v:.1f} {prefix}"
            v /= 1024
        return f"{v:.1f}"

    def _line(self, final: bool) -> None:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        done = f"{self._amount(self.n)}{'/' + self._amount(self.total) if self.total else ''} {self.unit}"
        pct = f"{100 * self.n / self.total:.0f}% " if self.total else ""
        if final:
            when = f"in {_clock(elapsed)}"
        else:
            left = (self.total - self.n) / rate if rate > 0 and self.total else None
            when = f"ETA {_clock(left)}" if left is not None else "ETA ?"
        print(f"{self.desc}: {pct}({done}) {self._amount(rate)} {self.unit}/s, {when}", file=self.out, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.enabled and self.n > self.start_n:
            self._line(final=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        self.closed = True  # work that failed or was interrupted has no rate to report


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
