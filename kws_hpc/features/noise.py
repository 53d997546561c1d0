"""The background noise of a corpus (`_background_noise_/*.wav`): read once by the feature job, and named
in one line when some of it cannot be read, since a store without noise silently changes training."""

from __future__ import annotations

from kws_hpc.config import BACKGROUND, SILENCE, FeatureConfig
from kws_hpc.data.source import BadClip, Source, decode_wav


def read_noise(source: Source, cfg: FeatureConfig) -> tuple[dict, dict]:
    """The background noise files as {path: samples}, and {path: why} for those that cannot be read: a
    link to nothing or outside an archive, or a WAV that does not decode at the store's rate."""
    paths = [e.path for e in source.files() if e.path.startswith(BACKGROUND + "/") and e.path.endswith(".wav")]
    noise: dict = {}
    unreadable = {p: why for p, why in source.broken.items() if p == BACKGROUND or p.startswith(BACKGROUND + "/")}
    for path, raw in source.iter_bytes(paths):
        try:
            noise[path] = decode_wav(raw, cfg.sample_rate)
        except BadClip as e:
            unreadable[path] = str(e)
    return noise, unreadable


def say_noise(noise: dict, unreadable: dict, extras: tuple, log) -> None:
    """One line naming the noise that cannot be read and what the store does without it."""
    if not unreadable:
        return
    first = next(iter(sorted(unreadable)))
    more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
    if noise:
        what = f"the store uses the {len(noise)} noise file(s) that can"
    else:
        what = "the store has no background noise" + (", so no _silence_ clips," if SILENCE in extras else ",") + \
            " and training's --noise-aug has nothing to mix in"
    log(f"warning: background noise cannot be read: {first} is {unreadable[first]}{more}; {what} "
        f"(listed in summary.json)")
