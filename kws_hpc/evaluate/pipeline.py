"""The live pipeline: samples in, detections out. One code path for the microphone and for WAV files.

Every hop (100 ms by default) the rolling 1-s buffer advances; the voice gate looks at the new 10-ms
frames; if the window holds voice, the window's log-mels (`features.log_mel`, the very function that made
the training store) go through the model, or, with `streaming`, only the new frames step the RNN from
its carried state (reset after `preroll`-long silence, restarted on the frames just before the voice).
Posteriors are smoothed over the last hops, and `Trigger` applies thresholds and the refractory time.
The cost of every hop is timed, so the real-time factor on one CPU thread is a measured number.
Offline (`batch` > 1: a sweep over a recorded stream) the hops queue up and the model runs on many
windows at once; the decisions are the same, made up to `batch` hops later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from kws_hpc.config import CANNOT_STREAM, FeatureConfig
from kws_hpc.evaluate.detector import Detection, DetectorConfig, EnergyVAD, Gate, Smoother, Trigger, softmax
from kws_hpc.errors import KwsError
from kws_hpc.features.logmel import log_mel
from kws_hpc.features.padding import background_like


@dataclass
class Trace:
    """What a run recorded: per hop its end time and smoothed posteriors; the VAD's flags and floor."""

    times: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    vad: list = field(default_factory=list)  # arrays of per-frame voice flags
    floor_db: list = field(default_factory=list)  # noise floor after each hop

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.times), np.asarray(self.smoothed, np.float32)

    def vad_flags(self) -> np.ndarray:
        return np.concatenate(self.vad) if self.vad else np.zeros(0, bool)


class Pipeline:
    """Rolling buffer + voice gate + features + model + smoothing + trigger, fed any number of samples."""

    def __init__(self, scorer, labels, feature_config: FeatureConfig, cfg: DetectorConfig,
                 record: bool = False, batch: int = 1):
        cfg.check()
        fc = feature_config
        self.scorer, self.labels, self.fc, self.cfg = scorer, list(labels), fc, cfg
        self.hop = int(round(cfg.hop_s * fc.sample_rate))
        if self.hop % fc.hop_length:
            raise KwsError(f"--hop {cfg.hop_s} s is not a whole number of {fc.hop_length}-sample "
                           "feature frames")
        if cfg.streaming and not scorer.can_stream:
            raise KwsError(CANNOT_STREAM)
        self.window = fc.clip_samples
        self.buffer = np.zeros(self.window, np.float32)  # the window before the first sample: see `push`
        self.pending = np.zeros(0, np.float32)
        self.samples = 0  # samples consumed by whole hops so far
        frame_s = fc.hop_length / fc.sample_rate
        self.vad = EnergyVAD(cfg, fc.hop_length, fc.sample_rate) if cfg.vad else None
        self.gate = Gate(fc.frames, int(round(cfg.vad_min_voice_s / frame_s)))
        self.reset_frames = max(1, int(round(cfg.preroll_s / frame_s)))
        self.smoother = Smoother(int(round(cfg.smooth_s / cfg.hop_s)), len(self.labels))
        self.trigger = Trigger(self.labels, cfg)
        self.state = None  # streaming: the RNN state, None after a reset
        self.next_frame = 0  # streaming: first global frame not yet stepped
        self.trace = Trace() if record else None
        self.costs: list = []  # seconds per hop (gate + features + model + decision)
        self.ran: list = []  # per hop: did the model run
        # offline (batch > 1, window mode): hops wait here and the model runs on `batch` windows at once;
        # the same decisions, each up to `batch` hops late (a file or a sweep, never a microphone)
        self.batch = 1 if cfg.streaming else max(1, int(batch))
        self.queue: list = []  # (time, window or None, voice flags, noise floor, gate seconds) per hop

    @property
    def seconds(self) -> float:
        return self.samples / self.fc.sample_rate

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Feed float32 mono samples at the feature rate; returns the detections of the hops completed."""
        x = np.concatenate([self.pending, np.asarray(samples, np.float32).reshape(-1)])
        if self.samples == 0 and len(x) >= self.hop:  # the window before the stream holds its background,
            self.buffer = background_like(x[:self.window], self.window, np.random.default_rng(0))  # as in the store
        out, at = [], 0
        while len(x) - at >= self.hop:
            out += self._hop(x[at:at + self.hop])
            at += self.hop
        self.pending = x[at:].copy()
        return out

    def finish(self) -> list[Detection]:
        """End of input: the hops still waiting for the model, then a decision still on hold (the stream
        stopped during it)."""
        out = self._drain()
        det = self.trigger.flush(self.seconds)
        return out + ([det] if det is not None else [])

    def _hop(self, new: np.ndarray) -> list[Detection]:
        t0 = time.perf_counter()
        self.buffer = np.concatenate([self.buffer[len(new):], new])  # a new array: safe to keep in the queue
        self.samples += len(new)
        flags = self.vad.push(new) if self.vad is not None else np.ones(len(new) // self.fc.hop_length, bool)
        is_open = self.gate.push(flags)
        floor = self.vad.floor_db if self.vad is not None else None
        if self.batch > 1:
            self.queue.append((self.seconds, self.buffer if is_open else None, flags, floor,
                               time.perf_counter() - t0))
            return self._drain() if len(self.queue) >= self.batch else []
        probs = None
        if self.cfg.streaming:
            if self.gate.closed_frames >= self.reset_frames:
                self.state = None  # silence: forget, and restart on the next voice
            else:
                probs = softmax(self._stream_logits())
        elif is_open:
            feats = log_mel(self.buffer[None, :], self.fc)
            probs = softmax(self.scorer.window(feats)[0])
        det = self._decide(self.seconds, probs, flags, floor)
        self.costs.append(time.perf_counter() - t0)
        return [det] if det is not None else []

    def _drain(self) -> list[Detection]:
        """Run the model once on every queued window, then decide the queued hops in order."""
        if not self.queue:
            return []
        queue, self.queue = self.queue, []
        t0 = time.perf_counter()
        windows = [w for _, w, _, _, _ in queue if w is not None]
        probs = iter(softmax(self.scorer.window(log_mel(np.stack(windows), self.fc))) if windows else ())
        out = []
        for t, w, flags, floor, _ in queue:
            det = self._decide(t, next(probs) if w is not None else None, flags, floor)
            if det is not None:
                out.append(det)
        share = (time.perf_counter() - t0) / len(queue)  # the batch's cost, spread over its hops
        self.costs += [gate_s + share for *_, gate_s in queue]
        return out

    def _decide(self, t: float, probs: Optional[np.ndarray], flags: np.ndarray, floor) -> Optional[Detection]:
        """Smoothing and trigger for the hop ending at `t` (probs None: the model did not run)."""
        smoothed = self.smoother.push(probs)
        det = self.trigger(t, smoothed)
        self.ran.append(probs is not None)
        if self.trace is not None:
            self.trace.times.append(t)
            self.trace.smoothed.append(smoothed)
            self.trace.vad.append(flags)
            self.trace.floor_db.append(floor)
        return det

    def _stream_logits(self) -> np.ndarray:
        """Step the RNN over the frames completed since the last hop (after a reset: the pre-roll too)."""
        fc = self.fc
        last = (self.samples - fc.n_fft // 2) // fc.hop_length  # newest frame whose samples are all here
        if self.state is None:
            preroll = self.hop // fc.hop_length + self.reset_frames
            self.next_frame = max(2, self.next_frame, last - preroll + 1)
        frames = self.frames(self.next_frame, last)
        self.next_frame = last + 1
        logits, self.state = self.scorer.step(frames[None], self.state)
        return logits[0]

    def frames(self, first: int, last: int) -> np.ndarray:
        """Log-mel frames `first..last` of the whole stream (frame k centred on sample k * hop_length).

        Computed on the buffered samples around them only; every frame used lies fully inside the
        segment, so it equals the frame of one STFT over the whole stream.
        """
        fc = self.fc
        start = (first - 2) * fc.hop_length  # frame `first` is the segment's third, clear of its padding
        end = last * fc.hop_length + fc.n_fft // 2
        buf_start = self.samples - self.window
        if start < buf_start or end > self.samples or last < first:
            raise ValueError(f"frames {first}..{last} are not in the buffer")
        seg = self.buffer[start - buf_start:end - buf_start]
        return log_mel(seg[None, :], fc)[0, 2:2 + last - first + 1]

    def rtf(self) -> dict:
        """Cost per hop and real-time factor (cost / hop duration), over all hops and over model hops."""
        c = np.asarray(self.costs) if self.costs else np.zeros(1)
        busy = c[np.asarray(self.ran, bool)] if any(self.ran) else np.zeros(1)
        hop_s = self.hop / self.fc.sample_rate
        return {"hops": len(self.costs), "model_runs": int(sum(self.ran)),
                "ms_per_hop": 1e3 * float(c.mean()), "ms_per_model_hop": 1e3 * float(busy.mean()),
                "ms_per_model_hop_p95": 1e3 * float(np.percentile(busy, 95)),
                "rtf": float(c.mean() / hop_s), "rtf_model_hop": float(busy.mean() / hop_s)}
