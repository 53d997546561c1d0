"""docs/cli.md from the parser: every command, its description, usage and options with their defaults.

    python -m kws_hpc.clidoc > docs/cli.md      (what `make docs` runs; a test fails when the file is stale)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

WIDTH = "100"  # argparse wraps usage lines at $COLUMNS: fixed, so the file does not depend on the terminal


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += list(action.choices.items())
    return out


def _walk(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    """(command line, parser) for every command with options of its own, depth first, in help order."""
    subs = _subcommands(parser)
    if not subs:
        return [(prefix, parser)]
    rows = []
    for name, sub in subs:
        rows += _walk(sub, f"{prefix} {name}")
    return rows


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    lines = ["| option | what it does |", "|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(action.option_strings) or action.metavar or action.dest
        if action.option_strings and action.nargs != 0:
            name += " " + formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        help_text = formatter._expand_help(action) if action.help else ""
        if not help_text and action.option_strings and action.default not in (None, argparse.SUPPRESS):
            help_text = f"(default: {action.default})"
        lines.append(f"| `{_cell(name)}` | {_cell(help_text)} |")
    return lines


def markdown() -> str:
    """The whole reference as markdown, the same from any folder and checkout: help texts that list the
    job profiles and search spaces name only the packaged ones, and not where the package lies."""
    from kws_hpc.cli import build_parser
    from kws_hpc.defaults import KINDS, packaged

    os.environ["COLUMNS"] = WIDTH
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as empty:
        os.chdir(empty)  # no ./jobs or ./sweeps of the working folder in the help texts
        try:
            parser = build_parser()
            text = _markdown(parser)
        finally:
            os.chdir(here)
    for kind in KINDS:
        text = text.replace(str(packaged(kind)), "the package's defaults")
    return text


def _markdown(parser: argparse.ArgumentParser) -> str:
    out = ["# Command reference", "",
           "Generated from the parser by `python -m kws_hpc.clidoc > docs/cli.md` (`make docs`); "
           "`kws-hpc COMMAND --help` prints the same.", ""]
    for line, sub in _walk(parser, "kws-hpc"):
        out += [f"## {line}", ""]
        if sub.description:
            out += [" ".join(sub.description.split()), ""]
        out += ["```", sub.format_usage().strip(), "```", ""]
        out += _options(sub) + [""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown())
