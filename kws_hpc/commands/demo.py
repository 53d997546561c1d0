"""`kws-hpc demo`: the whole pipeline on the built-in corpus."""

from __future__ import annotations

from kws_hpc.options import add_config_args, config_from_args


def register(sub) -> None:
    from kws_hpc.demo import DemoConfig

    p = sub.add_parser("demo", help="run every stage on the built-in synthetic corpus",
                       description="corpus -> features -> GRU and LSTM sweeps -> best retrained -> report -> "
                                   "export -> live over a generated stream. Re-running reuses finished work.")
    p.add_argument("--out", default="demo_out", help="folder for everything (default: demo_out)")
    add_config_args(p, DemoConfig, include=("speakers", "trials", "sweep_epochs", "retrain_epochs"))
    p.set_defaults(func=run)


def run(args) -> int:
    from kws_hpc.demo import DemoConfig, run_demo

    run_demo(args.out, config_from_args(DemoConfig, args))
    return 0
