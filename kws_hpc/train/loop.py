"""One training loop for every model: fit, early stopping, best + last checkpoints, resume, result.

Each split is read from the store once into one tensor (onto the GPU when it fits) and batched by index
with a seeded permutation per epoch; augmentation runs on the batch where it lives, written so that on a GPU
no batch waits for the host. A run lives in `OUT/<run signature>/` (see docs/formats.md); a finished run
returns its folder, an unfinished one resumes from last.pt with every random stream restored, so a
resumed deterministic CPU run equals the uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from kws_hpc.train.augment import add_background, backgrounds_warning, noise_pool, stream_windows, warp
from kws_hpc.config import SILENCE, UNKNOWN, RunConfig, TrainConfig, check_config, to_dict
from kws_hpc.configfile import run_recipe
from kws_hpc.errors import KwsError
from kws_hpc.progress import bar as progress_bar
from kws_hpc.train.evaluate import inference_ms, load_checkpoint, metrics, predict
from kws_hpc.train.models import build_model, count_params, spec_augment
from kws_hpc.train.negatives import load_hard_negatives
from kws_hpc.runtime import as_run, get_device, rng_state, set_rng_state, set_seed, stop_requested
from kws_hpc.features.store import StoreInfo, load_noise, load_split, open_store
from kws_hpc.train.epochlog import EpochLog
from kws_hpc.train.rundir import RunDir
from kws_hpc.train.schedule import Progress, batches as _batches, make_scheduler

FORMAT_VERSION = 1


def run_dir(cfg: RunConfig, out: str | Path = "runs", info: Optional[StoreInfo] = None) -> Path:
    """The folder a run config trains into: OUT/<run signature>/."""
    info = info or open_store(cfg.store)
    return Path(out).expanduser() / as_run(cfg).signature(info.signature)


def _load(info: StoreInfo, device: torch.device, log, hard_negatives: str = "") -> dict:
    """Each split as (features, labels) tensors: on the accelerator when it fits in half its free memory.
    `hard_negatives` (a `kws-hpc mine` file) adds its windows to the training split as `_unknown_`."""
    splits = {s: load_split(info.path, s, expect_signature=info.signature) for s in ("train", "val", "test")}
    if len(splits["train"].labels) < 2 or len(splits["val"].labels) < 1:
        counts = {s: len(d.labels) for s, d in splits.items()}
        raise KwsError(f"store {info.path} has too few clips to train on ({counts}); build it from more data")
    tensors = {s: (torch.from_numpy(d.features), torch.from_numpy(d.labels)) for s, d in splits.items()}
    if hard_negatives:
        tensors["train"] = _with_hard_negatives(*tensors["train"], info, hard_negatives, log)
    size = sum(x.numel() * 4 for x, _ in tensors.values())
    home = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        home = device if size < free // 2 else home
    elif device.type == "mps":
        home = device
    if home.type != device.type:
        log(f"features ({size / 2**20:.0f} MiB) stay in host memory; batches are copied to {device}")
        tensors = {s: (x.pin_memory(), y.pin_memory()) for s, (x, y) in tensors.items()}
    tensors = {s: (x.to(home), y.to(home)) for s, (x, y) in tensors.items()}
    tensors["test_paths"] = splits["test"].paths
    noise = load_noise(info.path)
    tensors["noise"] = torch.from_numpy(noise).to(home) if noise is not None and len(noise) else None
    return tensors


def _with_hard_negatives(x: torch.Tensor, y: torch.Tensor, info: StoreInfo, path: str, log):
    if UNKNOWN not in info.labels:
        raise KwsError(f"--hard-negatives needs a store with {UNKNOWN} (features --extras); {info.path} has none")
    fc = info.feature_config
    feats = torch.from_numpy(load_hard_negatives(path, info.signature, fc.frames, fc.n_mels)).to(x.dtype)
    log(f"{len(feats)} hard negatives from {path} join the {len(y)} training rows as {UNKNOWN}")
    unknown = torch.full((len(feats),), list(info.labels).index(UNKNOWN), dtype=y.dtype)
    return torch.cat([x, feats]), torch.cat([y, unknown])


class _Trainer:
    """The objects of one run: model, optimiser, scheduler, scaler, permutation generator, progress."""

    def __init__(self, cfg: RunConfig, info: StoreInfo, device: torch.device, amp: bool, n_train: int):
        tc = cfg.train
        self.cfg, self.info, self.device, self.amp = cfg, info, device, amp
        self.bf16 = cfg.train.bf16  # as_run has kept it only where the CPU computes bfloat16
        self.cast = torch.bfloat16 if self.bf16 else torch.float16
        self.model = build_model(cfg.model, info.feature_config.n_mels, len(info.labels)).to(device)
        self.model.set_normalization(info.mean, info.std)
        fused = {"fused": True} if device.type == "cuda" else {}  # one kernel; with AMP, no host sync a step
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, **fused)
        self.batches = _batches(n_train, tc.batch_size)
        self.sched = make_scheduler(self.opt, tc, len(self.batches))
        self.scaler = torch.amp.GradScaler("cuda") if amp else None
        self.perm_gen = torch.Generator().manual_seed(tc.seed)
        self.progress = Progress()
        labels = list(info.labels)
        self.silence = labels.index(SILENCE) if SILENCE in labels else None
        self.unknown = labels.index(UNKNOWN) if UNKNOWN in labels else None
        self.log_floor = math.log(info.feature_config.log_floor)
        self.pool: Optional[torch.Tensor] = None  # backgrounds: the store's noise, else its `_silence_` clips
        self.pool_taken = False

    def checkpoint(self, run_signature: str) -> dict:
        p = self.progress
        return {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": p.epoch, "best_val_acc": p.best_val_acc, "best_val_loss": p.best_val_loss,
            "best_epoch": p.best_epoch, "epochs_since_best": p.epochs_since_best, "history": p.history,
            "rng": rng_state(self.perm_gen), "labels": list(self.info.labels),
            "feature_config": to_dict(self.info.feature_config), "model_config": to_dict(self.cfg.model),
            "data_config": to_dict(self.info.data_config),
            "train_config": to_dict(self.cfg.train), "store_signature": self.info.signature,
            "run_signature": run_signature, "format_version": FORMAT_VERSION,
        }

    def restore(self, path: Path, run_signature: str) -> None:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)  # RNG states must be CPU tensors
        except Exception as e:  # a checkpoint cut short by a full disk or a copy
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise KwsError(f"{path} is unreadable ({first[:120]}); delete it to start the run again "
                           "(or restore it from a backup), then re-run the same command") from None
        if ck.get("run_signature") != run_signature:
            raise KwsError(f"{path} belongs to run {ck.get('run_signature')}, not {run_signature}; "
                           "delete it or train into another --out")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        if self.sched is not None and ck["scheduler"] is not None:
            self.sched.load_state_dict(ck["scheduler"])
        if self.scaler is not None and ck["scaler"] is not None:
            self.scaler.load_state_dict(ck["scaler"])
        self.progress = Progress(**{k: ck[k] for k in asdict(Progress()) if k in ck})
        set_rng_state(ck["rng"], self.perm_gen)

    def fit_epoch(self, x: torch.Tensor, y: torch.Tensor, noise: Optional[torch.Tensor], bar
                  ) -> tuple[float, float]:
        """One pass over the training split; returns (mean loss, accuracy)."""
        tc, model = self.cfg.train, self.model
        model.train()
        perm = torch.randperm(len(y), generator=self.perm_gen).to(x.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        for lo, hi in self.batches:
            idx = perm[lo:hi]
            xb = x[idx].to(self.device, non_blocking=True)
            yb = y[idx].to(self.device, non_blocking=True)
            xb, yb = self.augment(xb, yb, x, y, noise)
            if tc.time_masks or tc.freq_masks:  # masked spans read as zero after normalisation
                xb = spec_augment(xb, tc.time_masks, tc.time_mask_width, tc.freq_masks, tc.freq_mask_width,
                                  fill=model.feat_mean)
            with torch.autocast(self.device.type, dtype=self.cast, enabled=self.amp or self.bf16):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=tc.label_smoothing)
            self._step(loss)
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(idx)
            if bar is not None:
                bar.update(1)
        return loss_sum.item() / max(1, seen), correct.item() / max(1, seen)

    def take_backgrounds(self, x: torch.Tensor, y: torch.Tensor, noise: Optional[torch.Tensor]) -> str:
        """Choose what stream windows and noise augmentation mix in: the store's noise windows, else its
        `_silence_` clips that hold sound; returns which (`noise`, `silence` or `none`)."""
        self.pool = noise if noise is not None else noise_pool(x, y, self.silence, self.log_floor)
        self.pool_taken = True
        return "noise" if noise is not None else "silence" if self.pool is not None else "none"

    def augment(self, xb, yb, x, y, noise: Optional[torch.Tensor]):
        """The training batch as the model sees it: other voices, stream windows, then background noise at
        an SNR (SpecAugment follows). Backgrounds: the store's noise windows, else its `_silence_` clips."""
        tc = self.cfg.train
        if not self.pool_taken:
            self.pool = noise if noise is not None else noise_pool(x, y, self.silence, self.log_floor)
            self.pool_taken = True
        if tc.warp_aug > 0:
            fc = self.info.feature_config
            xb = warp(xb, tc.warp_aug, fc.f_min, fc.f_max)
        if tc.stream_aug > 0:
            xb, yb = stream_windows(xb, yb, tc.stream_aug, self.pool, self.log_floor, self.silence,
                                    self.unknown, tc.partial_words)
        if tc.noise_aug > 0:
            xb = add_background(xb, self.pool, tc.noise_aug, tc.noise_snr_db, self.log_floor)
        return xb, yb

    def _step(self, loss: torch.Tensor) -> None:
        tc = self.cfg.train
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        if self.sched is not None and tc.schedule in ("cosine", "onecycle"):
            self.sched.step()

    def validate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        logits, _ = predict(self.model, x, self.device, self.amp)
        return F.cross_entropy(logits, y.cpu()).item(), (logits.argmax(1) == y.cpu()).float().mean().item()


def train(cfg: RunConfig, out: str | Path = "runs", on_epoch: Callable[[int, dict], None] | None = None,
          log: Callable[[str], None] = print, progress: bool = True, resume: bool = False,
          tensorboard: Optional[str] = None) -> Path:
    """Train (or resume, or find finished) the run `cfg` under `out`; returns the run folder.

    `on_epoch(epoch, history_entry)` is called after each epoch once last.pt is saved; an exception
    it raises (optuna.TrialPruned, say) propagates and the run can be resumed later. `resume=True`
    insists on an existing run (KwsError when there is none); without it a run resumes when it can.
    Every epoch goes to metrics.csv; `tensorboard` (a group name: `train`, a study's name) also writes
    TensorBoard event files to OUT/tensorboard/<group>/<run signature>/.
    """
    check_config(cfg)
    cfg, info = as_run(cfg), open_store(cfg.store)
    run = RunDir(run_dir(cfg, out, info))
    if run.done:
        log(f"run {run.signature} is done: {run.path}")
        return run.path
    if resume and not run.last.is_file():
        raise KwsError(f"nothing to resume: {run.path} has no last.pt; drop --resume to start the run")
    with run.lock(log):  # a second trainer of the same run waits, then finds it done or resumes it
        if run.done:
            log(f"run {run.signature} is done: {run.path}")
            return run.path
        return _train(cfg, info, run, on_epoch, log, progress, tensorboard)


def _train(cfg: RunConfig, info: StoreInfo, run: RunDir, on_epoch, log, progress: bool,
           tensorboard: Optional[str] = None) -> Path:
    """Start or resume the run in `run` (its lock held) and score it; returns its folder."""
    sig = run.signature
    device = get_device(cfg.train.device)
    amp = cfg.train.amp and device.type == "cuda"
    if cfg.train.amp and not amp:
        log(f"warning: --amp needs CUDA; training in float32 on {device}")
    set_seed(cfg.train.seed, cfg.train.deterministic, device)
    data = _load(info, device, log, cfg.train.hard_negatives)
    trainer = _Trainer(cfg, info, device, amp, len(data["train"][1]))
    backgrounds = trainer.take_backgrounds(*data["train"], data["noise"])
    if (warning := backgrounds_warning(cfg.train.noise_aug, backgrounds, info.signature)) is not None:
        log(warning)
    run.path.mkdir(parents=True, exist_ok=True)
    if run.last.is_file():
        trainer.restore(run.last, sig)
        log(f"resuming run {sig} after epoch {trainer.progress.epoch} ({torch.get_num_threads()} CPU thread(s))")
    else:
        run.write_config({**_config_json(cfg, info, sig), "backgrounds": backgrounds})
        run.write_recipe(run_recipe(cfg, run.path.parent.resolve()))
        cast = " (bfloat16 autocast)" if trainer.bf16 else ""
        log(f"run {sig}: {cfg.model.cell} on {device}{cast}, {count_params(trainer.model):,} parameters, "
            f"{len(data['train'][1])} training clips, {torch.get_num_threads()} CPU thread(s)")
    board = run.tensorboard_dir(tensorboard) if tensorboard else None
    if board is not None:
        log(f"tensorboard: {board} (watch with: tensorboard --logdir {run.path.parent})")
    epochs = EpochLog(run.metrics, board, trainer.progress.epoch + 1,
                      text={"config": "    " + json.dumps(_config_json(cfg, info, sig), indent=1).replace(
                          "\n", "\n    ")})
    try:
        stopped = _fit(trainer, data, run, on_epoch, log, progress, epochs)
    finally:
        epochs.close()
    result = _finish(trainer, data, run, stopped, backgrounds)
    log(f"test accuracy {result['test_accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
        f"best epoch {result['best_epoch']}/{result['epochs_run']}  run {run.path}")
    return run.path


def _config_json(cfg: RunConfig, info: StoreInfo, sig: str) -> dict:
    return {"store": str(Path(cfg.store).expanduser().resolve()), "store_signature": info.signature,
            "run_signature": sig, "model": to_dict(cfg.model), "train": to_dict(cfg.train),
            "labels": list(info.labels), "feature_config": to_dict(info.feature_config)}


def _fit(tr: _Trainer, data: dict, run: RunDir, on_epoch, log, progress: bool, epochs: EpochLog) -> str:
    """Epochs until max epochs or early stopping; returns why it stopped."""
    tc, p = tr.cfg.train, tr.progress
    while p.epoch < tc.epochs and p.epochs_since_best < tc.patience:
        epoch, t0 = p.epoch + 1, time.perf_counter()
        with progress_bar(len(tr.batches), f"epoch {epoch}", "batch", progress, leave=False) as bar:
            train_loss, train_acc = tr.fit_epoch(*data["train"], data["noise"], bar)
        val_loss, val_acc = tr.validate(*data["val"])
        if tr.sched is not None and tc.schedule == "plateau":
            tr.sched.step(val_acc)
        entry = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                 "val_acc": val_acc, "lr": tr.opt.param_groups[0]["lr"],
                 "seconds": round(time.perf_counter() - t0, 4)}
        p.history.append(entry)
        if p.update(val_acc, val_loss, epoch):
            run.save_checkpoint(tr.checkpoint(run.signature), best=True)
        run.save_checkpoint(tr.checkpoint(run.signature))
        run.write_history(p.history)
        epochs.epoch(p.history)
        log(f"epoch {epoch:3d}/{tc.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"val loss {val_loss:.4f} acc {val_acc:.4f}  lr {entry['lr']:.2e}  {entry['seconds']:.1f}s"
            + ("  *" if p.best_epoch == epoch else ""))
        if on_epoch is not None:
            on_epoch(epoch, dict(entry))
        if stop_requested():  # a job's pre-emption whose own exit was lost: leave now, last.pt is saved
            raise SystemExit(-1)
    return "early_stopping" if p.epochs_since_best >= tc.patience else "max_epochs"


def _finish(tr: _Trainer, data: dict, run: RunDir, stopped: str, backgrounds: str) -> dict:
    """Score the best checkpoint on the test split; write predictions.npz, then result.json."""
    model, ckpt = load_checkpoint(run.best, map_location=tr.device)
    x, y = data["test"]
    logits, embeds = predict(model, x, tr.device, tr.amp)
    probs = torch.softmax(logits, 1).numpy()
    y_true, y_pred = y.cpu().numpy(), logits.argmax(1).numpy()
    run.write_predictions(y_true=y_true, y_pred=y_pred, probs=probs, embeddings=embeds.numpy(),
                          paths=np.asarray(data["test_paths"], dtype=str))
    m = metrics(y_true, y_pred, list(tr.info.labels))
    hist = tr.progress.history
    result = {
        "test_accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "per_class": m["per_class"],
        "confusion": m["confusion"], "labels": m["labels"], "params": count_params(model),
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in hist])) if hist else 0.0,
        "best_epoch": ckpt["best_epoch"], "epochs_run": tr.progress.epoch,
        "best_val_acc": ckpt["best_val_acc"],
        "inference_ms_per_clip": inference_ms(model, x), "device": str(tr.device),
        "threads": torch.get_num_threads(),
        "run_signature": run.signature, "store_signature": tr.info.signature,
        "model": to_dict(tr.cfg.model), "train": to_dict(tr.cfg.train), "stopped": stopped,
        "backgrounds": backgrounds,
    }
    run.write_result(result)
    return result
