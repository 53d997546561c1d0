"""The feature job: clips in, one HDF5 file per split out, once per signature.

Worker processes decode clips and compute their log-mels in batches; the main process only writes.
Rerunning with the same data and settings finds the finished store and recomputes nothing; a killed
run leaves `.partial` files that the next run replaces, keeping any split already finished.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kws_hpc.data import split as D
from kws_hpc.config import SPLITS, DataConfig, FeatureConfig, signature
from kws_hpc.errors import KwsError
from kws_hpc.features.logmel import add_noise, log_mels, time_shift
from kws_hpc.features.noise import read_noise, say_noise
from kws_hpc.features.padding import clip_rng, noise_windows, pad_clip
from kws_hpc.features.slots import close_slots, open_slots, worker_slots
from kws_hpc.data.source import BadClip, FolderSource, Source, decode_wav, fix_length, open_source, probe
from kws_hpc.features.store import (MANIFEST, PARTIAL, RECIPE, SUMMARY, SplitWriter, check_split, chunk_sums,
                                    is_complete, log_summary, problems, split_attrs, split_file, summarize)
from kws_hpc.io import lock, remove_stale, write_json, write_text
from kws_hpc.progress import bar as progress_bar

CHUNK = 64  # clips per worker task: enough to batch, small enough that the last tasks of a split balance
_NOISE: dict = {}


def _init_worker(noise: dict) -> None:
    import signal

    import torch

    global _NOISE
    _NOISE = noise
    torch.set_num_threads(1)  # one process per core; intra-op threads would fight over them
    if mp.current_process().name != "MainProcess":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


def _bytes(payload) -> bytes:
    if isinstance(payload, bytes):
        return payload
    with open(payload, "rb", buffering=0) as fh:  # one read, no pathlib, no buffer copy
        return fh.read()


def _augment(wave: np.ndarray, path: str, k: int, cfg: DataConfig, sr: int) -> np.ndarray:
    rng = clip_rng(path, cfg.seed, k)
    max_shift = int(cfg.augment_shift_ms * sr / 1000)
    wave = time_shift(wave, int(rng.integers(-max_shift, max_shift + 1)))
    if _NOISE:
        noise = _NOISE[sorted(_NOISE)[int(rng.integers(len(_NOISE)))]]
        start = int(rng.integers(0, max(1, len(noise) - len(wave))))
        seg = fix_length(noise[start:start + len(wave)], len(wave))
    else:
        seg = rng.standard_normal(len(wave)).astype(np.float32)
    return add_noise(wave, seg, float(rng.uniform(*cfg.augment_snr_db)))


def _featurize(task):
    """Decode a chunk of clips (plus augmented copies) and compute their log-mels in one batch."""
    feat_cfg, data_cfg, jobs = task
    n = feat_cfg.clip_samples
    waves = []
    for payload, path, silence, copies in jobs:
        if silence is not None:  # (start, gain) of a _silence_ segment
            start, gain = silence
            wave = gain * fix_length(_NOISE[path.split("#")[0]][start:start + n], n)
        else:
            try:
                wave = decode_wav(_bytes(payload), feat_cfg.sample_rate)
                rng = clip_rng(path, data_cfg.seed) if len(wave) < n else None  # only if padded: ~60 us
                wave = pad_clip(wave, n, data_cfg.pad, rng)
            except BadClip as e:  # its header was sound: the audio itself is not
                raise KwsError(f"{path}: {e}; remove the file and re-run (its header looked sound)") from None
        waves.append(wave)
        waves += [_augment(wave, path, k, data_cfg, feat_cfg.sample_rate) for k in range(1, copies + 1)]
    x = np.stack(waves).astype(np.float32, copy=False)
    return log_mels(x, feat_cfg).astype(feat_cfg.dtype)


def _payloads(source: Source, paths: list[str]):
    """(path, payload) in source order: file paths for a folder (workers read them), bytes for an archive."""
    if isinstance(source, FolderSource):
        return ((p, source.local_str(p)) for p in paths)
    return source.iter_bytes(paths)


def _pool(workers: int, noise: dict, feat_cfg: FeatureConfig):
    """The worker processes (None: work in this one). torch, torchaudio and the mel bank are loaded
    here first, so forked workers start warm instead of each importing them (~2 s)."""
    import torch  # noqa: F401  (loaded before the fork)
    from kws_hpc.features.logmel import _mel_parts

    _mel_parts(feat_cfg)
    if workers <= 0:
        _init_worker(noise)
        return None
    return mp.get_context().Pool(workers, initializer=_init_worker, initargs=(noise,))


def _map(pool, fn, items, chunksize=1):
    return map(fn, items) if pool is None else pool.imap(fn, items, chunksize=chunksize)


def build_store(data: str | Path, data_cfg: DataConfig = DataConfig(), feat_cfg: FeatureConfig = FeatureConfig(),
                out: str | Path = "features", workers: Optional[int] = None, progress: bool = True,
                log: Callable[[str], None] = print, recipe: Optional[str] = None) -> Path:
    """Build (or find, or complete) the feature store for `data`; returns its folder. `recipe`: the
    `[features]` config table that asked for it, kept in the store as config.toml."""
    t0 = time.perf_counter()
    data_cfg = data_cfg.check().resolved()
    feat_cfg.check()
    if workers is not None and workers < 0:
        raise KwsError(f"--workers {workers} must be >= 0 (0 = in this process)")
    source = open_source(data)
    fingerprint = source.fingerprint()
    sig = signature(feat_cfg, data_cfg, fingerprint)
    store = Path(out).expanduser() / sig
    if is_complete(store) and not problems(store, sig):
        log(f"store {sig} is complete: nothing recomputed (checked in {time.perf_counter() - t0:.2f} s)")
        return store
    _make_folder(store.parent)
    with lock(store, what=f"store {sig}", log=log):  # a second job on the same store waits for this one
        if is_complete(store) and not problems(store, sig):
            log(f"store {sig} was completed by another job: nothing recomputed")
            return store
        if store.is_dir() and remove_stale(store, f".*{PARTIAL}"):
            log(f"removed split files left unfinished by an interrupted run in {store}")
        if is_complete(store):
            for name, why in problems(store, sig).items():
                log(f"{name} {why}: rebuilding it")
                (store / name).unlink(missing_ok=True)
            (store / SUMMARY).unlink(missing_ok=True)
        return _build(source, data, data_cfg, feat_cfg, store, sig, fingerprint, workers, progress, log, t0, recipe)


def find_store(data: str | Path, data_cfg: DataConfig = DataConfig(), feat_cfg: FeatureConfig = FeatureConfig(),
               out: str | Path = "features") -> Optional[Path]:
    """The complete store `build_store` would make of `data` with these configs, or None if not built."""
    source = open_source(data)
    store = Path(out).expanduser() / signature(feat_cfg, data_cfg.check().resolved(), source.fingerprint())
    return store if is_complete(store) else None


def _build(source, data, data_cfg, feat_cfg, store: Path, sig: str, fingerprint: str, workers, progress,
           log, t0: float, recipe: Optional[str] = None) -> Path:
    """The feature job proper, with the store's lock held."""
    from kws_hpc.runtime import available_cpus

    workers = available_cpus() if workers is None else workers
    clips, keywords, extras = D.scan(source, data_cfg)
    labels = D.label_names(keywords, extras)
    if data_cfg.extras and D.UNKNOWN not in extras:
        log(f"--extras: {data} has no word folders besides the keywords, so only {D.SILENCE} is added "
            f"(no {D.UNKNOWN} class: there are no other words to fill it)")
    noise, unreadable = read_noise(source, feat_cfg)
    say_noise(noise, unreadable, extras, log)
    slots = open_slots(workers, CHUNK * (data_cfg.augment + 1), feat_cfg)  # before the workers fork
    pool = _pool(workers, noise, feat_cfg)
    try:
        windows = _noise_windows_later(pool, feat_cfg)  # computed by a worker while the clips are checked
        _probe_all(source, clips, pool, progress)
        clips = D.select(clips, data_cfg, keywords, extras, {p: len(w) for p, w in noise.items()})
        used = [c for c in clips if c.used]
        if not used:
            reasons = Counter(c.reason for c in clips if c.reason)
            why = ", ".join(f"{n} {r}" for r, n in reasons.most_common(4)) or "no clips found"
            raise KwsError(f"nothing usable in {data} for vocabulary {data_cfg.vocab!r} ({why}); "
                           "check the path and --vocab")
        D.check_classes(D.split_counts(clips, labels, data_cfg), data_cfg)
        store.mkdir(parents=True, exist_ok=True)
        D.write_manifest(clips, store / MANIFEST)
        todo = []
        for split in SPLITS:
            path = split_file(store, split)
            if path.is_file() and not check_split(path, sig):
                log(f"{split}.h5 already written, kept")
                continue
            todo.append(_Split(split, path, [c for c in used if c.split == split],
                               data_cfg.augment if split == "train" else 0))
        _write_all(source, used, todo, labels, sig, fingerprint, feat_cfg, data_cfg, pool, progress, windows, slots)
        if pool is not None:
            pool.close()
    finally:
        if slots is not None:
            slots.stop()  # a task still waiting for a slot gives up, so the pool can end
        if pool is not None:
            pool.terminate()  # after close(): the workers are done; after an error or Ctrl-C: stop them now
            pool.join()
        close_slots()
    summary = summarize(clips, labels, sig, fingerprint, data, feat_cfg, data_cfg, time.perf_counter() - t0,
                        noise={"files": sorted(noise), "unreadable": [{"path": p, "reason": why}
                                                                       for p, why in sorted(unreadable.items())]})
    if recipe is not None:
        write_text(store / RECIPE, recipe)
    write_json(store / SUMMARY, summary)  # last: the store is complete
    log_summary(summary, log)
    return store


def _make_folder(folder: Path) -> None:
    """The --out folder, or one clear error naming it and why it cannot be made."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KwsError(f"cannot create the store folder under {folder} ({e.strerror or e}); choose another --out")
    if not os.access(folder, os.W_OK):
        raise KwsError(f"cannot write in {folder} (permission denied); choose another --out")


def _probe_all(source: Source, clips: list, pool, progress: bool) -> None:
    """Check every candidate clip from its WAV header: record its length, or the reason it is unusable.
    An archive's headers were kept when it was listed; only a clip whose header runs past them is read."""
    todo = {c.path: c for c in clips if c.label and not c.reason}
    heads = getattr(source, "head", None)
    if heads is None:
        items = _payloads(source, list(todo))
    else:
        sizes = {e.path: e.size for e in source.files()}
        items = ((p, (heads(p) or b"", sizes[p])) for p in todo)
    again, items = [], iter(items)
    with progress_bar(len(todo), "checking clips", "clip", progress) as bar:
        for results in _map(pool, _probe_many, iter(lambda: list(islice(items, PROBE_BATCH)), [])):
            checked = 0
            for rel, samples, reason in results:
                if samples == -2:
                    again.append(rel)  # counted when read again below
                    continue
                todo[rel].samples, todo[rel].reason = samples, reason
                checked += 1
            bar.update(checked)
        for rel, samples, reason in _map(pool, probe, _payloads(source, again), chunksize=64):
            todo[rel].samples, todo[rel].reason = samples, reason
            bar.update()


PROBE_BATCH = 512  # clips per header-check task: handed out one by one, they cost the main process more than a worker


def _probe_many(items: list) -> list:
    return [probe(item) for item in items]


@dataclass
class _Split:
    """One split file to write: its clips (words in source order, then silence) and augmented copies."""

    name: str
    path: Path
    rows: list
    copies: int

    def __post_init__(self):
        self.words = [c for c in self.rows if c.label != D.SILENCE]
        self.rows = self.words + [c for c in self.rows if c.label == D.SILENCE]


def _featurize_for(task):
    """(split name, features, their per-mel sums for train.h5's statistics, None) of a (split name, task,
    slot) triple; with a slot, the features go into it and their row count takes their place."""
    name, job, slot = task
    feats = _featurize(job)
    sums = chunk_sums(feats, feats.shape[-1]) if name == "train" else None
    return (name, feats, sums, None) if slot is None else (name, worker_slots().put(slot, feats), sums, slot)


def _tasks(source, used: list, todo: list, feat_cfg, data_cfg, slots=None):
    """(split name, task, slot) triples: every split's words read in one pass over the source, in source
    order, each split's chunks filled in its own row order (words, then silence) exactly as it is written;
    with `slots`, each task waits for a free slot to return its features in."""
    def slot():
        return None if slots is None else slots.take()

    split_of = {s.name: s for s in todo}
    buffers: dict = {s.name: [] for s in todo}
    words = [c for c in used if c.split in split_of and c.label != D.SILENCE]

    def add(s: _Split, payload, clip):  # a plain tuple per clip: unpickling a Clip costs a worker ~7 us
        silence = (clip.start, clip.gain) if clip.label == D.SILENCE else None
        buffers[s.name].append((payload, clip.path, silence, s.copies))
        if len(buffers[s.name]) == CHUNK:
            chunk, buffers[s.name] = buffers[s.name], []
            return [(s.name, (feat_cfg, data_cfg, chunk), slot())]
        return []

    for clip, (rel, payload) in zip(words, _payloads(source, [c.path for c in words])):
        assert rel == clip.path, f"source order changed: {rel} != {clip.path}"
        yield from add(split_of[clip.split], payload, clip)
    for s in todo:
        for clip in s.rows[len(s.words):]:  # the split's silence, cut from the noise the workers hold
            yield from add(s, None, clip)
        if buffers[s.name]:
            yield s.name, (feat_cfg, data_cfg, buffers[s.name]), slot()


def _noise_windows_later(pool, feat_cfg: FeatureConfig) -> Callable[[], np.ndarray]:
    """The store's noise windows (train.h5 `noise`): a function that returns them, computed in a worker."""
    return (lambda: _windows(feat_cfg)) if pool is None else pool.apply_async(_windows, (feat_cfg,)).get


def _windows(feat_cfg: FeatureConfig) -> np.ndarray:
    return noise_windows(_NOISE, feat_cfg)  # the worker's copy of the noise


def _write_all(source, used, todo, labels, sig, fingerprint, feat_cfg, data_cfg, pool, progress, windows,
               slots=None) -> None:
    """Featurise every split still to write in one stream of tasks (one pass over an archive), each
    result appended to its split's file; the files are renamed into place once complete."""
    index = {lab: i for i, lab in enumerate(labels)}
    writers = {}
    try:
        for s in todo:
            k = s.copies + 1
            meta = {  # each clip is followed by its augmented copies
                "labels": [index[c.label] for c in s.rows for _ in range(k)],
                "speaker": [c.speaker for c in s.rows for _ in range(k)],
                "path": [c.path for c in s.rows for _ in range(k)],
                "augmented": [j for _ in s.rows for j in range(k)],
            }
            attrs = split_attrs(sig, fingerprint, labels, feat_cfg, data_cfg, s.name)
            train = s.name == "train"
            writers[s.name] = SplitWriter(s.path, len(s.rows) * k, meta, attrs, feat_cfg, train,
                                          noise=windows() if train else None)
        total = sum(w.n for w in writers.values())
        desc = ", ".join(f"{s.name}.h5" for s in todo)
        with progress_bar(total, desc, "clip", progress) as bar:
            for name, feats, sums, slot in _map(pool, _featurize_for,
                                                _tasks(source, used, todo, feat_cfg, data_cfg, slots)):
                if slot is not None:
                    feats = slots.read(slot, feats)
                writers[name].append(feats, sums)  # written before the slot is handed out again
                bar.update(len(feats))
                if slot is not None:
                    slots.release(slot)
        for s in todo:
            writers.pop(s.name).close()
    finally:
        for w in writers.values():
            w.abort()
