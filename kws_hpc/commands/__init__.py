"""Sub-commands of `kws-hpc`: each module has `register(subparsers)` and keeps its imports local."""
