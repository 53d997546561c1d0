"""The job profiles and search spaces a user edits, found the same way by every command.

`jobs/` and `sweeps/` live at the top of the checkout (what a user opens and edits); the wheel carries
them as package data (`kws_hpc/defaults/jobs`, `kws_hpc/defaults/sweeps`, links to those folders in a
checkout). A name is looked up in this order: an explicit path, `./jobs` or `./sweeps` in the working
folder, then the packaged defaults.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kws_hpc.errors import KwsError

KINDS = ("jobs", "sweeps")


def packaged(kind: str) -> Path:
    """The folder of packaged defaults of `kind` (jobs or sweeps)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of defaults {kind!r}")
    return Path(str(resources.files(__name__) / kind))


def places(kind: str) -> list[Path]:
    """Where names are looked up, in order: ./KIND, then the packaged KIND."""
    return [Path(kind), packaged(kind)]


def known(kind: str) -> dict[str, list[str]]:
    """{folder: [names]} of every .toml file each place holds (places that exist only)."""
    out = {}
    for folder in places(kind):
        if folder.is_dir():
            out[str(folder)] = sorted(p.stem for p in folder.glob("*.toml"))
    return out


def describe(kind: str) -> str:
    """'NAMES in FOLDER; NAMES in FOLDER' (for help texts and errors)."""
    parts = [f"{', '.join(names) or 'none'} in {folder}" for folder, names in known(kind).items()]
    return "; ".join(parts) or "none"


def find_default(kind: str, name: str, what: str) -> Path:
    """The file `name` means: a path as given, else NAME(.toml) in ./KIND, else in the packaged KIND."""
    candidates = [Path(name).expanduser()]
    stems = [name] if name.endswith(".toml") else [f"{name}.toml", name]
    for folder in places(kind):
        candidates += [folder / s for s in stems]
    for path in candidates:
        if path.is_file():
            return path
    raise KwsError(f"no {what} {name!r} (looked for a file {name}, then in ./{kind} and {packaged(kind)}); "
                   f"known: {describe(kind)}; or pass a .toml path")
