"""Fetch Google Speech Commands: a resumable, verified download and an extraction that is never half done.

Layout under DEST: `speech_commands_<version>.tar.gz` (renamed from `.part` only once verified) and
`speech_commands_<version>/` (renamed from `.extracting` only once complete, holding a `.complete` marker).
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kws_hpc.errors import KwsError


@dataclass(frozen=True)
class Archive:
    """Where one release of the data set lives and what it must look like once downloaded."""

    url: str
    size: int | None  # bytes; None when a mirror does not say
    sha256: str | None = None
    md5: str | None = None  # checked only when no sha256 is known


# Checksums as published by torchaudio's SPEECHCOMMANDS and TensorFlow Datasets; the md5 is the server's ETag.
ARCHIVES = {
    "v0.01": Archive(
        url="http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        size=1_489_096_277,
        sha256="743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        md5="3cd23799cb2bbdec517f1cc028f8d43c",
    ),
    "v0.02": Archive(
        url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        size=2_428_923_189,
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        md5="6b74f3901214cb2c2934e98196829835",
    ),
}

MARKER = ".complete"  # last file written into an extracted folder
CHUNK = 1 << 20
TIMEOUT_S = 60


def download(version: str = "v0.02", dest: str | Path = "data", url: str | None = None,
             size: int | None = None, sha256: str | None = None, extract: bool = True,
             progress: bool = True) -> Path:
    """Download (resuming a partial file), verify and extract one Speech Commands release.

    `url`, `size` and `sha256` override the ARCHIVES entry (a mirror, or a local server in tests).
    Returns `DEST/speech_commands_<version>/`, or the verified archive when `extract` is False.
    Work already done (a verified archive, a completed extraction) is kept, not repeated.
    """
    if version not in ARCHIVES:
        raise KwsError(f"unknown Speech Commands version {version!r}; choose one of {', '.join(ARCHIVES)}")
    known = ARCHIVES[version]
    url = url or known.url
    size = known.size if size is None else size
    md5 = known.md5 if sha256 is None else None
    sha256 = sha256 or known.sha256
    dest = Path(dest).expanduser()
    folder = dest / f"speech_commands_{version}"
    if extract and (folder / MARKER).is_file():
        _say(f"{folder} is already extracted; nothing to do")
        return folder

    archive = dest / f"speech_commands_{version}.tar.gz"
    sidecar = archive.with_name(archive.name + ".sha256")
    if sha256 is None and sidecar.is_file():  # recorded by an earlier download
        sha256 = sidecar.read_text().split()[0]
    if archive.is_file():
        try:
            verify_archive(archive, size, sha256, md5)
        except KwsError as err:
            raise KwsError(f"{err}; delete it and re-run to download it again") from None
        _say(f"{archive} is already downloaded and verified")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        part = archive.with_name(archive.name + ".part")
        _fetch(url, part, size, progress)
        try:
            verify_archive(part, size, sha256, md5)
        except KwsError as err:
            part.unlink(missing_ok=True)
            raise KwsError(f"{err}; the download was deleted, re-run to fetch it again") from None
        part.replace(archive)
    if sha256 is None:
        digest = _digest(archive, "sha256")
        sidecar.write_text(f"{digest}  {archive.name}\n")
        _say(f"no published checksum for {archive.name}; its sha256 is {digest} (saved in {sidecar})")
    return _extract(archive, folder) if extract else archive


def verify_archive(path: str | Path, size: int | None, sha256: str | None, md5: str | None = None) -> None:
    """Raise KwsError unless `path` has `size` bytes and the sha256 (md5 if no sha256); None skips a check."""
    path = Path(path)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise KwsError(f"{path} has {actual:,} bytes, expected {size:,}")
    for algorithm, expected in (("sha256", sha256), ("md5", None if sha256 else md5)):
        if expected:
            digest = _digest(path, algorithm)
            if digest != expected.lower():
                raise KwsError(f"{path} has {algorithm} {digest}, expected {expected}")


def _fetch(url: str, part: Path, size: int | None, progress: bool) -> None:
    """Append to `part` whatever of `url` it lacks; a network failure keeps it for the next run."""
    from kws_hpc.progress import bar as progress_bar

    start = part.stat().st_size if part.exists() else 0
    if size is not None and start >= size:
        return  # nothing left to ask for; verification decides whether it is right
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if start and response.status != 206:
                _say(f"{url} does not resume partial downloads; starting again from zero")
                start = 0
            length = response.headers.get("Content-Length")
            length = int(length) if length is not None else None
            total = size or (start + length if length is not None else None)
            with open(part, "ab" if start else "wb") as out, \
                    progress_bar(total, part.name.removesuffix(".part"), "B", progress, initial=start,
                                 unit_scale=True) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if length is not None and received < length:  # urllib ends a cut body quietly
                raise ConnectionError(f"connection closed after {received:,} of {length:,} bytes")
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            return  # the part already holds everything the server has
        raise _network_error(url, part, f"HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        reason = str(getattr(err, "reason", None) or err) or type(err).__name__
        raise _network_error(url, part, reason) from None


def _network_error(url: str, part: Path, reason: str) -> KwsError:
    kept = part.stat().st_size if part.exists() else 0
    then = f"re-running resumes from the {kept:,} bytes kept in {part}" if kept else "re-run to try again"
    return KwsError(f"download of {url} failed ({reason}); {then}")


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _extract(archive: Path, folder: Path) -> Path:
    """Unpack into a temporary sibling, then rename, so a killed extraction never looks finished."""
    if folder.exists():
        raise KwsError(f"{folder} exists but was not completed by this command; move it away and re-run")
    staging = folder.with_name(folder.name + ".extracting")
    if staging.exists():
        _say(f"removing {staging} left by an interrupted extraction")
        shutil.rmtree(staging)
    staging.mkdir()
    _say(f"extracting {archive} into {folder}")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=_safe_members(tar, archive), **options)
    except (tarfile.TarError, OSError, EOFError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise KwsError(f"could not extract {archive}: {err}") from None
    except KwsError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / MARKER).write_text(f"{archive.name}\n")
    staging.rename(folder)
    return folder


def _safe_members(tar: tarfile.TarFile, archive: Path):
    """Yield members one by one, refusing any whose path or link could land outside the folder."""
    for member in tar:
        for name in (member.name, member.linkname if member.issym() or member.islnk() else ""):
            if name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
                raise KwsError(f"refusing to extract {archive}: member {member.name!r} points outside "
                               f"the destination ({name!r}); the archive is not a genuine release")
        yield member


def _say(message: str) -> None:
    print(message, file=sys.stderr)
