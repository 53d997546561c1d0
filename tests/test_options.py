"""Config dataclasses become flags and back, written once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from kws_hpc.config import DataConfig, ModelConfig, TrainConfig
from kws_hpc.options import add_config_args, config_from_args, config_values, field_comments


def _parser(*classes, **kw):
    p = argparse.ArgumentParser()
    for cls in classes:
        add_config_args(p, cls, **kw)
    return p


def test_defaults_round_trip():
    args = _parser(ModelConfig, TrainConfig, flags={"cell": "--model"}).parse_args([])
    assert config_from_args(ModelConfig, args) == ModelConfig()
    assert config_from_args(TrainConfig, args) == TrainConfig()


def test_values_types_booleans_and_choices():
    p = _parser(ModelConfig, TrainConfig, flags={"cell": "--model"})
    args = p.parse_args(["--model", "lstm", "--hidden", "64", "--lr", "0.01", "--no-clip-norm", "--bidirectional",
                         "--schedule", "cosine", "--deterministic"])
    m, t = config_from_args(ModelConfig, args), config_from_args(TrainConfig, args)
    assert (m.cell, m.hidden, m.clip_norm, m.bidirectional) == ("lstm", 64, False, True)
    assert (t.lr, t.schedule, t.deterministic) == (0.01, "cosine", True)
    with pytest.raises(SystemExit):
        p.parse_args(["--schedule", "linear"])
    with pytest.raises(SystemExit):
        p.parse_args(["--hidden", "many"])


def test_a_range_field_takes_low_and_high():
    p = _parser(TrainConfig)
    assert config_from_args(TrainConfig, p.parse_args(["--noise-snr-db", "5", "15"])).noise_snr_db == (5.0, 15.0)
    assert config_from_args(TrainConfig, p.parse_args([])).noise_snr_db == TrainConfig().noise_snr_db
    with pytest.raises(SystemExit):
        p.parse_args(["--noise-snr-db", "5"])


def test_help_comes_from_the_field_comment_with_its_default():
    helps = {a.dest: a.help for a in _parser(TrainConfig)._actions}
    assert helps["batch_size"] == "clips per batch (default: 64)"
    assert "10-40 %" in field_comments(TrainConfig)["partial_words"]


def test_a_new_field_is_a_new_flag_and_overrides_keep_what_was_stored():
    @dataclass(frozen=True)
    class Extra:
        width: float = 1.5  # how wide
        mode: str = field(default="a", metadata={"choices": ("a", "b")})  # which mode

    p = _parser(Extra, override=True)
    assert config_values(Extra, p.parse_args([]), skip_none=True) == {}
    assert config_values(Extra, p.parse_args(["--width", "2"]), skip_none=True) == {"width": 2.0}
    helps = {a.dest: a.help for a in p._actions}
    assert helps["width"] == "how wide (default: the model file's)"


def test_include_exclude_and_rename():
    p = _parser(DataConfig, exclude=("quota_train", "quota_val", "quota_test", "augment_snr_db"))
    dests = {a.dest for a in p._actions}
    assert {"vocab", "val_percent", "extras", "augment", "augment_shift_ms"} <= dests
    assert "quota_train" not in dests and "augment_snr_db" not in dests

