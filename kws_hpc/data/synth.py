"""The built-in synthetic Speech Commands corpus.

A "speaker" is a text-to-speech voice recipe (engine, voice, variant, pitch, speed). Its id is the first
8 hex characters of the sha1 of the recipe string, so the id names the recipe, and the data set's hash
split (which hashes the file name before `_nohash_`) keeps each speaker inside one split. Every clip is
drawn from a generator seeded by (seed, speaker, word, take), so a seed gives byte-identical files however
many workers render them, and an interrupted run is finished by running it again.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws_hpc.config import BACKGROUND, SEED12, SYNTH_TAKES as DEFAULT_TAKES, V2_12
from kws_hpc.errors import KwsError
from kws_hpc.io import atomic_path, write_text

OTHER_WORDS = ("house", "tree", "happy", "bed", "wow", "sheila")  # for _unknown_
DEFAULT_WORDS = tuple(dict.fromkeys(SEED12 + V2_12 + OTHER_WORDS))

SR = 16000
CLIP = SR  # samples per clip
MAX_WORD = int(0.95 * SR)  # longer words are sped up to this, so no clip cuts a word
EDGE = (CLIP - MAX_WORD) // 2  # the word starts and ends at least this far (25 ms) inside the clip
GAIN_DB = (-12.0, 0.0)  # peak level of a clip
SNR_DB = (5.0, 30.0)  # speech-to-background ratio over the word
NOISE_KINDS = ("white", "pink", "babble", "hum", "brown")

ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                 "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Variants that still sound like a person (whisper and the robot voices are left out).
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak",
                   "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Andrea", "Annie", "aunty", "belinda",
                   "grandma", "grandpa", "linda", "michel", "steph", "travis", "victor")
ESPEAK_PITCH = (30, 40, 50, 60, 70)  # -p (0-99), relative to the variant's own base pitch
ESPEAK_SPEED = (130, 150, 170, 190)  # -s, words per minute
FLITE_F0 = {  # int_f0_target_mean in Hz, around each voice's natural range
    "kal": (85, 100, 115, 130), "kal16": (85, 100, 115, 130), "awb": (90, 105, 120, 140),
    "rms": (85, 100, 115, 130), "slt": (150, 170, 190, 215)}
FLITE_STRETCH = (0.85, 1.0, 1.15, 1.3)  # duration_stretch: >1 is slower

# Background speech for the babble noise; keywords are removed so the noise never says one.
FILLER = ("the of and a to in is you that it he was for are as with his they at be this have from or had by "
          "but not what all were we when your can said there use an each which she how their if will way "
          "about many then them would like so these her long make thing see him has look more day could "
          "come did number sound most people over know water than call first who may side been now find")
INSTALL_HINT = "apt-get install espeak-ng flite (Debian) or brew install espeak-ng flite (macOS)"


@dataclass(frozen=True)
class VoiceRecipe:
    """One synthetic speaker, in each engine's own units."""

    engine: str  # espeak-ng | flite
    voice: str  # espeak-ng language voice or flite voice
    variant: str  # espeak-ng variant ("" for flite)
    pitch: float  # espeak-ng: -p (0-99); flite: int_f0_target_mean (Hz)
    speed: float  # espeak-ng: -s (words/min); flite: duration_stretch

    def __str__(self) -> str:
        voice = f"{self.voice}+{self.variant}" if self.variant else self.voice
        return f"{self.engine}:{voice}:p{self.pitch:g}:s{self.speed:g}"

    @property
    def speaker(self) -> str:
        return hashlib.sha1(str(self).encode()).hexdigest()[:8]

    def command(self, text: str, wav: str, rng: np.random.Generator | None = None) -> list[str]:
        """The engine's command line; `rng` jitters pitch and speed a little, as a person varies."""
        j = rng.uniform(-1, 1, 2) if rng is not None else np.zeros(2)
        if self.engine == "espeak-ng":
            pitch = int(np.clip(self.pitch + round(4 * j[0]), 0, 99))
            speed = int(self.speed + round(10 * j[1]))
            return ["espeak-ng", "-v", f"{self.voice}+{self.variant}", "-p", str(pitch), "-s", str(speed),
                    "-w", wav, text]
        f0, stretch = self.pitch * (1 + 0.05 * j[0]), self.speed * (1 + 0.05 * j[1])
        return ["flite", "-voice", self.voice, "--setf", f"int_f0_target_mean={f0:.1f}",
                "--setf", f"duration_stretch={stretch:.3f}", "-t", text, "-o", wav]


@functools.lru_cache(maxsize=1)
def _espeak_installed() -> tuple[set, set]:
    """The English voices and variants this espeak-ng has: it silently falls back on unknown ones."""
    def listing(kind: str) -> str:
        return subprocess.run(["espeak-ng", f"--voices={kind}"], capture_output=True, text=True).stdout

    voices = {line.split()[1] for line in listing("en").splitlines()[1:] if len(line.split()) > 1}
    return voices, set(re.findall(r"!v/(\S+)", listing("variant")))


def available_voices() -> list[VoiceRecipe]:
    """Every distinct voice recipe the installed engines can make, in a fixed order."""
    engines, out = [e for e in ("espeak-ng", "flite") if shutil.which(e)], []
    if not engines:
        raise KwsError(f"no speech synthesizer found for the synthetic corpus: {INSTALL_HINT}")
    if "espeak-ng" in engines:
        voices, variants = _espeak_installed()
        out += [VoiceRecipe("espeak-ng", v, var, p, s) for v, var, p, s in itertools.product(
            [v for v in ESPEAK_VOICES if v in voices], [v for v in ESPEAK_VARIANTS if v in variants],
            ESPEAK_PITCH, ESPEAK_SPEED)]
    if "flite" in engines:
        have = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        out += [VoiceRecipe("flite", v, "", f0, s) for v, f0s in FLITE_F0.items() if v in have
                for f0, s in itertools.product(f0s, FLITE_STRETCH)]
    return out


def pick_speakers(n: int, seed: int = 0) -> list[VoiceRecipe]:
    """`n` distinct recipes, dealt round-robin so even a few speakers span accents and both engines.

    Each espeak-ng accent is one lane and all of flite another, since flite has few voices and no variants.
    """
    groups: dict = {}
    for r in available_voices():
        groups.setdefault((r.engine, r.voice if r.engine == "espeak-ng" else ""), []).append(r)
    rng = np.random.default_rng(seed)
    lanes = [[g[i] for i in rng.permutation(len(g))] for g in groups.values()]
    lanes = [lanes[i] for i in rng.permutation(len(lanes))]
    picked: dict = {}
    for r in itertools.chain.from_iterable(itertools.zip_longest(*lanes)):
        if r is not None and len(picked) < n:
            picked.setdefault(r.speaker, r)  # a (very unlikely) id clash keeps the first recipe
    if len(picked) < n:
        raise KwsError(f"speakers={n} asked, but the installed engines make only {len(picked)} distinct "
                         f"voice recipes; ask for at most {len(picked)}")
    return list(picked.values())


def _rng(*key) -> np.random.Generator:
    digest = hashlib.sha1("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _speak(recipe: VoiceRecipe, text: str, tmp: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Synthesize `text` and return float32 audio at 16 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    wav = os.path.join(tmp, "say.wav")
    res = subprocess.run(recipe.command(text, wav, rng), capture_output=True, text=True)
    if res.returncode != 0:
        raise KwsError(f"{recipe.engine} failed on {text[:40]!r} ({recipe}): {res.stderr.strip()[:200]}")
    x, sr = sf.read(wav, dtype="float32")
    if sr != SR:  # espeak-ng speaks at 22050 Hz, flite's kal at 8 kHz
        g = math.gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x


def _trim(x: np.ndarray, floor_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Cut leading and trailing silence, keeping one 10 ms frame either side so onsets stay whole."""
    n = len(x) // frame
    level = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(1))
    active = np.flatnonzero(level > level.max() * 10 ** (floor_db / 20)) if n else []
    if not len(active):
        return x[:0]
    return x[max(0, (active[0] - 1) * frame): (active[-1] + 2) * frame]


def _clip(recipe: VoiceRecipe, word: str, rng: np.random.Generator, noise: list, tmp: str) -> np.ndarray:
    """One 1-s int16 clip: the word at a random offset and gain over a random stretch of background."""
    from scipy.signal import resample

    x = _trim(_speak(recipe, word, tmp, rng))
    if not len(x):
        raise KwsError(f"{recipe.engine} said nothing for {word!r} ({recipe})")
    if len(x) > MAX_WORD:  # speeding up slightly beats cutting the end of the word
        x = resample(x, MAX_WORD).astype(np.float32)
    x = x.astype(np.float64) / np.abs(x).max()
    start = int(rng.integers(EDGE, CLIP - len(x) - EDGE + 1))
    out = np.zeros(CLIP)
    out[start: start + len(x)] = x
    bg = noise[int(rng.integers(len(noise)))] if noise else rng.standard_normal(2 * CLIP)
    at = int(rng.integers(len(bg) - CLIP))
    bg, snr = bg[at: at + CLIP], rng.uniform(*SNR_DB)
    out += bg * math.sqrt(np.mean(x ** 2) / (max(np.mean(bg ** 2), 1e-12) * 10 ** (snr / 10)))
    out *= 10 ** (rng.uniform(*GAIN_DB) / 20) / np.abs(out).max()
    return np.round(np.clip(out, -1, 1) * 32767).astype(np.int16)


def _write(path: Path, audio: np.ndarray) -> None:
    """Write a 16-bit WAV under a temporary name and rename it, so a killed run leaves no half file."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV")


def _colored(rng: np.random.Generator, n: int, power: float) -> np.ndarray:
    """Noise whose amplitude falls as 1/f**power (0.5 pink, 1 brown), flat below 20 Hz to avoid drift."""
    spec = np.fft.rfft(rng.standard_normal(n))
    return np.fft.irfft(spec / np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0) ** power, n)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (x.std() + 1e-12)


def _noise(kind: str, rng: np.random.Generator, voices: list, words: Sequence[str], tmp: str) -> np.ndarray:
    n = int(rng.integers(30, 61)) * SR
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        x = _colored(rng, n, 0.5 if kind == "pink" else 1.0)
    elif kind == "hum":  # mains hum with a few harmonics and a slow wobble, over pink noise
        t, f = np.arange(n) / SR, float(rng.choice([50, 60]))
        x = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, 6)) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
        x = x / x.std() + 0.3 * _unit(_colored(rng, n, 0.5))
    else:  # babble: six synthetic talkers over each other, none saying a keyword
        filler = [w for w in FILLER.split() if w not in set(words)]
        x = 0.3 * _unit(_colored(rng, n, 0.5))
        for i in rng.choice(len(voices), 6, replace=False):
            s = _speak(voices[i], " ".join(rng.choice(filler, 150)), tmp).astype(np.float64)
            x += np.roll(_unit(np.resize(s, n)), int(rng.integers(n)))  # loop each talker, start anywhere
    x = 0.1 * _unit(x)  # -20 dBFS; the SNR of each clip sets its real level
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


_NOISE: list = []  # the background signals, loaded once per worker process


def _load_noise(paths: Sequence[str]) -> None:
    import soundfile as sf

    _NOISE[:] = [sf.read(p, dtype="float32")[0].astype(np.float64) for p in paths]


def _render_speaker(out: str, recipe: VoiceRecipe, words: Sequence[str], takes: int, seed: int) -> int:
    """Every missing clip of one speaker; returns how many were written."""
    written = 0
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        for word, take in itertools.product(words, range(takes)):
            path = Path(out) / word / f"{recipe.speaker}_nohash_{take}.wav"
            if not path.exists():
                _write(path, _clip(recipe, word, _rng(seed, recipe.speaker, word, take), _NOISE, tmp))
                written += 1
    return written


def _version(engine: str) -> str:
    try:
        text = subprocess.run([engine, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"\d+\.\d+(\.\d+)?", text)
    except OSError:
        found = None
    return found.group(0) if found else "unknown"


def _describe(out: Path, words, recipes, noise_paths, seed: int, takes: int) -> None:
    """speakers.tsv and README.md, written last so their presence means the corpus is complete."""
    tsv = "speaker\tengine\tvoice\tvariant\tpitch\tspeed\trecipe\n" + "".join(
        f"{r.speaker}\t{r.engine}\t{r.voice}\t{r.variant}\t{r.pitch:g}\t{r.speed:g}\t{r}\n" for r in recipes)
    engines = ", ".join(f"{e} {_version(e)}" for e in sorted({r.engine for r in recipes}))
    call = (f"synth_corpus(out, words=..., speakers={len(recipes)}, seed={seed}, "
            f"noise_files={len(noise_paths)}, takes={takes})")
    readme = "\n".join([
        "# Synthetic Speech Commands corpus", "",
        f"Made by `kws_hpc.synth.{call}` with {engines}; the same seed and software give the same bytes.", "",
        f"- words ({len(words)}): {', '.join(words)}",
        f"- speakers: {len(recipes)} voice recipes in `speakers.tsv`; an id is the first 8 hex characters of "
        "the sha1 of its recipe. Pitch and speed are espeak-ng `-p` (0-99) and `-s` (words/min), or flite "
        "`int_f0_target_mean` (Hz) and `duration_stretch`; each clip jitters both a little.",
        f"- clips: `<word>/<speaker>_nohash_<take>.wav`, {len(words) * len(recipes) * takes} of them, 16 kHz "
        "mono 16-bit, 1 s: the word with silence trimmed (sped up if over 0.95 s) at a random offset, peak "
        f"{GAIN_DB[0]:g}..{GAIN_DB[1]:g} dBFS, over background at {SNR_DB[0]:g}..{SNR_DB[1]:g} dB SNR",
        f"- `{BACKGROUND}/`: {', '.join(Path(p).name for p in noise_paths) or 'none (white noise in clips)'}",
        ""])
    for name, body in (("speakers.tsv", tsv), ("README.md", readme)):
        write_text(out / name, body)


def _render(out: Path, recipes, words, takes: int, seed: int, noise_paths, workers: int):
    """Yield the number of clips written for each speaker, in worker processes unless `workers` is 1."""
    if workers == 1:
        _load_noise(noise_paths)
        yield from (_render_speaker(str(out), r, words, takes, seed) for r in recipes)
        return
    import scipy.signal  # noqa: F401  (imported before the fork, so workers start warm)

    pool = ProcessPoolExecutor(workers, initializer=_load_noise, initargs=(noise_paths,))
    try:
        jobs = [pool.submit(_render_speaker, str(out), r, words, takes, seed) for r in recipes]
        yield from (job.result() for job in as_completed(jobs))
    finally:  # on an error or Ctrl-C, drop the queue rather than render it (`with` would not cancel it)
        pool.shutdown(cancel_futures=True)


def synth_corpus(out: str | Path, words: Sequence[str] = DEFAULT_WORDS, speakers: int = 100, seed: int = 0,
                 noise_files: int = 4, workers: int | None = None, progress: bool = True,
                 takes: int = DEFAULT_TAKES) -> dict:
    """Write a synthetic corpus in the Speech Commands layout under `out` and return a summary.

    Clips go to `out/<word>/<speaker>_nohash_<take>.wav`, background noise to `out/_background_noise_/`,
    then `speakers.tsv` and `README.md`. Clips already on disk are kept, so rerunning an interrupted call
    finishes it with the same bytes. Raises KwsError when more speakers are asked than there are
    distinct voice recipes, and KwsError when no synthesizer is installed.
    """
    from kws_hpc.progress import bar

    words = tuple(words)
    if not words or len(set(words)) < len(words) or not all(re.fullmatch(r"[a-z][a-z']*", w) for w in words):
        raise KwsError(f"words must be distinct lower-case words, got {list(words)}")
    if speakers < 1 or takes < 1 or noise_files < 0:
        raise KwsError(f"need speakers >= 1, takes >= 1, noise_files >= 0 (got {speakers}, {takes}, "
                         f"{noise_files})")
    recipes = pick_speakers(speakers, seed)
    t0, out = time.time(), Path(out)
    for d in (BACKGROUND, *words):
        (out / d).mkdir(parents=True, exist_ok=True)

    noise_paths = []
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        for i in range(noise_files):
            kind, rep = NOISE_KINDS[i % len(NOISE_KINDS)], i // len(NOISE_KINDS)
            path = out / BACKGROUND / (f"{kind}_noise_{rep}.wav" if rep else f"{kind}_noise.wav")
            if not path.exists():
                _write(path, _noise(kind, _rng(seed, "noise", i), available_voices(), words, tmp))
            noise_paths.append(str(path))

    clips, written = len(recipes) * len(words) * takes, 0
    with bar(clips, "synth", "clip", progress) as counter:
        for n in _render(out, recipes, words, takes, seed, noise_paths, workers or os.cpu_count() or 1):
            written += n
            counter.update(len(words) * takes)
    _describe(out, words, recipes, noise_paths, seed, takes)
    return {"out": str(out), "clips": clips, "written": written, "skipped": clips - written,
            "speakers": len(recipes), "words": len(words), "noise_files": len(noise_paths),
            "seconds": round(time.time() - t0, 2)}
