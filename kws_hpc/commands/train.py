"""`kws-hpc train`: train a GRU or LSTM on a feature store (or resume it, or find it finished)."""

from __future__ import annotations

import argparse

from ..config import ModelConfig, RunConfig, TrainConfig
from . import option


def register(sub) -> None:
    p = sub.add_parser("train", help="train a GRU or LSTM keyword spotter on a feature store",
                       description="Train into OUT/<run signature>/ (config.json, history.json, best.pt, "
                                   "last.pt, result.json, predictions.npz). The same options again resume an "
                                   "unfinished run or report a finished one. Prints the run folder last.")
    p.add_argument("--store", required=True, help="feature store folder (printed by kws-hpc features)")
    add_run_options(p)
    p.add_argument("--out", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--resume", action="store_true", help="insist on resuming an existing run (error if none)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over batches")
    p.set_defaults(func=run)


def add_run_options(p) -> None:
    """Model and training options (shared with anything that launches runs)."""
    m, t = ModelConfig(), TrainConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=["gru", "lstm"], default=m.cell, help=f"RNN cell (default: {m.cell})")
    option(g, "--hidden", int, m.hidden, "hidden units")
    option(g, "--layers", int, m.layers, "RNN layers")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=m.bidirectional,
                   help=f"bidirectional RNN (default: {m.bidirectional})")
    option(g, "--dropout", float, m.dropout, "dropout between RNN layers and before the head")
    g.add_argument("--head", choices=["last", "mean", "attention"], default=m.head,
                   help=f"how the sequence is pooled (default: {m.head})")
    option(g, "--conv-channels", int, m.conv_channels, "CRNN: conv front-end channels, 0 = none")
    option(g, "--conv-layers", int, m.conv_layers, "CRNN: conv layers")
    g.add_argument("--clip-norm", action=argparse.BooleanOptionalAction, default=m.clip_norm,
                   help=f"subtract each clip's mean log-mel (level invariance; no --streaming) "
                        f"(default: {m.clip_norm})")
    g = p.add_argument_group("training")
    option(g, "--epochs", int, t.epochs, "maximum epochs")
    option(g, "--batch-size", int, t.batch_size, "clips per batch")
    option(g, "--lr", float, t.lr, "Adam learning rate")
    option(g, "--weight-decay", float, t.weight_decay, "Adam weight decay")
    option(g, "--grad-clip", float, t.grad_clip, "gradient norm clip, 0 = off")
    option(g, "--patience", int, t.patience, "early stopping: epochs without a better val accuracy")
    option(g, "--label-smoothing", float, t.label_smoothing, "cross-entropy label smoothing")
    g.add_argument("--schedule", choices=["none", "cosine", "onecycle", "plateau"], default=t.schedule,
                   help=f"learning-rate schedule (default: {t.schedule})")
    option(g, "--time-masks", int, t.time_masks, "SpecAugment time masks per clip")
    option(g, "--time-mask-width", int, t.time_mask_width, "widest time mask, frames")
    option(g, "--freq-masks", int, t.freq_masks, "SpecAugment mel masks per clip")
    option(g, "--freq-mask-width", int, t.freq_mask_width, "widest mel mask, bins")
    option(g, "--stream-aug", float, t.stream_aug,
           "share of clips moved over a background so they look like live windows, 0 = off")
    option(g, "--partial-words", float, t.partial_words,
           "share of those cut to 10-40 %% of their word and labelled _unknown_ (needs the class)")
    option(g, "--seed", int, t.seed, "seed of every random stream")
    g.add_argument("--deterministic", action="store_true",
                   help="strict deterministic kernels (bit-identical on CPU)")
    g.add_argument("--device", default=t.device, help="auto | cpu | cuda | mps (default: auto)")
    g.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")


def run_config(args) -> RunConfig:
    """The RunConfig the parsed options describe."""
    model = ModelConfig(cell=args.model, hidden=args.hidden, layers=args.layers,
                        bidirectional=args.bidirectional, dropout=args.dropout, head=args.head,
                        conv_channels=args.conv_channels, conv_layers=args.conv_layers,
                        clip_norm=args.clip_norm)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, grad_clip=args.grad_clip, patience=args.patience,
                        label_smoothing=args.label_smoothing, schedule=args.schedule,
                        time_masks=args.time_masks, time_mask_width=args.time_mask_width,
                        freq_masks=args.freq_masks, freq_mask_width=args.freq_mask_width,
                        stream_aug=args.stream_aug, partial_words=args.partial_words, seed=args.seed,
                        deterministic=args.deterministic, device=args.device, amp=args.amp)
    return RunConfig(store=args.store, model=model, train=train)


def run(args) -> int:
    import torch

    from ..errors import KwsError
    from ..train import train

    if args.threads is not None:
        if args.threads < 1:
            raise KwsError(f"--threads {args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
    folder = train(run_config(args), out=args.out, progress=not args.no_progress, resume=args.resume)
    print(folder)
    return 0
