"""Measurement: benchmarks against the per-clip pipelines this tool replaces (`kws-hpc bench
features|train|infer|sweep|all`) and ablations, recipe variants x seeds x stores (`kws-hpc bench
ablate`). Both call the library's functions, never the command line."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "bench_features": "bench", "bench_train": "bench", "bench_infer": "bench", "bench_sweep": "bench",
    "summary_table": "bench", "ablate": "ablation", "parse_variant": "ablation", "variant_recipe": "ablation",
})
