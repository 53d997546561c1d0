"""Stage 6, deploy: one ONNX file per model (export, parity, threshold calibration), and the live
detector (voice gate, smoothing, trigger) over a microphone or a WAV file, scored against a truth."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "export_checkpoint": "export", "load_exported": "onnx_model", "DetectorConfig": "detector",
    "Pipeline": "pipeline", "run_wav": "pipeline", "run_live": "listen", "LiveOptions": "listen",
})
