"""Sub-commands of `kws-hpc`: each module has `register(subparsers)` and keeps its imports local."""


def option(parser, flag: str, kind, default, text: str) -> None:
    """`--flag VALUE` of type `kind` whose help ends with its default."""
    parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")
