"""Where the clips come from: an extracted Speech Commands folder or its .tar.gz, and WAV decoding.

A `Source` lists files by their path relative to the data set root (`yes/0a7c2a8d_nohash_0.wav`) and
hands out their bytes; the reader above it never cares which kind it is. Decoding (`kws_hpc.data.wav`)
checks every way a clip can be unusable and says why, so the manifest can carry the reason instead of the
job dying.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from kws_hpc.data.wav import BadClip, decode_wav, fix_length, wav_header, wav_samples  # noqa: F401 (re-exported)
from kws_hpc.errors import KwsError


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the data set root, '/'-separated
    size: int


class Source:
    """A data set root: `files()` lists it, `iter_bytes()` streams chosen files in storage order."""

    def __init__(self, location: str | Path):
        self.location = Path(location)
        self.broken: dict[str, str] = {}  # links that cannot be read: relative path -> why (filled by files())

    def files(self) -> list[FileEntry]:
        raise NotImplementedError

    def dirs(self) -> list[str]:
        """Top-level folders (word folders), including empty ones."""
        raise NotImplementedError

    def iter_bytes(self, paths: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def read_text(self, path: str) -> Optional[str]:
        for _, data in self.iter_bytes([path]):
            return data.decode("utf-8", errors="replace")
        return None

    def fingerprint(self) -> str:
        """Hash of every file's relative path and size: changes when the data set changes."""
        h = hashlib.sha1()
        for e in sorted(self.files(), key=lambda e: e.path):
            h.update(f"{e.path}\t{e.size}\n".encode())
        return h.hexdigest()[:16]


def probe(item: tuple) -> tuple[str, int, str]:
    """(path, samples, reason) of a (path, payload) pair from the clip's WAV header alone, nothing decoded.

    The payload is a file name, the file's bytes, or (the first bytes of an archive member, its size).
    Samples are -1 with the reason for an unusable clip, and -2 when the first bytes end before the header
    does (read the whole member and ask again)."""
    rel, payload = item
    try:
        if isinstance(payload, tuple):  # (the first bytes of an archive member, its size)
            return rel, wav_samples(payload[0], payload[1]), ""
        if isinstance(payload, bytes):
            return rel, wav_samples(payload, len(payload)), ""
        fd = os.open(payload, os.O_RDONLY)  # raw calls: one read, no buffered file object
        try:
            head, size = os.read(fd, HEAD), os.fstat(fd).st_size
            if len(head) < size:
                try:
                    return rel, wav_samples(head, size), ""
                except EOFError:  # a header longer than HEAD (many chunks before the audio): all of it
                    head += os.read(fd, size)
            return rel, wav_samples(head, len(head)), ""
        finally:
            os.close(fd)
    except EOFError:
        return rel, -2, ""  # the kept head ends before the WAV header does: read the whole clip
    except BadClip as e:
        return rel, -1, str(e)
    except OSError as e:
        return rel, -1, f"unreadable file: {e.strerror or e}"


class FolderSource(Source):
    """An extracted data set folder; workers read files themselves, so `local_path` is exposed."""

    def __init__(self, location):
        super().__init__(location)
        self._files: Optional[list[FileEntry]] = None
        self._alias: dict[str, Path] = {}
        self._root = os.path.join(str(self.location), "")  # "root/": a clip's path is one concatenation away

    def _aliases(self) -> dict[str, Path]:
        """Top-level link files: a small file whose text is a relative path to a folder (how git writes a
        symlink where links are off, e.g. the shared real set's `_background_noise_`), read as that folder."""
        out = {}
        for p in sorted(self.location.iterdir()):
            if p.is_file() and not p.is_symlink() and "." not in p.name and p.stat().st_size <= 512:
                try:
                    text = p.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    continue
                target = (self.location / text).resolve() if text and "\n" not in text else None
                if target is not None and target.is_dir():
                    out[p.name] = target
        return out

    def files(self):
        if self._files is None:
            self._alias = self._aliases()
            out = []
            seen = {os.path.realpath(self.location)}
            for prefix0, root in [("", str(self.location))] + [(n + "/", str(t)) for n, t in self._alias.items()]:
                out += self._walk(root, prefix0, seen, self.broken)
            self._files = [e for e in out if e.path not in self._alias]
        return self._files

    @staticmethod
    def _walk(root: str, prefix0: str, seen: set, broken: dict) -> list[FileEntry]:
        """Every file under `root` (links followed); a link whose target is missing goes to `broken`."""
        out = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # linked folders are read too
            real = {d: os.path.realpath(os.path.join(dirpath, d)) for d in dirnames}
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and real[d] not in seen)
            seen.update(real[d] for d in dirnames)  # a link back up the tree is not walked twice
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            prefix = prefix0 + ("" if rel == "." else rel + "/")
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                full = dirpath + os.sep + name
                try:
                    out.append(FileEntry(prefix + name, os.stat(full).st_size))
                except OSError as e:  # a link to nothing (os.walk lists a dangling folder link as a file)
                    target = os.readlink(full) if os.path.islink(full) else ""
                    broken[prefix + name] = (f"a link to {target}, which does not exist" if target else
                                             f"unreadable ({e.strerror or e})")
        return out

    def dirs(self):
        if self._files is None:
            self.files()
        return sorted({p.name for p in self.location.iterdir() if p.is_dir() and not p.name.startswith(".")}
                      | set(self._alias))

    def local_path(self, path: str) -> Path:
        return Path(self.local_str(path))

    def local_str(self, path: str) -> str:
        """`local_path` as a string (no `Path` per clip: the feature job asks for every clip's)."""
        if self._files is None:
            self.files()
        if self._alias:
            head, _, rest = path.partition("/")
            if head in self._alias and rest:
                return os.path.join(self._alias[head], rest)
        return self._root + path

    def iter_bytes(self, paths):
        for p in paths:
            f = self.local_path(p)
            if f.is_file():
                yield p, f.read_bytes()


HEAD = 1024  # bytes of a clip read for its header (44 in the data set), and kept of each archive member listed
KEEP_BYTES = 1 << 20  # other members up to this size are kept too (README, the official lists)
KEEP_DIR = "_background_noise_/"  # and the background noise, which every store reads


class TarSource(Source):
    """A Speech Commands .tar.gz read in place, nothing extracted: one sequential pass lists it and keeps
    each WAV's header, the small files and the background noise; each later request is one more pass."""

    def __init__(self, location):
        super().__init__(location)
        self._files: Optional[list[FileEntry]] = None
        self._dirs: list[str] = []
        self._prefix = ""
        self._heads: dict[str, bytes] = {}  # the first HEAD bytes of every .wav member (the probe reads them)
        self._kept: dict[str, bytes] = {}  # small files and background noise, read during the listing pass
        self._links: dict[str, str] = {}  # link member -> the member name of the file it stands for

    def _name(self, name: str) -> str:
        """A member's path relative to the archive root, normalised; KwsError for one escaping it."""
        raw = name.replace("\\", "/")
        parts = [s for s in raw.split("/") if s not in ("", ".")]
        if raw.startswith("/") or ".." in parts:
            raise KwsError(f"archive {self.location}: member {name!r} points outside its folder; refusing the "
                           "archive (is it a genuine Speech Commands release?)")
        return "/".join(parts)

    def _target(self, m: tarfile.TarInfo, by_name: dict, folders: set) -> tuple[Optional[tarfile.TarInfo], str]:
        """The member a hard or symbolic link stands for, and why there is none: it points outside the
        archive (never followed), or to a name the archive does not hold."""
        seen, first = set(), m.linkname
        while m is not None and (m.islnk() or m.issym()) and m.name not in seen:
            seen.add(m.name)
            base = "" if m.islnk() else posixpath.dirname(self._name(m.name))
            target = posixpath.normpath(posixpath.join(base, m.linkname.replace("\\", "/")))
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                return None, f"a link to {first}, outside the archive"
            if self._prefix and not (target + "/").startswith(self._prefix):
                return None, f"a link to {first}, outside the data set's folder in the archive"
            m = by_name.get(target)
            if m is None and target in folders:  # a folder the archive holds files of, without its own member
                return None, self._folder_link(first)
        if m is not None and m.isdir():
            return None, self._folder_link(first)
        if m is None or not m.isfile():
            return None, f"a link to {first}, which the archive does not hold"
        return m, ""

    @staticmethod
    def _folder_link(target: str) -> str:
        return (f"a link to the folder {target}: links to folders are not followed inside an archive (extract it, "
                "or archive the folder itself)")

    def _scan(self):
        files, dirs = [], set()
        heads, kept = {}, {}
        try:
            with tarfile.open(self.location, "r:*") as tar:
                members = []
                for m in tar:  # one sequential pass lists the archive and keeps what later stages need
                    members.append(m)
                    if m.isfile() and m.name.lower().endswith(".wav") and KEEP_DIR not in m.name:
                        heads[m.name] = tar.extractfile(m).read(HEAD)
                    elif m.isfile() and (m.size <= KEEP_BYTES or KEEP_DIR in m.name):
                        kept[m.name] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            why = "not a tar or tar.gz archive, or a damaged one" if isinstance(e, tarfile.ReadError) else \
                " ".join(str(e).split())
            raise KwsError(f"cannot read archive {self.location}: {why}; re-download it (kws-hpc data download)")
        names = [self._name(m.name) for m in members]
        by_name = dict(zip(names, members))
        links = any(m.islnk() or m.issym() for m in members)
        folders = {n[:i] for n in names for i, ch in enumerate(n) if ch == "/"} if links else set()
        # Some archives wrap everything in one folder: strip it when every member lives under it.
        tops = {n.split("/", 1)[0] for n in names if n}
        if len(tops) == 1 and any("/" in n for n in names):
            top = tops.pop()
            if not any(m.isfile() and n == top for m, n in zip(members, names)):
                self._prefix = top + "/"
        for m, n in zip(members, names):
            if self._prefix and not n.startswith(self._prefix):
                continue  # the wrapping folder itself
            rel = n[len(self._prefix):]
            if not rel:
                continue
            target, why = self._target(m, by_name, folders) if (m.islnk() or m.issym()) else (m, "")
            if why:
                self.broken[rel] = why
            elif m.isdir() and "/" not in rel:
                dirs.add(rel)
            elif target is not None and target.isfile():  # a file, or a link to one: read like a file
                files.append(FileEntry(rel, target.size))
                if "/" in rel:
                    dirs.add(rel.split("/", 1)[0])
                if target.name in heads:
                    self._heads[rel] = heads[target.name]
                if target.name in kept:
                    self._kept[rel] = kept[target.name]
                if target is not m:
                    self._links[rel] = target.name
        self._files = files  # archive order: one sequential pass then serves clips in manifest order
        self._dirs = sorted(dirs)

    def files(self):
        if self._files is None:
            self._scan()
        return self._files

    def dirs(self):
        if self._files is None:
            self._scan()
        return self._dirs

    def head(self, path: str) -> Optional[bytes]:
        """The first bytes of a .wav member, kept by the listing pass (no further pass)."""
        if self._files is None:
            self._scan()
        return self._heads.get(path)

    def iter_bytes(self, paths):
        wanted = set(paths)
        if self._files is None:
            self._scan()
        if wanted <= set(self._kept):  # lists and background noise: kept by the listing pass
            for e in self._files:
                if e.path in wanted:
                    yield e.path, self._kept[e.path]
            return
        targets = {self._links[p] for p in wanted if p in self._links}
        held: dict[str, bytes] = {}  # files that wanted links stand for, kept until the links pass by
        with tarfile.open(self.location, "r:*") as tar:
            for m in tar:
                if not wanted:
                    break
                rel = self._name(m.name)
                rel = rel[len(self._prefix):] if rel.startswith(self._prefix) else rel
                data = None
                if m.isfile() and (rel in wanted or m.name in targets):
                    data = tar.extractfile(m).read()
                    if m.name in targets:
                        held[m.name] = data
                elif rel in wanted and (m.islnk() or m.issym()):
                    data = held.get(self._links.get(rel, ""))
                    if data is None:  # a link to a file further on: tarfile finds it (slowly)
                        try:
                            fh = tar.extractfile(m)
                        except KeyError:
                            fh = None
                        data = fh.read() if fh is not None else None
                if rel in wanted and data is not None:
                    wanted.discard(rel)
                    yield rel, data


def open_source(location: str | Path) -> Source:
    """Open a data set folder or .tar(.gz) archive; a wrong path is a clear error."""
    p = Path(location).expanduser()
    if not p.exists():
        raise KwsError(f"data path {p} does not exist; give an extracted Speech Commands folder or its "
                       ".tar.gz (kws-hpc data synth DIR makes the built-in corpus)")
    if p.is_dir():
        return FolderSource(p)
    if p.name.endswith((".tar.gz", ".tgz", ".tar")):
        return TarSource(p)
    raise KwsError(f"data path {p} is neither a folder nor a .tar.gz archive")
