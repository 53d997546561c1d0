"""Stage 6, report: run folders and Optuna studies gathered into one HTML page, markdown, CSV and JSON
(runs, studies, the paired comparison, figures, sections, the page itself)."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {"make_report": "build", "paired_test": "build"})
