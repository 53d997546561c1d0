"""Files that are never half written: every writer goes through here.

A file is written under a temporary name unique to the writer (`.NAME.<pid>.<random>.tmp`, beside it,
so the rename stays on one file system) and renamed into place when complete, so a killed job never
leaves a file that looks finished and two writers never share a temporary file. `lock(path)` is the
inter-process lock (a `filelock` on `PATH.lock`) that writers of one store or run folder take.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
from pathlib import Path
from typing import Iterable, Iterator

TMP = ".tmp"


def temp_name(path: Path, suffix: str = TMP) -> Path:
    """A temporary sibling of `path` that no other writer uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = TMP) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on an error it is removed."""
    path = Path(path)
    tmp = temp_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj, indent: int = 2) -> None:
    """JSON with a final newline, atomically."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | Path):
    """The parsed file, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_tsv(path: str | Path, fieldnames: list[str], rows: Iterable) -> None:
    """A tab-separated file with a header row, atomically; rows are dicts, or tuples in field order
    (a plain writer: several times faster than DictWriter on the feature job's manifest)."""
    rows = iter(rows)
    first = next(rows, None)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        if isinstance(first, dict):
            w = csv.DictWriter(fh, fieldnames=fieldnames, delimiter="\t", lineterminator="\n")
            w.writeheader()
        else:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(fieldnames)
        if first is not None:
            w.writerow(first)
            w.writerows(rows)


def write_npz(path: str | Path, **arrays) -> None:
    """numpy's .npz (uncompressed), atomically."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def save_torch(obj, path: str | Path) -> None:
    """torch.save, atomically: a kill never leaves half a checkpoint."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def remove_stale(folder: Path, pattern: str) -> int:
    """Delete leftovers of killed writers matching `pattern` (call while holding the folder's lock)."""
    n = 0
    for p in Path(folder).glob(pattern):
        p.unlink(missing_ok=True)
        n += 1
    return n


@contextlib.contextmanager
def lock(path: str | Path, what: str = "", log=None, timeout: float = -1) -> Iterator[None]:
    """Hold the inter-process lock of `path` (the file `PATH.lock` beside it); a second holder waits
    and says so. The lock file stays, like any lock file, unless `path` was never created (bad input
    leaves nothing behind)."""
    from filelock import FileLock, Timeout

    path = Path(path)
    fl = FileLock(str(path.with_name(path.name + ".lock")))
    try:
        fl.acquire(timeout=0)
    except Timeout:
        if log is not None:
            log(f"{what or path} is being written by another process; waiting for it to finish")
        fl.acquire(timeout=timeout)
    try:
        yield
    finally:
        fl.release()
        if not path.exists():
            Path(fl.lock_file).unlink(missing_ok=True)
