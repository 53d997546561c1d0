"""The `kws-hpc` entry point: one sub-command per stage, each registered by its module in commands/.

Errors the user can fix (KwsError) become one line on stderr and exit code 2; an interrupt says how
to continue. Heavy imports happen inside the commands, so `kws-hpc --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from kws_hpc import __version__
from kws_hpc import commands
from kws_hpc.errors import KwsError
from kws_hpc.options import Parser

ORDER = ["data", "features", "train", "evaluate", "sweep", "report", "export", "live", "mine", "demo", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kws-hpc", description="Precomputed-feature GRU/LSTM keyword spotting on Speech Commands.")
    parser.add_argument("--version", action="version", version=f"kws-hpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    for name in sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help and --version exit 0; a usage error exits 2 after its one line
        return int(e.code or 0)
    if getattr(args, "print_config", False):
        from kws_hpc.configfile import effective

        print(effective(args.config_parser, args), end="")
        return 0
    try:
        code = args.func(args)
    except KwsError as e:
        print(f"kws-hpc: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system said no where no stage expected it: still one line naming the file
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"kws-hpc: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kws-hpc: interrupted; re-running the same command continues where it stopped", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
