"""One training step of the default model, float32 against bfloat16 autocast, on the CPU.

Usage:
    python bfstep.py [--cell gru|lstm] [--threads 1] [--rounds 5] [--steps 10]

Builds the default model (`ModelConfig(cell=CELL)`, 40 mels, 14 classes) and times a training step (forward
under `torch.autocast("cpu", dtype=torch.bfloat16)` or not, cross-entropy in float32, backward, Adam) on one
random batch of 64 clips of 100 frames: 3 warm-up steps of each, then ROUNDS interleaved rounds of STEPS
steps per precision; prints the median ms per step of each and their ratio. Meaningful only on a CPU that
computes bfloat16 itself (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo); elsewhere autocast is emulated.
"""

from __future__ import annotations

import argparse
import statistics as st
import time

import torch
import torch.nn.functional as F

from kws_hpc.config import ModelConfig
from kws_hpc.runtime import native_bf16
from kws_hpc.train.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=args.cell), 40, 14)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(64, 100, 40), torch.randint(0, 14, (64,))

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for bf16 in (False, True):
        for _ in range(3):
            step(bf16)
    ms: dict = {False: [], True: []}
    for _ in range(args.rounds):
        for bf16 in (False, True):
            t = time.perf_counter()
            for _ in range(args.steps):
                step(bf16)
            ms[bf16].append((time.perf_counter() - t) * 1e3 / args.steps)
    a, b = st.median(ms[False]), st.median(ms[True])
    print(f"{args.cell}, {args.threads} thread(s), native bfloat16: {native_bf16()}: float32 {a:.1f} ms, "
          f"bfloat16 autocast {b:.1f} ms a step: {a / b:.2f}x")


if __name__ == "__main__":
    main()
