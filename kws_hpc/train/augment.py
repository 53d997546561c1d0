"""Stream-window augmentation on log-mel batches: training clips made to look like live windows.

A live window is one second cut from a stream, not a clip: the word sits anywhere in it, the clip's own
recorded background starts and stops inside it over the room's quieter (or louder) background, and, as
the window slides, it holds only the first or last part of a word. Training clips show none of that, so
a model that is 95 % right on clips fires on clip edges, noise bursts and half-heard words.

`stream_windows` rewrites a random share of a batch, in the log-mel domain (sums of sounds become
`logaddexp` of their log-powers, a gain becomes an added constant):

- each chosen clip is moved by a random number of frames, with its speech kept whole inside the window
  (`_silence_` clips may move half out: a noise burst entering or leaving the window);
- a background from the store's `_silence_` clips, at -40..0 dB against the clip's own quiet frames,
  is laid under the whole window, so the clip's edges become steps in level;
- with `neighbour`, a share of the rest also gets another clip of the batch at the far side, after a
  pause of 0.2-0.5 s, with at most 30 % of its word reaching into the window (the label stays);
- with `partial` (and a `_unknown_` class), a share of them is moved so that only 10-40 % of the
  speech stays inside, at either edge, and relabelled `_unknown_`: half a word is not a keyword yet.

`add_background` mixes a share of the batch with background noise windows (the store's `noise`) at a
random signal-to-noise ratio, measured as mean power over the window. `warp` makes a share of the batch
sound like another voice: speaking rate and vocal tract length (off by default: it helped synthetic
voices and cost real speech, BENCHMARKS.md 7g).

Speech frames are found as in `stream.speech_bounds`, from each frame's total log-power. Everything is
vectorised over the batch and draws from torch's global generator on the batch's device. On the CPU only
the chosen rows are rewritten. On an accelerator (`dense`) every row is computed and the chosen ones are
kept with `torch.where`, so that a batch never waits for the host to learn which rows were chosen; the
draws are the same, and so are the values (tests/train/test_augment.py).
"""

from __future__ import annotations

import math

import torch

NATS_PER_DB = math.log(10) / 10  # log-power units per dB


def logaddexp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`torch.logaddexp` (the log-power of two sounds together) within float32 rounding, 2.2-2.3x faster on one
    CPU thread (BENCHMARKS.md 7q). There its log1p has no vectorised kernel (2.6 ms for 64 clips; log 0.2-1 ms);
    log(1 + e) loses only the part of e <= 1 that float32 cannot hold beside max(a, b) anyway. Inputs
    are finite log-mels (clamped at the log floor); other devices use torch's own."""
    if a.device.type != "cpu":
        return torch.logaddexp(a, b)
    return torch.maximum(a, b).add_((a - b).abs_().neg_().exp_().add_(1.0).log_())


def speech_frames(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, last) speech frame per example of log-mels [B, T, F] (the whole clip when flat)."""
    first, last, _ = _speech(torch.logsumexp(x.float(), dim=2))
    return first, last


def _speech(e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first, last, floor) from frame log-powers [B, T]; floor is the 10th percentile (the background)."""
    floor = torch.quantile(e, 0.1, dim=1)
    peak = e.max(dim=1).values
    thr = torch.maximum(floor + 0.5 * (peak - floor), peak - 30 * NATS_PER_DB)
    loud = e > thr[:, None]
    flat = (peak - floor) < 6 * NATS_PER_DB
    loud = loud | flat[:, None]
    t = e.shape[1]
    first = loud.float().argmax(dim=1)
    last = t - 1 - loud.flip(1).float().argmax(dim=1)
    return first, last, floor


def noise_pool(x: torch.Tensor, y: torch.Tensor, silence: int | None,
               log_floor: float) -> torch.Tensor | None:
    """The training `_silence_` clips that hold sound (digital silence cannot be set to a level)."""
    if silence is None:
        return None
    pool = x[y == silence]
    if len(pool):
        pool = pool[pool.flatten(1).amax(dim=1) > log_floor + 1e-3]
    return pool if len(pool) else None


def backgrounds_warning(share: float, backgrounds: str, store: str) -> str | None:
    """The line to say when `--noise-aug` asks for the store's background noise and the store has none
    (`backgrounds`: what `noise_pool`'s caller found, `noise`, `silence` or `none`); None otherwise."""
    if share <= 0 or backgrounds == "noise":
        return None
    did = ("its _silence_ clips are mixed in instead" if backgrounds == "silence" else
           "no clip gets noise (there are no _silence_ clips either); build the store from data with "
           "_background_noise_/*.wav, or pass --noise-aug 0 to say so")
    return (f"warning: store {store} has no background noise for --noise-aug {share:g}: {did} "
            "(recorded as `backgrounds` in config.json and result.json)")


def _dense(x: torch.Tensor, dense: bool | None) -> bool:
    """Whether to compute every row and keep the chosen ones (no host sync): by default off the CPU."""
    return x.device.type != "cpu" if dense is None else dense


def stream_windows(x: torch.Tensor, y: torch.Tensor, p: float, pool: torch.Tensor | None,
                   log_floor: float, silence: int | None = None, unknown: int | None = None,
                   partial: float = 0.0, neighbour: float = 0.5, level_db: tuple = (-40.0, 0.0),
                   dense: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A share `p` of the batch [B, T, F] turned into stream windows (see the module doc); returns (x, y).

    `pool` [N, T, F]: background clips (`noise_pool`); without one only the moves are made, and the rest
    of the window holds the quietest frame the clip has. `partial` is the share of rewritten clips that
    keep only part of their speech and become `unknown`. Every draw is made for the whole batch (so a
    seed gives the same windows whatever the share), the windows are built for the chosen rows only, or
    for every row with `dense` (see the module doc).
    """
    b, t, f = x.shape
    dev = x.device
    dense = _dense(x, dense)
    chosen = torch.rand(b, device=dev) < p
    if p <= 0 or (not dense and not bool(chosen.any())):
        return x, y
    rows = torch.arange(b, device=dev) if dense else chosen.nonzero().squeeze(1)
    xf = x.float()
    energy = torch.logsumexp(xf, dim=2)  # [B, T] log-power per frame
    first, last, quiet = _speech(energy)  # quiet: the clip's own background level
    is_sil = (y == silence) if silence is not None else torch.zeros(b, dtype=torch.bool, device=dev)
    # whole: any move that keeps the speech inside; silence may slide up to 90 % out either way
    lo = torch.where(is_sil, torch.full_like(first, -(9 * t) // 10), -first)
    hi = torch.where(is_sil, torch.full_like(last, (9 * t) // 10), t - 1 - last)
    shift = lo + (torch.rand(b, device=dev) * (hi - lo + 1).float()).floor().long()
    cut = torch.zeros(b, dtype=torch.bool, device=dev)
    if unknown is not None and partial > 0:
        cut = chosen & ~is_sil & (torch.rand(b, device=dev) < partial)
        length = (last - first + 1).float()
        keep = (length * (0.1 + 0.3 * torch.rand(b, device=dev))).ceil().long().clamp_min(1)
        at_end = torch.rand(b, device=dev) < 0.5  # the word's start at the window's end, or its tail first
        cut_shift = torch.where(at_end, t - keep - first, keep - 1 - last)
        shift = torch.where(cut, cut_shift, shift)
    c = len(rows)
    src = torch.arange(t, device=dev)[None, :] - shift[rows, None]  # [C, T] source frame of each frame
    inside = (src >= 0) & (src < t)
    moved = torch.gather(xf[rows], 1, src.clamp(0, t - 1)[:, :, None].expand(c, t, f))
    if pool is not None:
        pick = torch.randint(len(pool), (b,), device=pool.device)
        roll = torch.randint(t, (b, 1), device=dev)
        db = level_db[0] + (level_db[1] - level_db[0]) * torch.rand(b, device=dev)
        bg = pool[pick[rows.to(pool.device)]].to(dev).float()
        rolled = (torch.arange(t, device=dev)[None, :] + roll[rows]) % t
        bg = torch.gather(bg, 1, rolled[:, :, None].expand(c, t, f))
        bg_level = torch.logsumexp(bg, dim=2).mean(dim=1)
        bg = (bg + (quiet[rows] - bg_level + db[rows] * NATS_PER_DB)[:, None, None]).clamp_min(log_floor)
        out = torch.where(inside[:, :, None], logaddexp(moved, bg), bg)
    else:
        idx = energy[rows].argmin(dim=1)
        floor_frame = xf[rows, idx][:, None, :]
        out = torch.where(inside[:, :, None], moved, floor_frame.expand(c, t, f))
    if neighbour > 0:  # the end or the start of another clip at the far side, its word mostly outside
        which = chosen & ~cut & (torch.rand(b, device=dev) < neighbour)
        out = _neighbour(out, xf, first, last, first + shift, last + shift, which, rows, dense)
    if dense:
        x = torch.where(chosen[:, None, None], out.to(x.dtype), x)
    else:
        x = x.clone()
        x[rows] = out.to(x.dtype)
    if unknown is not None:
        y = torch.where(cut, torch.full_like(y, unknown), y)
    return x, y


def _neighbour(out: torch.Tensor, xf: torch.Tensor, first, last, at, end, which: torch.Tensor,
               rows: torch.Tensor, dense: bool = False) -> torch.Tensor:
    """Lay another clip of the batch at the side of `out` (the windows of `rows`) with more room, at least
    0.2 s of gap after (or before) the window's speech [at, end], so that at most 30 % of its speech
    reaches into the window. `first`, `last`, `at`, `end` and `which` are per row of the whole batch."""
    c, t, f = out.shape
    b = len(xf)
    if not dense and not bool(which.any()):
        return out
    dev = out.device
    donor = torch.randperm(b, device=dev)
    gap = (t // 5 + torch.rand(b, device=dev) * (t // 3)).long()  # frames of pause between the words
    reach_draw = torch.rand(b, device=dev)
    donor, gap, reach_draw, at, end = donor[rows], gap[rows], reach_draw[rows], at[rows], end[rows]
    d_first, d_last = first[donor], last[donor]
    d_len = (d_last - d_first + 1).float()
    left = at > t - 1 - end  # more room before the window's word
    reach = (d_len * 0.3 * reach_draw).floor().long()  # donor speech frames let in
    # left: the donor's speech ends at min(at - gap, reach - 1); right: it starts at max(end + gap, t - reach)
    d_shift = torch.where(left, torch.minimum(at - gap, reach - 1) - d_last,
                          torch.maximum(end + gap, t - reach) - d_first)
    src = torch.arange(t, device=dev)[None, :] - d_shift[:, None]
    inside = (src >= 0) & (src < t) & which[rows][:, None]
    moved = torch.gather(xf[donor], 1, src.clamp(0, t - 1)[:, :, None].expand(c, t, f))
    return torch.where(inside[:, :, None], logaddexp(out, moved), out)


def add_background(x: torch.Tensor, pool: torch.Tensor | None, p: float, snr_db: tuple,
                   log_floor: float, dense: bool | None = None) -> torch.Tensor:
    """A share `p` of the batch [B, T, F] with a random noise window of `pool` [N, T, F] (rolled by a
    random number of frames) at an SNR drawn from `snr_db`; the rest unchanged."""
    b, t, f = x.shape
    dev = x.device
    if pool is None or not len(pool) or p <= 0:
        return x
    chosen = torch.rand(b, device=dev) < p
    if not _dense(x, dense) and not bool(chosen.any()):
        return x
    xf = x.float()
    bg = pool[torch.randint(len(pool), (b,), device=pool.device)].to(dev).float()
    rolled = (torch.arange(t, device=dev)[None, :] + torch.randint(t, (b, 1), device=dev)) % t
    bg = torch.gather(bg, 1, rolled[:, :, None].expand(b, t, f))
    level = torch.logsumexp(xf.flatten(1), dim=1)  # log of total power (the same frame count for both)
    bg_level = torch.logsumexp(bg.flatten(1), dim=1)
    snr = snr_db[0] + (snr_db[1] - snr_db[0]) * torch.rand(b, device=dev)
    bg = (bg + (level - bg_level - snr * NATS_PER_DB)[:, None, None]).clamp_min(log_floor)
    return torch.where(chosen[:, None, None], logaddexp(xf, bg), xf).to(x.dtype)


SPEED = (0.8, 1.25)  # a warped word lasts 1/speed of its time: 0.8-1.25x as long (log-uniform)
VTLP = (0.9, 1.1)  # frequency scale of a warped voice (vocal tract length), uniform


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)  # the htk scale of `features.logmel`


def warp(x: torch.Tensor, p: float, f_min: float, f_max: float, speed: tuple = SPEED,
         vtlp: tuple = VTLP, dense: bool | None = None) -> torch.Tensor:
    """A share `p` of the batch [B, T, F] said by another voice: its time axis stretched about the
    word's centre (speaking rate; the word kept inside the window) and its frequencies scaled by a
    factor (vocal tract length perturbation, each mel band read at its centre frequency times the
    factor), both by linear interpolation of the log-mels; frames and bands past the edges repeat them."""
    b, t, f = x.shape
    dev = x.device
    chosen = torch.rand(b, device=dev) < p
    if p <= 0 or (not _dense(x, dense) and not bool(chosen.any())):
        return x
    xf = x.float()
    first, last, _ = _speech(torch.logsumexp(xf, dim=2))
    length = (last - first + 1).float()
    lo, hi = math.log(speed[0]), math.log(speed[1])
    stretch = torch.exp(-(lo + (hi - lo) * torch.rand(b, device=dev)))  # output length / input length
    stretch = torch.minimum(stretch, (0.95 * t / length).clamp_min(1.0))  # the word still fits
    centre = (first + last).float() / 2
    out_t = torch.arange(t, device=dev, dtype=torch.float32)[None, :]
    src_t = centre[:, None] + (out_t - centre[:, None]) / stretch[:, None]  # [B, T]
    alpha = vtlp[0] + (vtlp[1] - vtlp[0]) * torch.rand(b, device=dev)
    m_lo, m_hi = _hz_to_mel(torch.tensor(f_min)), _hz_to_mel(torch.tensor(f_max))
    step = (m_hi - m_lo) / (f + 1)
    centres_mel = m_lo + step * torch.arange(1, f + 1, dtype=torch.float32)
    centres_hz = (700.0 * (10 ** (centres_mel / 2595.0) - 1.0)).to(dev)
    src_f = (_hz_to_mel(centres_hz[None, :] * alpha[:, None]) - m_lo.to(dev)) / step.to(dev) - 1  # [B, F]
    grid = torch.stack(torch.broadcast_tensors(2 * src_f[:, None, :] / (f - 1) - 1,
                                               2 * src_t[:, :, None] / (t - 1) - 1), dim=-1)  # [B, T, F, 2]
    out = torch.nn.functional.grid_sample(xf[:, None], grid, mode="bilinear", padding_mode="border",
                                          align_corners=True)[:, 0]
    return torch.where(chosen[:, None, None], out, xf).to(x.dtype)
