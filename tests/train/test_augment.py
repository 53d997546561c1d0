"""Stream-window augmentation: moves keep words whole, backgrounds sit at the asked level, cuts relabel."""

from __future__ import annotations

import math

import pytest
import torch

from kws_hpc.train.augment import NATS_PER_DB, add_background, noise_pool, speech_frames, stream_windows, warp

T, F = 100, 40
FLOOR = math.log(1e-6)
SIL, UNK = 2, 3


def _clip(first: int, last: int, quiet: float = -6.0, loud: float = 2.0) -> torch.Tensor:
    """A log-mel clip: a noisy quiet background with one loud word on frames first..last."""
    g = torch.Generator().manual_seed(first * 1000 + last)
    x = quiet + 0.3 * torch.randn(T, F, generator=g)
    x[first:last + 1] = loud + 0.3 * torch.randn(last - first + 1, F, generator=g)
    return x


def _batch(n: int = 64):
    words = [(10 + (7 * i) % 40, 10 + (7 * i) % 40 + 20 + (3 * i) % 25) for i in range(n)]
    x = torch.stack([_clip(a, b) for a, b in words])
    y = torch.tensor([i % 2 for i in range(n)])  # keyword classes 0 and 1
    return x, y, torch.tensor(words)


def _pool(n: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return -4.0 + 0.5 * torch.randn(n, T, F, generator=g)


def _loud(x: torch.Tensor, level: float = 0.0) -> torch.Tensor:
    """[B, T] frames whose mean log-mel is above `level` (the word, in these clips)."""
    return x.mean(dim=2) > level


def test_speech_frames_finds_the_word_and_treats_a_flat_clip_as_all_speech():
    x, _, words = _batch(8)
    first, last = speech_frames(x)
    assert first.tolist() == words[:, 0].tolist() and last.tolist() == words[:, 1].tolist()
    flat = torch.full((1, T, F), -5.0)
    f, l = speech_frames(flat)
    assert (f.item(), l.item()) == (0, T - 1)


def test_nothing_changes_at_share_zero():
    x, y, _ = _batch()
    x2, y2 = stream_windows(x, y, 0.0, _pool(), FLOOR)
    assert torch.equal(x2, x) and torch.equal(y2, y)


def test_moved_words_stay_whole_and_keep_their_label():
    torch.manual_seed(0)
    x, y, words = _batch()
    x2, y2 = stream_windows(x, y, 1.0, _pool(), FLOOR, silence=SIL, unknown=UNK, partial=0.0, neighbour=0.0)
    assert torch.equal(y2, y)
    loud = _loud(x2)
    lengths = loud.sum(dim=1)
    assert lengths.tolist() == (words[:, 1] - words[:, 0] + 1).tolist()  # every word frame still inside
    starts = loud.float().argmax(dim=1)
    assert (starts != words[:, 0]).float().mean() > 0.8  # and most words moved
    for i in range(len(x)):  # the word's frames are the original ones (a quieter background adds ~nothing)
        a, b = int(starts[i]), int(starts[i] + lengths[i])
        w0, w1 = int(words[i, 0]), int(words[i, 1]) + 1
        assert torch.allclose(x2[i, a:b], x[i, w0:w1], atol=0.05)


def test_background_sits_between_40_db_below_and_at_the_clip_level():
    torch.manual_seed(1)
    x, y, _ = _batch()
    quiet = torch.quantile(torch.logsumexp(x, dim=2), 0.1, dim=1)
    x2, _ = stream_windows(x, y, 1.0, _pool(), FLOOR, partial=0.0, neighbour=0.0)
    energy = torch.logsumexp(x2, dim=2)
    moved_out = ~_loud(x2, -5.5)  # frames of the background only (the clip's own background sits at -6)
    checked = 0
    for i in range(len(x)):
        e = energy[i][moved_out[i]]
        if len(e):
            assert e.mean() <= quiet[i] + 1.0 and e.mean() >= quiet[i] - 40 * NATS_PER_DB - 1.0
            checked += 1
    assert checked > 10


def test_cut_words_keep_10_to_40_percent_of_their_speech_and_become_unknown():
    torch.manual_seed(2)
    x, y, words = _batch()
    y[:4] = SIL
    x2, y2 = stream_windows(x, y, 1.0, _pool(), FLOOR, silence=SIL, unknown=UNK, partial=1.0)
    assert (y2[:4] == SIL).all(), "silence is never cut into a word"
    assert (y2[4:] == UNK).all()
    kept = _loud(x2[4:]).sum(dim=1).float()
    length = (words[4:, 1] - words[4:, 0] + 1).float()
    assert (kept >= 1).all() and (kept <= torch.ceil(0.4 * length) + 1).all()
    loud = _loud(x2[4:])
    at_edge = loud[:, 0] | loud[:, -1]
    assert at_edge.all(), "what is left of the word touches the window's edge"


def test_without_an_unknown_class_nothing_is_relabelled():
    torch.manual_seed(3)
    x, y, _ = _batch()
    _, y2 = stream_windows(x, y, 1.0, _pool(), FLOOR, silence=None, unknown=None, partial=1.0)
    assert torch.equal(y2, y)


def test_a_neighbour_reaches_in_at_the_far_side_and_the_word_stays_whole():
    torch.manual_seed(4)
    x, y, words = _batch()
    x2, y2 = stream_windows(x, y, 1.0, _pool(), FLOOR, partial=0.0, neighbour=1.0)
    assert torch.equal(y2, y)
    loud = _loud(x2).float()
    runs = (loud[:, 1:] - loud[:, :-1] == 1).sum(dim=1) + loud[:, 0]  # loud runs per window
    assert (runs >= 2).float().mean() > 0.3, "some windows show a second word at an edge"
    extra = loud.sum(dim=1) - (words[:, 1] - words[:, 0] + 1).float()
    assert (extra >= 0).all() and (extra <= 0.3 * 45 + 1).all()  # longest word here is 45 frames


def test_noise_pool_skips_digital_silence_and_needs_a_silence_class():
    x = torch.stack([torch.full((T, F), FLOOR), _clip(10, 30)])
    y = torch.tensor([SIL, SIL])
    assert noise_pool(x, y, None, FLOOR) is None
    assert len(noise_pool(x, y, SIL, FLOOR)) == 1
    assert noise_pool(x[:1], y[:1], SIL, FLOOR) is None


@pytest.mark.parametrize("pool", [True, False])
def test_output_keeps_shape_dtype_and_never_drops_below_the_log_floor(pool):
    torch.manual_seed(5)
    x, y, _ = _batch()
    x = x.half()
    x2, y2 = stream_windows(x, y, 0.5, _pool() if pool else None, FLOOR, silence=SIL, unknown=UNK,
                            partial=0.2)
    assert x2.shape == x.shape and x2.dtype == x.dtype and y2.dtype == y.dtype
    assert x2.float().min() >= FLOOR - 1e-3


def test_background_noise_sits_at_the_drawn_snr_and_only_on_the_chosen_share():
    from kws_hpc.train.augment import add_background

    x, _, _ = _batch(256)
    noise = torch.stack([_clip(0, 0, quiet=-3.0, loud=-3.0) for _ in range(8)])
    torch.manual_seed(0)
    out = add_background(x, noise, 0.5, (10.0, 10.0), FLOOR)
    changed = (out != x).flatten(1).any(dim=1)
    assert 0.35 < changed.float().mean() < 0.65
    gain_db = (torch.logsumexp(out.flatten(1), 1) - torch.logsumexp(x.flatten(1), 1)) / NATS_PER_DB
    assert torch.allclose(gain_db[changed], torch.full_like(gain_db[changed], 10 * math.log10(1.1)), atol=1e-3)
    assert (out >= x - 1e-6).all()  # noise only adds power
    assert add_background(x, noise, 0.0, (0.0, 20.0), FLOOR) is x and add_background(x, None, 1.0, (0, 1), FLOOR) is x


def test_warp_at_factor_one_changes_nothing_and_share_zero_returns_the_batch():
    from kws_hpc.train.augment import warp

    x, _, _ = _batch(8)
    assert warp(x, 0.0, 20.0, 7600.0) is x
    same = warp(x, 1.0, 20.0, 7600.0, speed=(1.0, 1.0), vtlp=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-3)  # the mel round trip of the band centres, to float precision


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_warp_stretches_the_word_about_its_centre_and_keeps_it_inside(speed):
    from kws_hpc.train.augment import warp

    x = torch.stack([_clip(30, 59), _clip(2, 97)])  # 30 frames of word; a word that fills the window
    out = warp(x, 1.0, 20.0, 7600.0, speed=(speed, speed), vtlp=(1.0, 1.0))
    loud = _loud(out[:1])[0].nonzero().flatten()
    length = loud.max().item() - loud.min().item() + 1
    assert abs(length - 30 / speed) <= 2 and abs((loud.min() + loud.max()).item() / 2 - 44.5) <= 1
    whole = _loud(out[1:])[0].nonzero().flatten()  # slowed down, it would not fit: it stays as long as it was
    assert speed > 1 or (whole.min().item() <= 3 and whole.max().item() >= 96)


def test_warp_moves_a_voice_up_or_down_the_mel_bands():
    from kws_hpc.train.augment import warp

    x = torch.full((2, T, F), -6.0)
    x[:, 20:60, 20:26] = 2.0  # a formant-like band
    up = warp(x, 1.0, 20.0, 7600.0, speed=(1.0, 1.0), vtlp=(0.9, 0.9))[0]  # a shorter vocal tract: higher
    down = warp(x, 1.0, 20.0, 7600.0, speed=(1.0, 1.0), vtlp=(1.1, 1.1))[0]
    centre = lambda m: (m[40] > 0).nonzero().float().mean().item()  # noqa: E731
    assert centre(down) < centre(x[0]) - 0.5 and centre(up) > centre(x[0]) + 0.5
    assert torch.allclose(up[:20], x[0, :20]) and torch.allclose(down[60:], x[0, 60:])  # time untouched


def test_warp_draws_from_the_global_generator_and_touches_only_its_share():
    from kws_hpc.train.augment import warp

    x, _, _ = _batch(256)
    torch.manual_seed(3)
    a = warp(x, 0.5, 20.0, 7600.0)
    torch.manual_seed(3)
    b = warp(x, 0.5, 20.0, 7600.0)
    assert torch.equal(a, b)
    changed = (a != x).flatten(1).any(dim=1).float().mean()
    assert 0.35 < changed < 0.65


def test_a_seed_gives_a_row_the_same_window_whatever_the_share():
    """Every draw is made for the whole batch, the windows only for the chosen rows: at a share of 0.5 the
    chosen rows are exactly what the whole batch gets at 1.0, the others are untouched."""
    x, y, _ = _batch(64)
    torch.manual_seed(5)
    every, y_every = stream_windows(x, y, 1.0, _pool(), FLOOR, silence=SIL, unknown=UNK, partial=0.3)
    torch.manual_seed(5)
    half, y_half = stream_windows(x, y, 0.5, _pool(), FLOOR, silence=SIL, unknown=UNK, partial=0.3)
    changed = (half != x).flatten(1).any(dim=1)
    assert 16 < int(changed.sum()) < 48
    assert torch.equal(half[changed], every[changed]) and torch.equal(half[~changed], x[~changed])
    assert torch.equal(y_half[changed], y_every[changed]) and torch.equal(y_half[~changed], y[~changed])


def test_logaddexp_equals_torchs_within_float32_rounding():
    from kws_hpc.train.augment import logaddexp

    g = torch.Generator().manual_seed(0)
    a = (torch.randn(64, T, F, generator=g) * 4 - 6).clamp_min(FLOOR)
    b = (torch.randn(64, T, F, generator=g) * 4 - 9).clamp_min(FLOOR)
    b[0] = a[0]  # equal powers: log 2 above either
    for x, z in ((a, b), (b, a), (a, a + 30.0)):
        got, want = logaddexp(x, z), torch.logaddexp(x, z)
        scale = torch.maximum(x.abs(), z.abs()).clamp_min(1.0)
        ulp = torch.finfo(torch.float32).eps * scale
        assert got.shape == want.shape and bool(((got - want).abs() <= 2 * ulp).all())
    assert torch.allclose(logaddexp(a[0], a[0]), a[0] + math.log(2.0), atol=1e-5)
    assert logaddexp(a, b).data_ptr() not in (a.data_ptr(), b.data_ptr())  # the inputs are left as they were
    assert torch.equal(a, (torch.randn(64, T, F, generator=torch.Generator().manual_seed(0)) * 4 - 6).clamp_min(FLOOR))


@pytest.mark.parametrize("pool, partial, neighbour, p", [(True, 0.3, 0.5, 0.5), (False, 0.3, 0.5, 0.5),
                                                          (True, 0.0, 0.0, 0.9), (True, 0.3, 0.5, 1e-9)])
def test_every_row_computed_and_the_chosen_kept_equals_the_chosen_rows_alone(pool, partial, neighbour, p):
    """The accelerator's way (`dense`: no host sync to learn which rows were chosen) gives the same batch."""
    x, y, _ = _batch(48)
    y[::5] = SIL
    out = {}
    for dense in (False, True):
        torch.manual_seed(11)
        xs, ys = stream_windows(x, y, p, _pool() if pool else None, FLOOR, SIL, UNK, partial, neighbour,
                                dense=dense)
        xs = add_background(xs, _pool(), p, (0.0, 20.0), FLOOR, dense=dense)
        out[dense] = (warp(xs, p, 20.0, 4000.0, dense=dense), ys)
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1], out[False][1])
    changed = (out[True][0] != x).flatten(1).any(1)
    assert bool(changed.any()) == (p > 0.01) and bool((out[True][1] != y).any()) == (p > 0.01 and partial > 0)
