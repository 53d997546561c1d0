"""The RNN classifiers: every option's shapes, normalisation, streaming parity, SpecAugment masks."""

from __future__ import annotations

import itertools

import pytest
import torch

from kws_hpc.config import ModelConfig
from kws_hpc.train.models import build_model, count_params, spec_augment

B, T, MELS, CLASSES = 3, 20, 12, 5


@pytest.mark.parametrize("cell, head, bidirectional, conv", list(itertools.product(
    ["gru", "lstm"], ["last", "mean", "attention"], [False, True], [0, 6])))
def test_every_option_maps_a_batch_to_class_scores(cell, head, bidirectional, conv):
    cfg = ModelConfig(cell=cell, hidden=8, layers=2, head=head, bidirectional=bidirectional,
                      conv_channels=conv)
    model = build_model(cfg, MELS, CLASSES).eval()
    x = torch.randn(B, T, MELS)
    assert model(x).shape == (B, CLASSES)
    assert model.embed(x).shape == (B, 8 * (2 if bidirectional else 1))
    assert count_params(model) > 0


def test_unknown_cell_or_head_is_refused():
    with pytest.raises(ValueError, match="cell"):
        build_model(ModelConfig(cell="rnn"), MELS, CLASSES)
    with pytest.raises(ValueError, match="head"):
        build_model(ModelConfig(head="max"), MELS, CLASSES)


def test_normalisation_lives_in_the_model():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=8, layers=1, clip_norm=False, conv_channels=0), MELS, CLASSES).eval()
    mean, std = torch.randn(MELS), torch.rand(MELS) + 0.5
    x = torch.randn(B, T, MELS)
    plain = model(x)
    model.set_normalization(mean, std)
    assert torch.allclose(model(x * std + mean), plain, atol=1e-5)
    assert {"feat_mean", "feat_std"} <= set(model.state_dict())


@pytest.mark.parametrize("cell, head", list(itertools.product(["gru", "lstm"], ["last", "mean"])))
def test_streaming_steps_equal_the_full_forward(cell, head):
    model = build_model(ModelConfig(cell=cell, hidden=8, layers=2, head=head, clip_norm=False, conv_channels=0), MELS,
                        CLASSES).eval()
    x = torch.randn(B, T, MELS)
    state, logits = None, None
    with torch.no_grad():
        for i in range(0, T, 7):
            logits, state = model.step(x[:, i:i + 7], state)
        assert torch.allclose(logits, model(x), atol=1e-5)


def test_spec_augment_masks_spans_per_example():
    torch.manual_seed(0)
    x = torch.ones(64, 100, 40)
    out = spec_augment(x, time_masks=1, time_width=10, freq_masks=0, freq_width=6)
    masked_frames = (out == 0).all(dim=2)  # [B, T]: a time mask blanks every mel of a frame
    assert ((out == 0) == masked_frames[:, :, None]).all()  # nothing else is touched
    widths = masked_frames.sum(1)
    assert widths.max() <= 10 and widths.float().mean() > 3 and len(set(widths.tolist())) > 3
    for row in masked_frames:  # one contiguous span per example
        idx = row.nonzero().flatten()
        assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
    starts = {int(r.nonzero()[0]) for r in masked_frames if r.any()}
    assert len(starts) > 10  # each example draws its own position

    out = spec_augment(x, time_masks=0, time_width=10, freq_masks=2, freq_width=6)
    masked_mels = (out == 0).all(dim=1)  # [B, F]
    assert ((out == 0) == masked_mels[:, None, :]).all()
    assert masked_mels.sum(1).max() <= 12 and masked_mels.any()


def test_spec_augment_fills_with_a_per_mel_value_and_keeps_the_rest():
    torch.manual_seed(1)
    x = torch.randn(8, 30, MELS)
    fill = torch.arange(MELS, dtype=torch.float32) + 100
    out = spec_augment(x, 2, 5, 2, 3, fill=fill)
    changed = out != x
    assert changed.any()
    assert torch.equal(out[changed], fill.expand_as(x)[changed])
    assert torch.equal(spec_augment(x, 0, 5, 0, 3), x)


def test_clip_norm_makes_the_model_blind_to_recording_level():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=8, layers=1, clip_norm=True), MELS, CLASSES).eval()
    x = torch.randn(B, T, MELS)
    louder = x + 2.3  # a gain is a constant offset in log-mel
    assert torch.allclose(model(x), model(louder), atol=1e-5)
    assert not model.can_stream
    plain = build_model(ModelConfig(hidden=8, layers=1, clip_norm=False, conv_channels=0), MELS, CLASSES).eval()
    assert not torch.allclose(plain(x), plain(louder), atol=1e-3)


def test_a_strided_conv_front_halves_the_rnn_steps_and_the_stride_is_unused_without_a_front():
    from kws_hpc.config import RunConfig, TrainConfig, check_config
    from kws_hpc.errors import KwsError

    seen = []
    model = build_model(ModelConfig(conv_channels=8, conv_stride=2, hidden=8), 40, 3)
    model.rnn.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    assert model(torch.randn(4, 100, 40)).shape == (4, 3) and seen == [(4, 50, 8)]
    plain = build_model(ModelConfig(conv_channels=0, conv_stride=2, hidden=8), 40, 3)
    plain.rnn.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    assert plain.front is None and plain(torch.randn(4, 100, 40)).shape == (4, 3) and seen[1] == (4, 100, 40)
    check_config(RunConfig(store="s", model=ModelConfig(conv_channels=0), train=TrainConfig()))
    with pytest.raises(KwsError, match="conv-stride 5: use 1..4"):
        check_config(RunConfig(store="s", model=ModelConfig(conv_stride=5), train=TrainConfig()))


def test_a_crnn_checkpoint_from_before_the_stride_option_loads_with_stride_1(tmp_path):
    from kws_hpc.config import FeatureConfig, from_dict, to_dict
    from kws_hpc.train.evaluate import load_checkpoint

    old = build_model(ModelConfig(conv_channels=8, conv_stride=1, hidden=8), 40, 3).eval()
    written_then = {k: v for k, v in to_dict(old.cfg).items() if k != "conv_stride"}  # no such key then
    torch.save({"model": old.state_dict(), "model_config": written_then, "labels": ["a", "b", "c"],
                "feature_config": to_dict(FeatureConfig())}, tmp_path / "best.pt")
    model, _ = load_checkpoint(tmp_path / "best.pt")
    x = torch.randn(2, 100, 40)
    assert model.cfg.conv_stride == 1 and torch.equal(model(x), old(x))
    assert from_dict(ModelConfig, to_dict(ModelConfig())) == ModelConfig()  # a key that is there is kept


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_an_rnn_stride_feeds_the_upper_layers_the_mean_of_each_group_of_steps(cell):
    from kws_hpc.config import RunConfig, TrainConfig, check_config
    from kws_hpc.errors import KwsError

    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=cell, hidden=8, layers=3, rnn_stride=2, conv_channels=0), MELS, 3).eval()
    assert model.rnn.num_layers == 1 and model.rnn_upper.num_layers == 2 and not model.can_stream
    seen = []
    model.rnn_upper.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = torch.randn(2, 21, MELS)  # an odd count: the last group holds one step
    assert model(x).shape == (2, 3)
    below, _ = model.rnn(model.normalize(x))
    assert seen[0].shape == (2, 11, 8)
    with pytest.raises(ValueError, match="--rnn-stride"):  # the stepping path names why it cannot
        model.step(x[:, :5])
    assert torch.allclose(seen[0][:, 3], below[:, 6:8].mean(1)) and torch.allclose(seen[0][:, -1], below[:, -1])
    from kws_hpc.config import from_dict, to_dict
    written_before = {k: v for k, v in to_dict(ModelConfig(rnn_stride=2)).items() if k != "rnn_stride"}
    assert from_dict(ModelConfig, written_before).rnn_stride == 1  # a config from before the field: no stride
    one = build_model(ModelConfig(cell=cell, hidden=8, layers=1, rnn_stride=2), MELS, 3)
    assert one.rnn_upper is None  # one layer: nothing above it to stride
    with pytest.raises(KwsError, match="rnn-stride 0: use 1..4"):
        check_config(RunConfig(store="s", model=ModelConfig(rnn_stride=0), train=TrainConfig()))


def test_forget_bias_starts_the_lstm_forget_gates_and_keeps_old_run_names():
    from kws_hpc.config import RunConfig, TrainConfig, signature, to_dict

    h = 8
    model = build_model(ModelConfig(cell="lstm", hidden=h, layers=2, forget_bias=1.0), MELS, CLASSES)
    plain = build_model(ModelConfig(cell="lstm", hidden=h, layers=2), MELS, CLASSES)
    for layer in range(2):  # gates: input, forget, cell, output; the two biases add up
        total = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")
        assert torch.equal(total[h:2 * h], torch.ones(h))
        assert not torch.equal(getattr(plain.rnn, f"bias_ih_l{layer}")[h:2 * h], torch.ones(h))
    gru = build_model(ModelConfig(cell="gru", hidden=h, forget_bias=1.0), MELS, CLASSES)
    assert not torch.equal(gru.rnn.bias_ih_l0[h:2 * h], torch.ones(h))  # GRU: no forget gate, untouched
    # a run without the option is named as before the option existed; setting it names another run
    old = to_dict(ModelConfig())
    old.pop("forget_bias")
    old.pop("rnn_stride")  # a later model field, neutral at 1
    later = ("device", "hard_negatives", "warp_aug")  # later training fields, neutral at "" and 0
    train = {k: v for k, v in to_dict(TrainConfig()).items() if k not in later}
    before = signature("store", old, train)
    assert RunConfig(store="s").signature("store") == before
    assert RunConfig(store="s", model=ModelConfig(forget_bias=1.0)).signature("store") != before
