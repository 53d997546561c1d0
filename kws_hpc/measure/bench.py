"""Benchmarks against the per-clip pipelines this tool replaces, run side by side on the same data.

Each benchmark returns a dict of figures; `kws-hpc bench` prints them and appends them to a JSON file.
The baselines are written the way torchaudio users write them: decode and featurise one clip at a
time (features), or a Dataset that decodes each WAV and computes its mel in every epoch, behind a
DataLoader with two workers (training), as in the reference report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kws_hpc.config import FeatureConfig, ModelConfig, TrainConfig


def _clip_paths(data: Path, labels: list[str], limit: int) -> list[tuple[Path, int]]:
    out = []
    for i, word in enumerate(labels):
        out += [(p, i) for p in sorted((data / word).glob("*.wav"))]
    rng = np.random.default_rng(0)
    rng.shuffle(out)
    return out[:limit] if limit else out


def per_clip_features(paths: list[Path], cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The baseline: soundfile.read + torchaudio MelSpectrogram + log, one clip at a time."""
    mel = _baseline_mel(cfg)
    return np.stack([_clip_log_mel(p, mel, cfg).numpy() for p in paths])


def _baseline_mel(cfg: FeatureConfig):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                                f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels)


def _clip_log_mel(path: Path, mel, cfg: FeatureConfig):
    """One clip, the way a per-clip pipeline does it: read, pad/trim, mel, log."""
    import soundfile as sf
    import torch

    wave, _ = sf.read(path, dtype="float32")
    x = torch.zeros(cfg.clip_samples)
    n = min(len(wave), cfg.clip_samples)
    x[:n] = torch.from_numpy(wave[:n])
    return torch.log(mel(x).clamp_min(cfg.log_floor))[:, : cfg.frames].T


def bench_features(data: str | Path, out: str | Path, workers: int | None = None, vocab: str = "seed12",
                   rounds: int = 3) -> dict:
    """Clips/s of the feature job (fresh store) vs the per-clip loop on the same clips.

    Both sides are timed warm: imports are loaded and every WAV under `data` is read once before either
    clock starts (else whichever runs first pays the disk for both). They run in `rounds` interleaved
    rounds, job then loop, and the ratio is of the medians.
    """
    import shutil
    import tempfile

    from kws_hpc.config import DataConfig
    from kws_hpc.features.build import build_store
    from kws_hpc.features.store import open_store

    import torchaudio  # noqa: F401  (imports are paid before either clock starts)

    if rounds < 1:
        from kws_hpc.errors import KwsError

        raise KwsError(f"--rounds {rounds} must be >= 1")
    for wav in Path(data).rglob("*.wav"):  # into the page cache, for both sides alike
        wav.read_bytes()
    job_s, loop_s = [], []
    for _ in range(rounds):
        scratch = Path(tempfile.mkdtemp(prefix="kws-bench-", dir=out))
        try:
            t0 = time.perf_counter()
            store = build_store(data, DataConfig(vocab=vocab), out=scratch, workers=workers, progress=False,
                                log=lambda m: None)
            job_s.append(time.perf_counter() - t0)
            info = open_store(store)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        n = sum(info.summary["counts"][s]["total"] for s in ("train", "val", "test"))
        paths = [p for p, _ in _clip_paths(Path(data), info.labels, 0)]
        t0 = time.perf_counter()
        per_clip_features(paths)
        loop_s.append(time.perf_counter() - t0)
    job, loop = float(np.median(job_s)), float(np.median(loop_s))
    return {"benchmark": "features", "clips": n, "feature_job_s": round(job, 2),
            "feature_job_clips_per_s": round(n / job, 1), "per_clip_loop_clips": len(paths),
            "per_clip_loop_s": round(loop, 2), "per_clip_clips_per_s": round(len(paths) / loop, 1),
            "speedup": round((n / job) / (len(paths) / loop), 2), "workers": workers, "rounds": rounds,
            "feature_job_s_each": [round(t, 2) for t in job_s], "per_clip_loop_s_each": [round(t, 2) for t in loop_s]}


class WavDataset:
    """The reference pipeline's Dataset: decode the WAV and compute its log-mel on every access."""

    def __init__(self, items: list[tuple[Path, int]], cfg: FeatureConfig = FeatureConfig()):
        self.items, self.cfg = items, cfg
        self.mel = None

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if self.mel is None:  # built lazily inside each DataLoader worker
            self.mel = _baseline_mel(self.cfg)
        path, label = self.items[i]
        return _clip_log_mel(path, self.mel, self.cfg), label


def _epoch(model, batches, opt, device) -> int:
    import torch
    import torch.nn.functional as F

    model.train()
    seen = 0
    for xb, yb in batches:
        xb, yb = xb.to(device), yb.to(device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += len(yb)
    return seen


def bench_train(store: str | Path, data: str | Path, cells=("gru", "lstm"), epochs: int = 2,
                device: str = "cpu", workers: int = 2) -> list[dict]:
    """Training clips/s per epoch: in-memory store batches vs the WAV Dataset + DataLoader, same model."""
    import torch

    from kws_hpc.train.models import build_model
    from kws_hpc.runtime import get_device
    from kws_hpc.features.store import load_split, open_store

    info = open_store(store)
    train = load_split(store, "train")
    dev = get_device(device)
    x = torch.from_numpy(train.features).to(dev)
    y = torch.from_numpy(train.labels).to(dev)
    originals = [p for p, a in zip(train.paths, train.augmented) if a == 0 and "#" not in p]
    labels = {p: int(lab) for p, lab in zip(train.paths, train.labels)}
    items = [(Path(data) / p, labels[p]) for p in originals]
    missing = [str(p) for p, _ in items if not p.is_file()]
    if missing:
        from kws_hpc.errors import KwsError

        raise KwsError(f"{len(missing)} of the store's {len(items)} training clips are not under {data} (first: "
                       f"{missing[0]}); give --data the folder the store was built from")
    bs = TrainConfig().batch_size
    loader = torch.utils.data.DataLoader(WavDataset(items, info.feature_config), batch_size=bs, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    rows = []
    for cell in cells:
        for pipeline in ("store", "wav_dataloader"):
            torch.manual_seed(0)
            model = build_model(ModelConfig(cell=cell), info.feature_config.n_mels, len(info.labels)).to(dev)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
            times, seen = [], 0
            for _ in range(epochs):
                t0 = time.perf_counter()
                if pipeline == "store":
                    perm = torch.randperm(len(y), device=dev)
                    seen = _epoch(model, ((x[perm[i:i + bs]], y[perm[i:i + bs]]) for i in range(0, len(y), bs)),
                                  opt, dev)
                else:
                    seen = _epoch(model, loader, opt, dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            rows.append({"benchmark": "train", "cell": cell, "pipeline": pipeline, "device": str(dev),
                         "clips_per_epoch": seen, "epoch_s": [round(t, 3) for t in times],
                         "clips_per_s": round(seen / float(np.median(times)), 1)})
        store, wav = rows[-2], rows[-1]
        store["speedup"] = round(store["clips_per_s"] / wav["clips_per_s"], 2)  # vs the WAV pipeline
    return rows


def bench_infer(model_file: str | Path, windows: int = 500) -> dict:
    """Latency per 1-s window (log-mel + exported model) on one CPU thread: p50 and p99."""
    import torch

    from kws_hpc.features.logmel import log_mel
    from kws_hpc.deploy.onnx_model import load_exported

    torch.set_num_threads(1)
    exported = load_exported(model_file, threads=1)
    fc = exported.feature_config
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((windows, fc.clip_samples))).astype(np.float32)
    model_ms, total_ms = [], []
    for i in range(-20, windows):  # the first 20 warm up
        t0 = time.perf_counter()
        feats = log_mel(waves[i % windows][None], fc)
        t1 = time.perf_counter()
        exported.scorer.window(feats)
        t2 = time.perf_counter()
        if i >= 0:
            model_ms.append((t2 - t1) * 1e3)
            total_ms.append((t2 - t0) * 1e3)
    pct = lambda xs, q: round(float(np.percentile(xs, q)), 3)  # noqa: E731
    return {"benchmark": "inference", "model": str(model_file), "windows": windows, "threads": 1,
            "model_ms_p50": pct(model_ms, 50), "model_ms_p99": pct(model_ms, 99),
            "window_ms_p50": pct(total_ms, 50), "window_ms_p99": pct(total_ms, 99),
            "speedup": round(1e3 * exported.detector.hop_s / pct(total_ms, 99), 1)}  # vs the hop's budget


def bench_sweep(store: str | Path, out: str | Path, trials: int = 8, epochs: int = 2,
                space: str = "bench") -> list[dict]:
    """Trials per hour of one study with 1 and with 2 local submitit workers (fresh storage each). The
    `bench` space gives every trial the same work (the default model, only the weight decay drawn, no pruning)."""
    import shutil

    from kws_hpc.launch.executors import JobOptions
    from kws_hpc.launch.storage import storage_url
    from kws_hpc.sweep import SweepSpec, load_space, run_sweep

    rows = []
    for workers in (1, 2):
        runs = Path(out).resolve() / f"sweep-{workers}w"
        shutil.rmtree(runs, ignore_errors=True)
        spec = SweepSpec(store=str(Path(store).resolve()), model="gru", space=load_space(space, epochs),
                         out=str(runs), trials=trials, workers=workers, device="cpu")
        t0 = time.perf_counter()
        run_sweep(storage_url(None, runs), {"bench-sweep": spec}, workers,
                  JobOptions(executor="local", log_dir=str(runs / "jobs"), name="kws-bench-sweep"),
                  log=lambda m: None)
        seconds = time.perf_counter() - t0
        rows.append({"benchmark": "sweep", "workers": workers, "trials": trials, "epochs": epochs,
                     "seconds": round(seconds, 1), "trials_per_hour": round(trials * 3600 / seconds, 1)})
    rows[1]["speedup"] = round(rows[1]["trials_per_hour"] / rows[0]["trials_per_hour"], 2)
    return rows


def summary_table(rows: list[dict]) -> str:
    """One markdown table of every benchmark row: the figure, what it is compared with, the ratio."""
    lines = ["| benchmark | figure | compared with | ratio |", "|---|---|---|---|"]
    for r in rows:
        b = r["benchmark"]
        if b == "features":
            fig = f"feature job {r['feature_job_clips_per_s']:,.0f} clips/s ({r['workers'] or 'all'} workers)"
            base = f"per-clip loop {r['per_clip_clips_per_s']:,.0f} clips/s"
        elif b == "train" and r["pipeline"] == "store":
            fig = f"{r['cell']} store batches {r['clips_per_s']:,.0f} clips/s on {r['device']}"
            base = "WAV Dataset + DataLoader, same model"
        elif b == "train":
            continue
        elif b == "inference":
            fig = f"p99 {r['window_ms_p99']:.2f} ms per 1-s window (log-mel + model, 1 thread)"
            base = "the 100-ms hop it must fit in"
        elif b == "sweep" and r["workers"] == 2:
            fig = f"{r['trials_per_hour']:,.0f} trials/hour with 2 local workers"
            base = "1 worker"
        else:
            continue
        lines.append(f"| {b} | {fig} | {base} | {r.get('speedup', '-')}x |")
    return "\n".join(lines)
