"""Sub-commands of `kws-hpc`: each module has `register(subparsers)`, parses, calls one library
function and prints; heavy imports stay inside the functions so `kws-hpc --help` is instant."""
