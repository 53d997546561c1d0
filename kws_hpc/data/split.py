"""The data stage: vocabularies, the data set's own split rule, quotas, and the clips.tsv manifest.

`scan()` turns a `Source` into one `Clip` per file it saw (no audio read), `select()` decides which
valid clips each split keeps after quotas and `_unknown_`/`_silence_` sampling. Every clip keeps a
row in the manifest; a clip that is not used says why in `reason`.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import operator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

import numpy as np

from kws_hpc.config import BACKGROUND, DIGITS, SEED12, SILENCE, SPLITS, UNKNOWN, V2_12, DataConfig
from kws_hpc.errors import KwsError
from kws_hpc.io import write_tsv
from kws_hpc.data.source import Source

MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1  # from the data set's README: keeps the hash split stable
SILENCE_SPEAKER = "_noise_"


@dataclass
class Clip:
    """One row of clips.tsv."""

    path: str  # relative to the data set root; silence segments: noise file + '#start'
    word: str  # folder name
    label: str = ""  # class name used for training ('' = not a class of this vocabulary)
    speaker: str = ""
    split: str = ""
    samples: int = -1  # samples in the file before padding/trimming (-1 = not read)
    reason: str = ""  # why the clip is not in the store ('' = it is)
    start: int = 0  # first sample (silence segments cut from background noise)
    gain: float = 1.0  # silence segments are scaled noise

    @property
    def used(self) -> bool:
        return self.reason == "" and self.split in SPLITS and self.label != ""


def resolve_vocab(vocab: str, words: Iterable[str]) -> tuple[list[str], bool]:
    """Keyword list for a vocabulary name and whether it adds `_silence_` + `_unknown_`."""
    words = sorted(w for w in words if not w.startswith("_"))
    if vocab == "seed12":
        return list(SEED12), False
    if vocab == "v2-12":
        return list(V2_12), True
    if vocab == "digits":
        return list(DIGITS), False
    if vocab == "all":
        if not words:
            raise KwsError("vocabulary 'all' found no word folders in the data set")
        return words, False
    chosen = [w.strip() for w in vocab.split(",") if w.strip()]
    if not chosen or len(set(chosen)) != len(chosen):
        raise KwsError(f"vocabulary {vocab!r} is not seed12, v2-12, digits, all or a comma list of distinct words")
    return chosen, False


def label_names(vocab_words: list[str], extras) -> list[str]:
    """Class order of a store: the keywords as given, then the extra classes (`_silence_`, `_unknown_`):
    `extras` is their tuple (what `scan` returns), or True for both."""
    return list(vocab_words) + list((SILENCE, UNKNOWN) if extras is True else extras or ())


def speaker_of(path: str) -> str:
    """The speaker id: the file name up to `_nohash_` (the whole stem when absent)."""
    name = path[path.rfind("/") + 1:]
    dot = name.rfind(".")  # os.path.splitext's rule, without its cost (the scan asks for every clip)
    stem = name[:dot] if dot > 0 and name[:dot].strip(".") else name
    cut = stem.find("_nohash_")
    return stem if cut < 0 else stem[:cut]


def hash_split(path: str, val_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """The data set's own rule: sha1 of the name up to `_nohash_`, so a speaker stays in one split."""
    return speaker_split(speaker_of(path), val_percent, test_percent)


@functools.lru_cache(maxsize=1 << 16)
def speaker_split(speaker: str, val_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """`hash_split` from the speaker id (one sha1 per speaker, not per clip: the scan asks for every clip)."""
    hashed = hashlib.sha1(speaker.encode()).hexdigest()
    pct = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < val_percent:
        return "val"
    if pct < val_percent + test_percent:
        return "test"
    return "train"


def _official_lists(source: Source) -> tuple[set, set]:
    val, test = source.read_text("validation_list.txt"), source.read_text("testing_list.txt")
    if val is None or test is None:
        raise KwsError(f"--split official needs validation_list.txt and testing_list.txt in {source.location}; "
                       "use --split hash for a data set without them")
    return set(val.split()), set(test.split())


def scan(source: Source, cfg: DataConfig) -> tuple[list[Clip], list[str], tuple]:
    """List every file as a Clip with its word, label, speaker and split; nothing is decoded yet.

    Returns the clips, the keyword list and the extra classes added: `(_silence_, _unknown_)`, only
    `(_silence_,)` when there is no other word to make `_unknown_` of, or `()`. A link that cannot be
    read is a clip with its reason.
    """
    word_dirs = [d for d in source.dirs() if d != BACKGROUND]
    keywords, extras = resolve_vocab(cfg.vocab, word_dirs)
    extras = extras or cfg.extras
    missing = [w for w in keywords if w not in word_dirs]
    if missing:
        have = ", ".join(word_dirs[:12]) + (", ..." if len(word_dirs) > 12 else "") or "none"
        raise KwsError(f"vocabulary {cfg.vocab!r}: no word folder for {', '.join(repr(w) for w in missing)} in "
                       f"{source.location} (folders: {have}); give --vocab as a comma list of words it has")
    if cfg.split not in ("hash", "official"):
        raise KwsError(f"unknown split {cfg.split!r}: use hash or official")
    official = _official_lists(source) if cfg.split == "official" else None
    kw = set(keywords)
    clips, seen_dirs = [], set()
    for e in source.files():
        if "/" not in e.path:
            continue  # top-level files: README, LICENSE, the official lists
        word = e.path.split("/", 1)[0]
        seen_dirs.add(word)
        if word == BACKGROUND:
            continue
        clip = Clip(path=e.path, word=word, speaker=speaker_of(e.path))
        if official is not None:
            clip.split = "val" if e.path in official[0] else "test" if e.path in official[1] else "train"
        else:
            clip.split = speaker_split(clip.speaker, cfg.val_percent, cfg.test_percent)
        if not e.path.lower().endswith(".wav"):
            clip.reason = "not a .wav file"
        elif word in kw:
            clip.label = word
        elif extras:
            clip.label = UNKNOWN  # a candidate; select() samples how many it keeps
        else:
            clip.reason = "word not in vocabulary"
        clips.append(clip)
    for path, why in sorted(source.broken.items()):
        word = path.split("/", 1)[0]
        if "/" in path and word != BACKGROUND:
            clips.append(Clip(path=path, word=word, speaker=speaker_of(path), reason=f"unreadable link: {why}"))
    for d in word_dirs:
        if d not in seen_dirs:
            clips.append(Clip(path=d + "/", word=d, reason="empty word folder"))
    others = any(d not in kw for d in word_dirs)
    return clips, keywords, ((SILENCE, UNKNOWN) if others else (SILENCE,)) if extras else ()


def _rank(clip: Clip, seed: int) -> str:
    """Deterministic order for sampling: stable as files are added, independent of listing order."""
    return hashlib.sha1(f"{seed}:{clip.path}".encode()).hexdigest()


def _every_word_in_turn(clips: list[Clip], seed: int) -> list[Clip]:
    """`_unknown_` candidates in the order they are kept: one clip of each non-keyword word in turn (each
    word's clips in hash order, the words in hash order), so every word is heard before any twice."""
    by_word: dict[str, list[Clip]] = {}
    for c in sorted(clips, key=lambda c: _rank(c, seed)):
        by_word.setdefault(c.word, []).append(c)
    queues = list(by_word.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def select(clips: list[Clip], cfg: DataConfig, keywords: list[str], extras: bool,
           noise: dict[str, int]) -> list[Clip]:
    """Apply `_unknown_` sampling, `_silence_` segments and per-class quotas to the valid clips.

    `noise` maps background-noise file paths to their length in samples. Returns the clips with
    silence segments appended; every dropped clip gets its reason.
    """
    cfg = cfg.resolved()
    out = list(clips)
    for split in SPLITS:
        ok = [c for c in clips if c.split == split and c.reason == "" and c.label]
        known = sum(1 for c in ok if c.label != UNKNOWN)
        if extras:
            n_extra = int(math.ceil(known * cfg.unknown_percent / 100.0))
            unknown = _every_word_in_turn([c for c in ok if c.label == UNKNOWN], cfg.seed)
            for c in unknown[n_extra:]:
                c.reason = "unknown word not sampled"
            out += _silence(split, n_extra, noise, cfg)
        quota = cfg.quota(split)
        if quota is not None:
            by_label: dict[str, list[Clip]] = {}
            for c in out:
                if c.split == split and c.used:
                    by_label.setdefault(c.label, []).append(c)
            for group in by_label.values():
                for c in sorted(group, key=lambda c: _rank(c, cfg.seed))[quota:]:
                    c.reason = f"over quota ({quota} per class)"
    return out


def _silence(split: str, count: int, noise: dict[str, int], cfg: DataConfig) -> list[Clip]:
    """`_silence_` clips: 1-s segments of background noise, each split cut from its own stretch."""
    if count == 0 or not noise:
        return []
    lo, hi = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    paths, seg = sorted(noise), 16000
    out = []
    for i in range(count):
        path = paths[i % len(paths)]
        n = noise[path]
        first, last = int(lo * n), int(hi * n) - seg
        start = int(rng.integers(first, max(first + 1, last)))
        # a tenth of silence is true digital silence, the rest quiet noise (as the data set's recipe does)
        gain = 0.0 if rng.random() < 0.1 else float(rng.uniform(0.0, 1.0))
        out.append(Clip(path=f"{path}#{start}", word=BACKGROUND, label=SILENCE, speaker=SILENCE_SPEAKER,
                        split=split, samples=seg, start=start, gain=gain))
    return out


MANIFEST_FIELDS = [f.name for f in fields(Clip)]


def write_manifest(clips: list[Clip], path: Path) -> None:
    """clips.tsv: one row per clip seen, written under a temporary name and renamed."""
    write_tsv(path, MANIFEST_FIELDS, map(operator.attrgetter(*MANIFEST_FIELDS), clips))


def read_manifest(path: Path) -> list[Clip]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    types = {f.name: f.type for f in fields(Clip)}
    out = []
    for r in rows:
        kw = {}
        for k, v in r.items():
            t = types.get(k)
            kw[k] = int(v) if t in ("int", int) else float(v) if t in ("float", float) else v
        out.append(Clip(**kw))
    return out


def empty_classes(counts: dict) -> list[tuple[str, str]]:
    """(split, class) pairs with no clip, from `split_counts`."""
    return [(s, lab) for s in SPLITS for lab, n in counts[s]["actual"].items() if n == 0]


def check_classes(counts: dict, cfg: DataConfig) -> None:
    """Every class needs a clip in every split: a KwsError says which are empty and how to fix it."""
    empty = empty_classes(counts)
    if not empty:
        return
    where = ", ".join(f"{lab!r} in {s}" for s, lab in empty[:6]) + (f" and {len(empty) - 6} more" if len(empty) > 6
                                                                      else "")
    if all(lab == SILENCE for _, lab in empty) and (cfg.resolved().unknown_percent or 0) > 0:
        raise KwsError(f"no clip of {where}: {SILENCE} clips are cut from the background noise "
                       f"({BACKGROUND}/*.wav), and this data set has none that can be read; add noise files "
                       "there, or drop --extras")
    fix = ("the official lists put none there: drop those words from --vocab" if cfg.split == "official" else
           f"too few speakers for --val-percent {cfg.val_percent:g} / --test-percent {cfg.test_percent:g}: "
           "use more speakers (kws-hpc data synth --speakers N), larger percentages, or drop those words "
           "from --vocab")
    raise KwsError(f"no clip of {where}; {fix}")


def split_counts(clips: list[Clip], labels: list[str], cfg: DataConfig) -> dict:
    """Per class per split: quota and actual count, for summary.json and the report."""
    counts = {}
    for split in SPLITS:
        per = {lab: 0 for lab in labels}
        for c in clips:
            if c.split == split and c.used:
                per[c.label] += 1
        counts[split] = {"quota": cfg.quota(split), "actual": per, "total": sum(per.values())}
    return counts

