"""Package-level names imported on first use, so `import kws_hpc.<stage>` stays cheap (no torch, no optuna)."""

from __future__ import annotations

import importlib


def exports(package: str, names: dict[str, str]):
    """(__getattr__, __dir__) for a package whose public `names` ({name: submodule}) load when first used."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
