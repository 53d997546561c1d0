"""docs/cli.md is the parser's reference, and every "default: X" a help text states is the parser's default."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from kws_hpc.cli import build_parser
from kws_hpc.clidoc import _walk, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
STATED = re.compile(r"\(default: ([^()]*?)\)")


def test_cli_md_is_generated_from_todays_parser():
    assert DOC.read_text() == markdown(), "docs/cli.md is stale: run `make docs` (python -m kws_hpc.clidoc)"


def _literal(text: str):
    """The stated default as a value when it is one (a number, a word, or LOW HIGH), else None."""
    first = text.split(";")[0].split(":")[0].split(",")[0].strip()
    words = first.split()
    try:
        values = [float(w) for w in words]
        return values[0] if len(values) == 1 else values
    except ValueError:
        return first if len(words) == 1 and re.fullmatch(r"[\w.\-]+", first) else None


def _stated_defaults():
    for line, parser in _walk(build_parser(), "kws-hpc"):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help and action.help is not argparse.SUPPRESS:
                for stated in STATED.findall(formatter._expand_help(action)):
                    yield line, action, stated


def test_every_stated_default_is_the_parsers():
    checked = 0
    for line, action, stated in _stated_defaults():
        value = _literal(stated)
        if value is None:  # a description ("all cores", "the model file's"): nothing to compare
            continue
        where = f"{line} {'/'.join(action.option_strings) or action.dest}: help says default {stated!r}"
        default = action.default
        if value == "none":
            assert not default, f"{where}, the parser's is {default!r}"
            checked += 1
            continue
        if ";" in stated and default is None:  # a default that depends on another option, said in words
            continue
        assert default is not None, f"{where}, but the parser's default is None (it is resolved elsewhere)"
        if isinstance(value, list):
            assert [float(v) for v in default] == value, f"{where}, the parser's is {default!r}"
        elif isinstance(value, float):
            assert float(default) == pytest.approx(value), f"{where}, the parser's is {default!r}"
        else:
            assert str(default) == value, f"{where}, the parser's is {default!r}"
        checked += 1
    assert checked > 50  # the check reads the help texts, not an empty list
