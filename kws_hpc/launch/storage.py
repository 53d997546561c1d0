"""Where studies live: a journal file by default (Optuna's JournalFileBackend, safe on NFS), or any RDB URL.

Both kinds record trial heartbeats, so a trial whose worker died is failed and retried; the journal
storage gets Optuna's heartbeat protocol through `HeartbeatJournalStorage` (see `optuna_compat`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import optuna

from kws_hpc.errors import KwsError
from kws_hpc.launch.optuna_compat import RDB_RETRY_KEYWORD, HeartbeatJournalStorage, retry_callback


def default_storage(out: str | Path = "runs") -> str:
    return str(Path(out).expanduser().resolve() / "studies.journal")


def storage_url(storage: Optional[str], out: str | Path = "runs") -> str:
    """Absolute storage location (jobs may start in another folder): URL, journal or SQLite path."""
    if not storage:
        return default_storage(out)
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(storage[len("sqlite:///"):]).expanduser().resolve())
    if "://" in storage:
        return storage
    path = Path(storage).expanduser().resolve()
    return f"sqlite:///{path}" if path.suffix in (".db", ".sqlite", ".sqlite3") else str(path)


def check_journal(path: Path) -> None:
    """A KwsError unless `path` is empty or starts with an Optuna journal record (JSON with an op_code).
    (Optuna reads a file of nothing but garbage as an empty journal: unfinished last records are skipped.)"""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        return
    first = head.split(b"\n", 1)[0]
    try:
        record = json.loads(first.decode("utf-8"))
        if isinstance(record, dict) and "op_code" in record:
            return
    except (UnicodeDecodeError, ValueError):
        pass
    raise KwsError(f"{path} is not an Optuna journal (its first line is not a journal record); pass --storage "
                   "with the sweeps' journal file or database URL")


def open_storage(url: str, heartbeat: Optional[int] = None, grace: Optional[int] = None, create: bool = True):
    """An Optuna storage for `url`: an RDB URL, or a journal file (created if missing and `create`).

    With `heartbeat`, running trials record heartbeats and stale ones are failed and retried. Without
    `create` (what read-only commands use), a missing journal or SQLite file is a KwsError.
    """
    retry = retry_callback() if heartbeat else None
    if "://" in url:
        kw = {}
        try:
            if url.startswith("sqlite:///"):
                db = Path(url[len("sqlite:///"):])
                if not create and not db.is_file():
                    raise KwsError(f"Optuna database {db} does not exist; pass --storage with the sweeps' "
                                   "journal file or database URL")
                db.parent.mkdir(parents=True, exist_ok=True)
                kw = {"engine_kwargs": {"connect_args": {"timeout": 60}}}  # many workers wait for the file lock
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                                              **{RDB_RETRY_KEYWORD: retry}, **kw)
        except KwsError:
            raise
        except Exception as e:  # a driver that is missing, a server that does not answer, a folder not made
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise KwsError(f"cannot open storage {url}: {first}") from None
    path = Path(url)
    if path.is_dir():
        raise KwsError(f"storage {url} is a folder; give a journal file (e.g. {path / 'studies.journal'})")
    if path.is_file():
        check_journal(path)
    elif not create:
        raise KwsError(f"Optuna journal {path} does not exist; pass --storage with the sweeps' journal file "
                       "or database URL")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as e:
        raise KwsError(f"cannot create the journal {path} ({e.strerror or e}); choose another --out or --storage")
    try:  # Optuna replays the whole journal here: a damaged record anywhere in it fails now
        return HeartbeatJournalStorage(backend, heartbeat, grace, retry)
    except (ValueError, KeyError, TypeError) as e:  # JSON and Unicode errors are ValueErrors
        raise KwsError(f"{path} is not a readable Optuna journal ({type(e).__name__}: {str(e)[:80]}); pass "
                       "--storage with the sweeps' journal file or database URL, or restore it from a copy") from None
