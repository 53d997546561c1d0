"""`kws-hpc demo`: the whole pipeline on the built-in corpus."""

from __future__ import annotations


def register(sub) -> None:
    from ..demo import DemoConfig

    d = DemoConfig()
    p = sub.add_parser("demo", help="run every stage on the built-in synthetic corpus",
                       description="corpus -> features -> GRU and LSTM sweeps -> best retrained -> report -> "
                                   "export -> live over a generated stream. Re-running reuses finished work.")
    p.add_argument("--out", default="demo_out", help="folder for everything (default: demo_out)")
    p.add_argument("--speakers", type=int, default=d.speakers, help=f"synthetic speakers (default: {d.speakers})")
    p.add_argument("--trials", type=int, default=d.trials, help=f"sweep trials per family (default: {d.trials})")
    p.add_argument("--sweep-epochs", type=int, default=d.sweep_epochs,
                   help=f"epochs per sweep trial (default: {d.sweep_epochs})")
    p.add_argument("--retrain-epochs", type=int, default=d.retrain_epochs,
                   help=f"epochs of the final retrain (default: {d.retrain_epochs})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoConfig, run_demo

    run_demo(args.out, DemoConfig(speakers=args.speakers, trials=args.trials, sweep_epochs=args.sweep_epochs,
                                  retrain_epochs=args.retrain_epochs))
    return 0
