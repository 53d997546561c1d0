"""Stage 7, deploy: one ONNX file per model (export, parity, the threshold calibrated by `evaluate`), and
live runs of it over a microphone or a sound file, scored against a truth when given."""

from kws_hpc.lazy import exports

# DetectorConfig and Pipeline are evaluate's, named here through the deploy modules that import them
__getattr__, __dir__ = exports(__name__, {
    "export_checkpoint": "export", "load_exported": "onnx_model", "run_wav": "audiofile",
    "run_live": "listen", "LiveOptions": "listen", "DetectorConfig": "listen", "Pipeline": "audiofile",
})
