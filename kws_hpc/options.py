"""Command-line options from the config dataclasses, written once: a field is a flag and back.

`add_config_args(parser, Cls)` turns every field of a frozen config dataclass into `--field-name`
(type from the annotation, `--x/--no-x` for booleans, choices from the field's metadata, help from the
comment after the field in the source, ending with its default, or with the field's `default_text`
when the default depends on other options); `config_from_args(Cls, args)` builds
the config back from the parsed namespace. A new option is a new commented field, nothing else.
`add_job_args` / `job_options` are the `--executor`/`--profile` flags every launching command shares.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable, Optional

class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (what is wrong, and where the help is), exit code 2, and
    a command's `--config FILE` (`configfile.add_config_file`) read before its command line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "config_section", None) is not None:
            from kws_hpc import configfile

            try:
                configfile.apply(self, list(args) if args is not None else sys.argv[1:])
            except ValueError as e:
                self.error(str(e))
        return super().parse_known_args(args, namespace)


KEEP = "the model file's"  # the help's default for override flags (None = keep the stored value)


@functools.lru_cache(maxsize=None)
def field_comments(cls) -> dict[str, str]:
    """{field: the comment after it in the class source} (empty when the source is not available)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.end_lineno - 1]
            if "#" in line[node.end_col_offset:]:
                out[node.target.id] = line[node.end_col_offset:].split("#", 1)[1].strip()
    return out


def _kind(f: dataclasses.Field, default: Any):
    """The python type of a field: from the default, else from the annotation text."""
    if isinstance(default, (bool, int, float, str)):
        return type(default)
    text = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if name in text:
            return kind
    return str


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def flag_of(name: str, flags: Optional[dict] = None, f: Optional[dataclasses.Field] = None) -> str:
    """`--field-name`, or the field's `flag` metadata, or what `flags` renames it to."""
    return (flags or {}).get(name) or (f.metadata.get("flag") if f is not None else None) or \
        "--" + name.replace("_", "-")


def add_config_args(parser, cls, include: Optional[Iterable[str]] = None, exclude: Iterable[str] = (),
                    flags: Optional[dict] = None, override: bool = False, base=None) -> None:
    """One flag per field of `cls` (or of `include`, in that order), minus `exclude`.

    `flags` renames ({field: "--flag"}); `override` makes every default None ("keep the stored value",
    for options that change what a file says); `base` is an instance whose values are the defaults."""
    comments = field_comments(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(include) if include is not None else list(fields)
    for name in names:
        if name in exclude:
            continue
        f = fields[name]
        default = getattr(base, name) if base is not None else _default(f)
        kind = _kind(f, default)
        shown = KEEP if override else f.metadata.get("default_text", default)  # text for a default that varies
        text = (f.metadata.get("help") or comments.get(name, "")).replace("%", "%%")
        help_ = f"{text} (default: {shown})" if text else f"(default: {shown})"
        kw: dict = {"dest": name, "help": help_, "default": None if override else default}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple) and default:  # a range: LOW HIGH
            kw.update(type=type(default[0]), nargs=len(default),
                      metavar=("LOW", "HIGH") if len(default) == 2 else None)
            kw["help"] = help_.replace(f"(default: {shown})", f"(default: {' '.join(map(str, default))})")
        else:
            kw["type"] = kind
            if f.metadata.get("choices"):
                kw["choices"] = list(f.metadata["choices"])
            if f.metadata.get("metavar"):
                kw["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag_of(name, flags, f), **kw)


def add_run_options(p) -> None:
    """Every ModelConfig and TrainConfig field as a flag (the cell is `--model`): a training recipe, as
    `kws-hpc train` and the variants of `kws-hpc bench ablate` take it."""
    from kws_hpc.config import ModelConfig, TrainConfig

    add_config_args(p.add_argument_group("model"), ModelConfig)  # the cell's flag, --model, is its metadata
    add_config_args(p.add_argument_group("training"), TrainConfig)


def config_values(cls, args: argparse.Namespace, skip_none: bool = False) -> dict:
    """{field: parsed value} for every field of `cls` the namespace has (None values dropped if asked)."""
    out = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            v = tuple(v) if isinstance(v, list) else v
            if not (skip_none and v is None):
                out[f.name] = v
    return out


def config_from_args(cls, args: argparse.Namespace, **extra):
    """`cls` built from the parsed flags (fields without a flag keep their defaults), plus `extra`."""
    return cls(**{**config_values(cls, args), **extra})


def option(parser, flag: str, kind, default, text: str, **kw) -> None:
    """A single `--flag VALUE` whose help ends with its default (for options that are not config fields)."""
    parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})", **kw)


# --- jobs ---------------------------------------------------------------------------------------

def add_job_args(p: argparse.ArgumentParser, default: Optional[str] = None, log_dir_help: str = "OUT/jobs") -> None:
    """`--executor`, `--profile`, `--log-dir`, `--no-wait`: run a command as a submitit job."""
    from kws_hpc.defaults import describe
    from kws_hpc.launch.profiles import EXECUTORS

    g = p.add_argument_group("jobs")
    here = "in this process" if default is None else default
    g.add_argument("--executor", choices=EXECUTORS, default=default,
                   help=f"run as a submitit job: local processes, Slurm, or debug (in-process) (default: {here})")
    g.add_argument("--profile", default=None,
                   help=f"cluster profile: a name ({describe('jobs')}) or a .toml path "
                        "(default: the executor's own profile)")
    g.add_argument("--log-dir", default=None,
                   help=f"submitit folder for job pickles and logs, visible to the jobs (default: {log_dir_help})")
    g.add_argument("--no-wait", action="store_true", help="submit and return instead of waiting for the result")


def job_options(args: argparse.Namespace, out: str | Path, name: str):
    """JobOptions from parsed `add_job_args` flags; the log folder defaults to OUT/jobs."""
    from kws_hpc.launch.executors import JobOptions
    from kws_hpc.launch.profiles import load_profile

    executor = getattr(args, "executor", None)
    profile = getattr(args, "profile", None)
    if executor is None and profile is not None:
        executor = load_profile(profile).get("executor") or "local"
    log_dir = getattr(args, "log_dir", None) or str(Path(out) / "jobs")
    return JobOptions(executor=executor, profile=profile, log_dir=log_dir, name=name,
                      wait=not getattr(args, "no_wait", False))
