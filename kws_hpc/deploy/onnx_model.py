"""The exported model file: one ONNX graph plus the metadata that makes it self-contained.

The graph is the scorer graph of `evaluate.scorer` (its inputs, outputs and streaming state are described
there). The model file's metadata (key `kws_hpc`, JSON) carries the label order, the feature config, the
model config, normalisation, detector settings and thresholds, and the parity measured at export, so the
live detector needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kws_hpc.config import FeatureConfig, ModelConfig, from_dict
from kws_hpc.errors import KwsError
from kws_hpc.evaluate.detector import DetectorConfig
from kws_hpc.evaluate.scorer import OnnxScorer

FORMAT = "kws-hpc-onnx"
FORMAT_VERSION = 1
META_KEY = "kws_hpc"


def with_metadata(onnx_bytes: bytes, meta: dict) -> bytes:
    """The ONNX bytes with `meta` stored as JSON under the `kws_hpc` metadata key."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(meta, sort_keys=True)})
    proto.producer_name = "kws-hpc"
    return proto.SerializeToString()


@dataclass
class ExportedModel:
    """A loaded export: the runnable scorer and what the file says about itself."""

    path: Path
    scorer: OnnxScorer
    labels: list
    feature_config: FeatureConfig
    model_config: ModelConfig
    detector: DetectorConfig
    meta: dict


def load_exported(path: str | Path, threads: int = 1) -> ExportedModel:
    """Open an exported file and check it describes itself (format, labels, feature config, shapes)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise KwsError(f"model file {p} does not exist; make one with kws-hpc export RUN --out {p.name}")
    scorer = OnnxScorer(p, threads)
    raw = scorer.metadata.get(META_KEY)
    if raw is None:
        raise KwsError(f"{p} has no kws-hpc metadata (label order, feature config); "
                       "export it with kws-hpc export")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise KwsError(f"{p} is format {meta.get('format')} v{meta.get('format_version')}; this kws-hpc "
                       f"reads {FORMAT} up to v{FORMAT_VERSION}: upgrade kws-hpc or re-export")
    missing = [k for k in ("labels", "feature_config", "model_config") if not meta.get(k)]
    if missing:
        raise KwsError(f"{p} lacks {' and '.join(missing)} in its metadata; re-export it with kws-hpc export")
    labels, fc = list(meta["labels"]), from_dict(FeatureConfig, meta["feature_config"])
    out = scorer.session.get_outputs()[0].shape[-1]
    n_mels = scorer.session.get_inputs()[0].shape[-1]
    if out != len(labels) or n_mels != fc.n_mels:
        raise KwsError(f"{p}: the graph has {out} outputs and {n_mels} mel inputs but its metadata says "
                       f"{len(labels)} labels and {fc.n_mels} mels; the file is inconsistent, re-export it")
    return ExportedModel(path=p, scorer=scorer, labels=labels, feature_config=fc,
                         model_config=from_dict(ModelConfig, meta["model_config"]),
                         detector=DetectorConfig.from_dict(meta.get("detector") or {}), meta=meta)
