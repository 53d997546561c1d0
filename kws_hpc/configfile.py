"""Config files: a command's options kept in a TOML file, read with `--config FILE`, printed with
`--print-config`.

A file has one table per command: `[features]`, `[train]`, `[sweep]` (for `sweep run`), `[report]`,
`[export]`, `[live]`, so one file can hold a whole recipe, from the clips to the live model. A key is a
long option of that command without its dashes, `-` written `_` (`batch_size = 64` is `--batch-size 64`,
`model = "lstm"` is `--model lstm`, `tensorboard = false` is `--no-tensorboard`); a positional argument
is its name (`checkpoint = ["runs/abc"]`). Values take the types the options take; a list is what
several values on the command line are. Flags given on the command line win over the file, and the
file over the defaults. Relative paths are read from the folder the command runs in, as flags are.

`--print-config` prints the options a command would run with as such a table, which `--config` reads
back; every run folder keeps the training's table as `config.toml`, and every feature store its
`[features]` table.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
from pathlib import Path
from typing import Any, Optional

SECTIONS = ("features", "train", "sweep", "report", "export", "live")  # one per command that reads a file
NOT_OPTIONS = ("help", "version", "config", "print_config")


# --- writing ------------------------------------------------------------------------------------

def toml_value(v: Any) -> str:
    """A TOML literal for a bool, number, string or list of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML value for {v!r}")


def dumps(sections: dict, comment: str = "") -> str:
    """`{table: {key: value}}` as TOML; keys whose value is None are left out (they mean the default)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    for name, values in sections.items():
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def field_key(f: dataclasses.Field) -> str:
    """The key (and, with dashes, the flag) of a config field: its `flag` metadata, else its name."""
    return f.metadata.get("flag", "--" + f.name).lstrip("-").replace("-", "_")


def run_recipe(cfg, out: str | Path) -> str:
    """The `[train]` table that trains the RunConfig `cfg` into `out` (a run folder's config.toml)."""
    values = {"store": str(Path(cfg.store).expanduser().resolve()), "out": str(out)}
    for part in (cfg.model, cfg.train):
        values.update({field_key(f): getattr(part, f.name) for f in dataclasses.fields(part)})
    return dumps({"train": values}, comment="kws-hpc train --config FILE trains this run again (or finds it done)")


# --- reading, for a command's parser --------------------------------------------------------------

def add_config_file(parser: argparse.ArgumentParser, section: str) -> None:
    """`--config FILE` (values for this command's options from table `section`) and `--print-config`."""
    parser.config_section = section  # read by `apply` before the command line is parsed
    g = parser.add_argument_group("config file")
    g.add_argument("--config", metavar="FILE.toml", default=None,
                   help=f"read this command's options from the [{section}] table of a TOML file; flags given "
                        "here override it (docs/config.md)")
    g.add_argument("--print-config", action="store_true",
                   help="print the options this command would run with as a TOML table (which --config reads) "
                        "and exit")
    parser.set_defaults(config_parser=parser)


def option_key(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs[0][2:] if longs else action.dest).replace("-", "_")


def options_of(parser: argparse.ArgumentParser) -> dict:
    """{key: action} of every option a config file may set."""
    return {option_key(a): a for a in parser._actions
            if a.dest not in NOT_OPTIONS and not isinstance(a, argparse._SubParsersAction)
            and a.dest is not argparse.SUPPRESS}


def config_path(argv: list) -> Optional[str]:
    """The FILE of `--config FILE` (or `--config=FILE`) in a command line, None without one."""
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def read_table(path: str, section: str) -> dict:
    """Table `section` of the TOML file `path` (empty if the file has none); ValueError saying what is wrong."""
    import tomllib

    try:
        doc = tomllib.loads(Path(path).expanduser().read_text())
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path} is not valid TOML: {e}") from None
    for name, table in doc.items():
        if name not in SECTIONS or not isinstance(table, dict):
            what = f"unknown table [{name}]" if isinstance(table, dict) else f"key {name!r} outside a table"
            raise ValueError(f"{path}: {what}; the tables are {', '.join(f'[{s}]' for s in SECTIONS)}")
    return doc.get(section, {})


def apply(parser: argparse.ArgumentParser, argv: list) -> None:
    """Make the values of the `--config` file in `argv` this parser's defaults (ValueError: one line on
    the first bad key or value). An option the file gives is no longer required on the command line."""
    path = config_path(argv)
    if path is None:
        return
    section = parser.config_section
    table = read_table(path, section)
    known = options_of(parser)
    values = {}
    for key, value in table.items():
        action = known.get(key)
        if action is None:
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ValueError(f"{path}: [{section}] has no key {key!r}{hint}; its keys are the options of "
                             f"{parser.prog} without their dashes, '-' written '_' (see --help)")
        values[action.dest] = convert(action, value, f"{path}: [{section}] {key} = {toml_value_or_repr(value)}")
        action.required = False
    parser.set_defaults(**values)


def toml_value_or_repr(v) -> str:
    try:
        return toml_value(v)
    except TypeError:
        return repr(v)


def convert(action: argparse.Action, value, where: str):
    """`value` as the option `action` would have parsed it; ValueError naming what it allows."""
    if action.nargs == 0:  # --x/--no-x, store_true, store_false
        if not isinstance(value, bool):
            raise ValueError(f"{where}: use true or false")
        return value
    many = action.nargs not in (None, "?")
    if many:
        if not isinstance(value, list):
            if action.nargs in ("+", "*"):
                value = [value]
            else:
                raise ValueError(f"{where}: use a list of {action.nargs} values")
        if isinstance(action.nargs, int) and len(value) != action.nargs:
            raise ValueError(f"{where}: use a list of {action.nargs} values")
        return [_one(action, v, where) for v in value]
    return _one(action, value, where)


def _one(action: argparse.Action, v, where: str):
    kind = action.type
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{where}: use a whole number")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}: use a number")
        v = float(v)
    elif kind in (None, str):
        if not isinstance(v, str):
            raise ValueError(f"{where}: use a string (in quotes)")
    else:
        try:
            v = kind(v)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise ValueError(f"{where}: {e}") from None
    if action.choices is not None and v not in action.choices:
        raise ValueError(f"{where}: use one of {', '.join(map(str, action.choices))}")
    return v


def effective(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The options `args` holds for `parser`'s command as its TOML table (`--print-config`)."""
    values = {}
    for key, action in options_of(parser).items():
        v = getattr(args, action.dest, None)
        values[key] = list(v) if isinstance(v, tuple) else v
    return dumps({parser.config_section: values},
                 comment=f"{parser.prog} --config FILE runs with these options (flags given with it win)")
