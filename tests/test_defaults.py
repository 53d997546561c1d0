"""Job profiles and search spaces: a path, then ./jobs or ./sweeps, then the packaged defaults."""

from __future__ import annotations

import pytest

from kws_hpc.defaults import describe, find_default, known, packaged
from kws_hpc.errors import KwsError


def test_packaged_defaults_are_there():
    assert (packaged("jobs") / "local.toml").is_file() and (packaged("sweeps") / "default.toml").is_file()


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_default("sweeps", "demo", "search space") == packaged("sweeps") / "demo.toml"
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "demo.toml").write_text("[params]\n")
    assert find_default("sweeps", "demo", "search space").resolve() == (tmp_path / "sweeps" / "demo.toml")
    mine = tmp_path / "elsewhere.toml"
    mine.write_text("")
    assert find_default("sweeps", str(mine), "search space") == mine
    assert known("sweeps")["sweeps"] == ["demo"]


def test_missing_name_lists_what_each_place_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KwsError, match="no job profile 'nope'") as e:
        find_default("jobs", "nope", "job profile")
    assert "local" in str(e.value) and str(packaged("jobs")) in str(e.value)
    assert "slurm" in describe("jobs")
