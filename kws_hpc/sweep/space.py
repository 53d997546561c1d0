"""Search spaces: small TOML files (sweeps/NAME.toml) that say what a study varies and what it fixes.

A space is data: `params` (a list is categorical; a table is int or float with low/high/log/step),
`fixed` (values every trial shares, epochs among them), `sampler` and `pruner` settings. Every key of
`params` and `fixed` must be a model or training option, so a typo is refused before any trial runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from kws_hpc.config import ModelConfig, RunConfig, TrainConfig, replace
from kws_hpc.defaults import find_default
from kws_hpc.errors import KwsError

if TYPE_CHECKING:
    from kws_hpc.sweep.studies import SweepSpec

MODEL_FIELDS = set(ModelConfig.__dataclass_fields__) - {"cell"}
TRAIN_FIELDS = set(TrainConfig.__dataclass_fields__) - {"seed", "device"}


def find_space(name: str) -> Path:
    """A search-space file: NAME as a path, ./sweeps/NAME(.toml), or the packaged sweeps/NAME(.toml)."""
    return find_default("sweeps", name, what="search space")


def load_space(name: str, epochs: Optional[int] = None) -> dict:
    """Read and check a search space file; `epochs` overrides its fixed epochs."""
    import tomllib

    path = find_space(name)
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KwsError(f"search space {path} is not valid TOML: {e}") from None
    space = {"params": {k: _param(path, k, p) for k, p in raw.get("params", {}).items()},
             "fixed": dict(raw.get("fixed", {})), "sampler": dict(raw.get("sampler", {})),
             "pruner": dict(raw.get("pruner", {"type": "median"}))}
    bad = sorted(k for k in [*space["params"], *space["fixed"]] if k not in MODEL_FIELDS | TRAIN_FIELDS)
    if bad:
        raise KwsError(f"search space {path}: {', '.join(bad)} not a model or training option; "
                       f"use {', '.join(sorted(MODEL_FIELDS | TRAIN_FIELDS))}")
    if epochs is not None:
        space["fixed"]["epochs"] = epochs
    return space


def _param(path: Path, key: str, p) -> dict:
    """Normalise one parameter: a list is categorical; a table has type int|float|categorical."""
    if isinstance(p, list) and p:
        return {"type": "categorical", "choices": p}
    kind = p.get("type") if isinstance(p, dict) else None
    if kind == "categorical" and p.get("choices"):
        return dict(p)
    if kind in ("int", "float") and "low" in p and "high" in p and p["low"] <= p["high"]:
        return dict(p)
    raise KwsError(f"search space {path}: parameter {key!r} needs a list of choices, or "
                   "{type = \"int\"|\"float\", low = .., high = .., log = true|false} with low <= high")


def suggest(trial, space: dict) -> dict:
    """trial.suggest_* for every parameter of the space; returns {name: value}."""
    values = {}
    for name, p in space["params"].items():
        if p["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, p["choices"])
        elif p["type"] == "int":
            values[name] = trial.suggest_int(name, p["low"], p["high"], step=p.get("step", 1),
                                             log=p.get("log", False))
        else:
            values[name] = trial.suggest_float(name, p["low"], p["high"], step=p.get("step"),
                                               log=p.get("log", False))
    return values


def run_config(spec: SweepSpec, params: dict, seed: int = 0, epochs: Optional[int] = None) -> RunConfig:
    """The RunConfig of a parameter set: fixed values, then the parameters, the model family and seed."""
    values = {**spec.space["fixed"], **params}
    model = replace(ModelConfig(cell=spec.model), **{k: v for k, v in values.items() if k in MODEL_FIELDS})
    train = replace(TrainConfig(seed=seed, device=spec.device),
                    **{k: v for k, v in values.items() if k in TRAIN_FIELDS})
    if epochs is not None:
        train = replace(train, epochs=epochs)
    return RunConfig(store=spec.store, model=model, train=train)
