"""Progress bars for long work (tqdm on stderr), off with `enabled=False` or `--no-progress`."""

from __future__ import annotations

import sys


def bar(total: int, desc: str, unit: str = "it", enabled: bool = True, leave: bool = True):
    """A tqdm bar over `total` steps; disabled bars accept the same calls and print nothing."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, leave=leave)
