"""`kws-hpc demo`: the whole pipeline on the built-in corpus."""

from __future__ import annotations

from . import option


def register(sub) -> None:
    from ..demo import DemoConfig

    d = DemoConfig()
    p = sub.add_parser("demo", help="run every stage on the built-in synthetic corpus",
                       description="corpus -> features -> GRU and LSTM sweeps -> best retrained -> report -> "
                                   "export -> live over a generated stream. Re-running reuses finished work.")
    p.add_argument("--out", default="demo_out", help="folder for everything (default: demo_out)")
    option(p, "--speakers", int, d.speakers, "synthetic speakers")
    option(p, "--trials", int, d.trials, "sweep trials per family")
    option(p, "--sweep-epochs", int, d.sweep_epochs, "epochs per sweep trial")
    option(p, "--retrain-epochs", int, d.retrain_epochs, "epochs of the final retrain")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoConfig, run_demo

    run_demo(args.out, DemoConfig(speakers=args.speakers, trials=args.trials, sweep_epochs=args.sweep_epochs,
                                  retrain_epochs=args.retrain_epochs))
    return 0
