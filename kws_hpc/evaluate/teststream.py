"""Long test streams for the live detector: keywords, other words and noise bursts with gaps, plus truth.

`make_stream` writes `FILE.wav` (16 kHz mono 16-bit) and `FILE.tsv`, one row per event:

    onset  offset  word  kind  clip_start  source

`onset`/`offset` are the estimated speech onset and end of the word in the stream (seconds), found from
the clip's own energy (`speech_bounds`), not where the 1-s clip starts (that is `clip_start`). `kind` is
`keyword`, `other` (a word outside the keyword list) or `noise` (a burst of background noise; its word is
`_noise_`). Clips are drawn from a Speech Commands layout folder or archive (the synthetic corpus or real
data), optionally only from one split's speakers, and are mixed over a quiet continuous background, the
next word starting a random gap after the previous one ends. The same corpus and seed give the same bytes.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from kws_hpc.config import BACKGROUND, SEED12, SILENCE, SPLITS, UNKNOWN
from kws_hpc.errors import KwsError
from kws_hpc.io import atomic_path, write_tsv

SR = 16000
NOISE_WORD = "_noise_"
# Same stretches of each noise file that the store's _silence_ clips of a split are cut from (data.py).
NOISE_RANGES = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0), None: (0.0, 1.0)}
USABLE = ("", "word not in vocabulary", "unknown word not sampled", "over quota")  # clips.tsv reasons


@dataclass(frozen=True)
class TruthEvent:
    """One event of a stream's truth table."""

    onset: float  # speech onset in the stream, seconds (estimated from the clip's energy)
    offset: float  # end of the speech, seconds
    word: str  # the word said (`_noise_` for a noise burst)
    kind: str  # keyword | other | noise
    clip_start: float = 0.0  # where the 1-s clip (or the burst) starts in the stream
    source: str = ""  # the clip's path in the corpus, or `noise file#start`


def speech_bounds(wave: np.ndarray, frame: int = 160, min_frames: int = 3) -> tuple[int, int]:
    """(first, end) sample of the speech in a clip, from 10-ms frame energies.

    A frame is speech when its energy is above the midpoint (in dB) between the clip's noise floor (10th
    percentile) and its loudest frame, and at most 30 dB below that frame; the onset is the first run of
    `min_frames` such frames, the end the last speech frame. A clip without contrast is all speech.
    """
    n = len(wave) // frame
    if n == 0:
        return 0, len(wave)
    e = 10 * np.log10(np.mean(wave[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1) + 1e-12)
    floor, peak = np.percentile(e, 10), e.max()
    if peak - floor < 6.0:
        return 0, len(wave)
    loud = e > max(floor + 0.5 * (peak - floor), peak - 30.0)
    runs = np.convolve(loud, np.ones(min_frames), "valid") >= min_frames
    first = int(np.argmax(runs)) if runs.any() else int(np.argmax(loud))
    last = int(len(loud) - 1 - np.argmax(loud[::-1]))
    return first * frame, (last + 1) * frame


def read_truth(path: str | Path) -> list[TruthEvent]:
    """A truth TSV (as written by `make_stream`); `word` and `onset` are the columns that must exist."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise KwsError(f"truth file {p} does not exist; kws-hpc data stream writes one beside its WAV")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and not {"word", "onset"} <= set(rows[0]):
        raise KwsError(f"truth file {p} needs the columns word and onset (tab-separated, with a header)")
    try:
        return [TruthEvent(onset=float(r["onset"]), offset=float(r.get("offset") or r["onset"]),
                           word=r["word"], kind=r.get("kind") or "keyword",
                           clip_start=float(r.get("clip_start") or r["onset"]), source=r.get("source") or "")
                for r in rows]
    except ValueError as e:
        raise KwsError(f"truth file {p}: a time is not a number ({e})") from e


def write_truth(events: Sequence[TruthEvent], path: Path) -> None:
    names = [f.name for f in fields(TruthEvent)]
    write_tsv(path, names, ({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in asdict(e).items()}
                            for e in events))


def stream_summary(tsv: str | Path, minutes: float) -> str:
    """One line: how many keywords, other words and noise bursts a stream's truth holds."""
    truth = read_truth(tsv)
    kinds = {k: sum(e.kind == k for e in truth) for k in ("keyword", "other", "noise")}
    return (f"wrote {minutes:g} min: {kinds['keyword']} keywords, {kinds['other']} other words, "
            f"{kinds['noise']} noise bursts; truth in {tsv}")


def make_stream(corpus: str | Path, out: str | Path, minutes: float = 1.0, seed: int = 0,
                keywords: Optional[Sequence[str]] = None, store: str | Path | None = None,
                split: Optional[str] = None, **mix) -> tuple[Path, Path]:
    """Write a stream WAV and its truth TSV beside it; returns (wav_path, tsv_path).

    `keywords` default to the store's keyword labels (with `store`), else the seed12 words the corpus has.
    `split` keeps only that split's speakers: the store's clips.tsv says which (with `store`), otherwise the
    data set's hash rule with 10 % val / 10 % test. `mix` goes to `stream_audio` (shares, gaps, levels).
    """
    wav = Path(out).expanduser()
    if wav.suffix.lower() != ".wav":
        raise KwsError(f"stream output {wav} must end in .wav (its truth goes to the same name with .tsv)")
    shares = (mix.get("keyword_share", 0.6), mix.get("noise_share", 0.1))
    if not (shares[0] >= 0 and shares[1] >= 0 and sum(shares) <= 1):
        raise KwsError("--keyword-share and --noise-share must be >= 0 and add up to at most 1")
    audio, events = stream_audio(corpus, minutes, seed, keywords, store, split, **mix)
    import soundfile as sf

    wav.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(wav) as tmp:
        sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV")
    tsv = wav.with_suffix(".tsv")
    write_truth(events, tsv)
    return wav, tsv


def stream_audio(corpus, minutes: float = 1.0, seed: int = 0, keywords=None, store=None, split=None,
                 keyword_share: float = 0.6, noise_share: float = 0.1, gap_s: tuple = (0.5, 1.5),
                 background_db: Optional[float] = -55.0, noise_db: tuple = (-40.0, -25.0)
                 ) -> tuple[np.ndarray, list[TruthEvent]]:
    """The stream in memory: float32 samples and the truth events, in time order.

    Each event is a keyword clip (`keyword_share`), a noise burst of 0.5-1.5 s at `noise_db` dBFS RMS
    (`noise_share`) or another word (the rest); the next speech starts `gap_s` seconds after the previous
    ends. Everything sits on a continuous background at `background_db` dBFS RMS (None: digital silence).
    """
    from kws_hpc.data.source import open_source

    if minutes <= 0:
        raise KwsError(f"--minutes must be positive, got {minutes}")
    if split not in (None, *SPLITS):
        raise KwsError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    source = open_source(corpus)
    kw_clips, other_clips, noise_paths = _pools(source, keywords, store, split)
    total = int(round(minutes * 60 * SR))
    plan = _plan(kw_clips, other_clips, np.random.default_rng([seed, 0]), keyword_share, noise_share,
                 total // int(gap_s[0] * SR + 1) + 1)
    clips = _decode(source, sorted({path for _, _, path in plan if path}))  # one pass, even over an archive
    noises = _decode(source, noise_paths, min_samples=SR)
    rng, (lo, hi) = np.random.default_rng([seed, 1]), NOISE_RANGES[split]
    audio = _background(noises, total, background_db, rng, lo, hi)
    events, t = [], 0.5 + rng.uniform(*gap_s) / 2
    for kind, word, path in plan:
        if kind == "noise":
            seg, src = _burst(noises, rng, noise_db, lo, hi)
            first, end = 0, len(seg)
        else:
            seg, src = clips[path], path
            first, end = speech_bounds(seg)
        start = max(0, int(round(t * SR)) - first)
        if start + len(seg) > total - SR // 4:
            break
        audio[start:start + len(seg)] += _faded(seg)
        events.append(TruthEvent(onset=(start + first) / SR, offset=(start + end) / SR, word=word, kind=kind,
                                 clip_start=start / SR, source=src))
        t = (start + end) / SR + rng.uniform(*gap_s)
    if keyword_share > 0 and not any(e.kind == "keyword" for e in events):
        raise KwsError(f"a {minutes} min stream holds no keyword; ask for more minutes")
    if not events:
        raise KwsError(f"a {minutes} min stream holds no word or noise burst; ask for more minutes")
    return np.clip(audio, -1.0, 1.0).astype(np.float32), events


def _pools(source, keywords, store, split) -> tuple[dict, dict, list]:
    """Clip paths per keyword and per other word (in the wanted split), and the noise files."""
    from kws_hpc.data.split import hash_split

    files = [e.path for e in source.files() if "/" in e.path and e.path.lower().endswith(".wav")]
    noise = sorted(p for p in files if p.startswith(BACKGROUND + "/"))
    words = sorted({p.split("/", 1)[0] for p in files} - {BACKGROUND})
    allowed = None
    if store is not None:
        info, allowed = _store_clips(store, split)
        keywords = keywords or [lab for lab in info if lab not in (SILENCE, UNKNOWN)]
    elif split is not None:
        allowed = {p for p in files if hash_split(p) == split}
    keywords = list(keywords) if keywords else [w for w in SEED12 if w in words]
    if not keywords:
        raise KwsError(f"{source.location} has none of the seed12 words; pass --keywords w1,w2,...")
    pools: tuple[dict, dict] = ({}, {})
    for p in sorted(files):
        word = p.split("/", 1)[0]
        if word == BACKGROUND or (allowed is not None and p not in allowed):
            continue
        pools[0 if word in keywords else 1].setdefault(word, []).append(p)
    missing = [w for w in keywords if w not in pools[0]]
    if missing:
        where = f" in the {split} split" if split else ""
        raise KwsError(f"no clips of keyword(s) {', '.join(missing)}{where} of {source.location}; "
                       "check --keywords, --split and --corpus")
    return pools[0], pools[1], noise


def _store_clips(store, split) -> tuple[list, set]:
    """The store's labels and the corpus paths its clips.tsv puts in `split` (usable clips only)."""
    from kws_hpc.data.split import read_manifest
    from kws_hpc.features.store import MANIFEST, open_store

    info = open_store(store)
    rows = read_manifest(info.path / MANIFEST)
    allowed = {c.path for c in rows if c.reason.split(" (")[0] in USABLE and c.word != BACKGROUND
               and (split is None or c.split == split) and "#" not in c.path}
    return list(info.labels), allowed


class _Deck:
    """Clips of one word dealt in a seeded random order; reshuffled when all have been dealt."""

    def __init__(self, paths: list, rng: np.random.Generator):
        self.paths, self.rng, self.left = sorted(paths), rng, []

    def draw(self) -> str:
        if not self.left:
            self.left = [self.paths[i] for i in self.rng.permutation(len(self.paths))]
        return self.left.pop()


def _plan(kw_clips: dict, other_clips: dict, rng, keyword_share: float, noise_share: float, n: int) -> list:
    """`n` events (kind, word, clip path or None), more than a stream of the asked length can hold."""
    decks = {w: _Deck(p, rng) for w, p in {**kw_clips, **other_clips}.items()}
    kw_words, other_words, plan = sorted(kw_clips), sorted(other_clips), []
    if keyword_share == 0 and not other_words and noise_share < 1:
        raise KwsError("a stream without keywords (--keyword-share 0) needs other words, and the corpus has "
                       "none in this split; pass --noise-share 1 for noise only")
    for _ in range(n):
        r = rng.random()
        if r < keyword_share or (not other_words and r >= keyword_share + noise_share and keyword_share > 0):
            word = kw_words[int(rng.integers(len(kw_words)))]
            plan.append(("keyword", word, decks[word].draw()))
        elif r < keyword_share + noise_share:
            plan.append(("noise", NOISE_WORD, None))
        else:
            word = other_words[int(rng.integers(len(other_words)))]
            plan.append(("other", word, decks[word].draw()))
    return plan


def _decode(source, paths: list, min_samples: int = 1) -> dict:
    """{path: float64 samples} of the readable files among `paths` (noise: at least `min_samples` long)."""
    from kws_hpc.data.source import BadClip, decode_wav

    out = {}
    for path, data in source.iter_bytes(paths):
        try:
            x = decode_wav(data, SR).astype(np.float64)
        except BadClip as e:
            if min_samples > 1:
                continue  # a bad noise file only means less noise
            raise KwsError(f"{path} in {source.location}: {e}") from e
        if len(x) >= min_samples:
            out[path] = x
    return out


def _level(x: np.ndarray, db: float) -> np.ndarray:
    return x * (10 ** (db / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12))


def _segment(noises: dict, rng, n: int, lo: float, hi: float) -> tuple[np.ndarray, str]:
    """`n` samples of a random noise file's [lo, hi) stretch (looped if short); white noise without files."""
    if not noises:
        return rng.standard_normal(n), "white noise"
    path = sorted(noises)[int(rng.integers(len(noises)))]
    x = noises[path]
    a = int(lo * len(x))
    part = x[a:max(a + 1, int(hi * len(x)))]
    if len(part) <= n:
        return np.resize(part, n), f"{path}#{a}"
    at = int(rng.integers(len(part) - n + 1))
    return part[at:at + n], f"{path}#{a + at}"


def _background(noises, total, db, rng, lo, hi) -> np.ndarray:
    if db is None:
        return np.zeros(total)
    seg, _ = _segment(noises, rng, total, lo, hi)
    return _level(seg, db)


def _burst(noises, rng, db_range, lo, hi) -> tuple[np.ndarray, str]:
    seg, src = _segment(noises, rng, int(rng.uniform(0.5, 1.5) * SR), lo, hi)
    return _level(seg, rng.uniform(*db_range)), src


def _faded(x: np.ndarray, n: int = 160) -> np.ndarray:
    """10-ms raised-cosine fades, so a clip's own background does not start with a click."""
    x = x.copy()
    n = min(n, len(x) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    x[:n] *= ramp
    x[len(x) - n:] *= ramp[::-1]
    return x
