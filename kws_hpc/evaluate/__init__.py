"""Stage 4, evaluation: a model over long scored streams, the way the live detector hears them. Test
streams and their truth, the detector's decision logic and its pipeline (samples in, detections out), the
model behind the scorer interface (torch or an in-memory ONNX graph), scoring against the truth, DET
curves, threshold calibration for a false-alarm budget, and hard-negative mining."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "make_stream": "teststream", "stream_audio": "teststream", "read_truth": "teststream",
    "TruthEvent": "teststream",
    "DetectorConfig": "detector", "Detection": "detector", "Pipeline": "pipeline",
    "TorchScorer": "scorer", "OnnxScorer": "scorer", "checkpoint_scorer": "scorer",
    "score": "scoring", "det_curve": "scoring", "pick_by_budget": "scoring", "measure": "det",
})
