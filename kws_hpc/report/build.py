"""The report job: gather run folders and Optuna studies into one folder.

`make_report(runs, out)` writes `OUT/index.html` (self-contained, opens from disk), `OUT/report.md`,
`OUT/results.json`, `OUT/results.csv`, the figures in `OUT/figures/` and the live DET curves' cache
`OUT/det.json`; each file is written under a temporary name and renamed. Anything that cannot be shown
(no LSTM run, no studies, a run without predictions.npz, the corpus for the test streams, ...) is said
where it would have been.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Callable, Optional

from kws_hpc.report import figures as F
from kws_hpc.report import sections as S
from kws_hpc.errors import KwsError
from kws_hpc.features.store import SUMMARY, read_summary
from kws_hpc.io import write_text
from kws_hpc.train.rundir import best_runs
from kws_hpc.report.html import render_html, render_markdown
from kws_hpc.report.runs import Run, best_by_family, find_runs, group_runs, hparams, run_row
from kws_hpc.report.compare import mcnemar
from kws_hpc.report.det import BUDGETS, DET_MINUTES, det_context

MAX_FEATURED = 8  # per-model figures for at most this many runs (the best of each family and variant)


def paired_test(best: dict[str, Run]) -> dict:
    """McNemar between the best GRU and the best LSTM on the same test clips (aligned by path)."""
    if "gru" not in best or "lstm" not in best:
        have = ", ".join(f.upper() for f in best) or "none"
        return {"skipped": "it needs a complete GRU run and a complete LSTM run "
                           f"(complete families: {have})."}
    a, b = best["gru"], best["lstm"]
    base = {"a": a.name, "b": b.name, "a_run": a.signature, "b_run": b.signature}
    if a.store_signature != b.store_signature:
        return {**base, "skipped": f"{a.name} used store {a.store_signature} and {b.name} store "
                                   f"{b.store_signature}; their test sets differ, so they cannot be paired."}
    pa, pb = a.predictions(), b.predictions()
    if pa is None or pb is None:
        where = (a if pa is None else b).dir
        return {**base, "skipped": f"predictions.npz is missing or unreadable in {where}."}
    if list(a.result["labels"]) != list(b.result["labels"]):
        return {**base, "skipped": "the two runs have different label orders."}
    paths_a, paths_b = [str(p) for p in pa["paths"]], [str(p) for p in pb["paths"]]
    index_b = {p: i for i, p in enumerate(paths_b)}
    if len(index_b) != len(paths_b) or len(set(paths_a)) != len(paths_a) or set(paths_a) != set(paths_b):
        shared = len(set(paths_a) & set(paths_b))
        return {**base, "skipped": f"the test sets differ ({len(paths_a)} vs {len(paths_b)} clips, "
                                   f"{shared} shared)."}
    order = [index_b[p] for p in paths_a]
    yb, qb = pb["y_true"][order], pb["y_pred"][order]
    if (yb != pa["y_true"]).any():
        return {**base, "skipped": "the two runs disagree on the true labels of the same clips."}
    return {**base, "mcnemar": mcnemar(pa["y_pred"] == pa["y_true"], qb == yb)}


def featured_runs(runs: list[Run]) -> list[Run]:
    """Best run (by validation accuracy) of each family and variant, best families' runs first."""
    by_dir = {r.dir: r for r in runs}
    best = best_runs((r.folder for r in runs if r.complete),
                     key=lambda d: (by_dir[d.path].family, by_dir[d.path].variant))
    chosen = [by_dir[d.path] for d in best.values()]
    order = sorted(chosen, key=lambda r: (r.family, r.variant != "base", -(r.result.get("best_val_acc") or 0)))
    return order[:MAX_FEATURED]


def store_summaries(runs: list[Run], fig_dir: Path, rel) -> list[dict]:
    """summary.json of each store the complete runs used, with its split-count figure."""
    out, seen = [], set()
    for r in runs:
        if not r.complete or r.store_signature in seen:
            continue
        seen.add(r.store_signature)
        path = Path(r.config.get("store", ""))
        entry = {"signature": r.store_signature, "path": str(path)}
        summary = read_summary(path)
        if summary is None:
            out.append({**entry, "problem": f"{path / SUMMARY} is missing or unreadable "
                                            "(store moved or deleted?)"})
            continue
        if summary.get("signature") != r.store_signature:
            out.append({**entry, "problem": f"{path} now holds store {summary.get('signature')}"})
            continue
        fig = F.split_counts(summary, fig_dir / f"splits_{r.store_signature}.png")
        out.append({**entry, "summary": summary, "figure": rel(fig)})
    return out


def model_figures(featured: list[Run], fig_dir: Path, rel) -> dict:
    """Confusion, PCA and true-vs-predicted figures per featured run (a reason where one cannot be drawn)."""
    figs: dict = {"confusion": {}, "pca": {}, "true_vs_pred": {}}
    for r in featured:
        stem = f"{r.family}_{r.signature}"
        figs["confusion"][r.name] = rel(F.confusion(r, fig_dir / f"confusion_{stem}.png"))
        preds = r.predictions()
        if preds is None:
            why = f"predictions.npz is missing or unreadable in {r.dir}"
            figs["pca"][r.name] = figs["true_vs_pred"][r.name] = why
            continue
        if "embeddings" in preds and len(preds["y_true"]) >= 2:
            figs["pca"][r.name] = rel(F.pca(r, preds, fig_dir / f"pca_{stem}.png"))
        else:
            figs["pca"][r.name] = "predictions.npz has no embeddings or fewer than 2 test clips"
        figs["true_vs_pred"][r.name] = rel(F.true_vs_pred(r, preds, fig_dir / f"true_vs_pred_{stem}.png"))
    return figs


def load_studies(runs_dir: Path, storage: Optional[str]) -> tuple[list, str]:
    """Every study in the storage (default: the runs folder's journal), and a note when there are none."""
    from kws_hpc.report import studies as ST

    spec = storage or ST.default_storage(runs_dir)
    if spec is None:
        return [], (f"No Optuna studies: no storage given and no {runs_dir / ST.DEFAULT_JOURNAL}; "
                    "pass --storage with the sweeps' journal file or database URL.")
    studies = ST.load_studies(ST.open_storage(spec))
    return studies, ("" if studies else f"The storage {spec} holds no study yet.")


def study_summaries(studies: list, fig_dir: Path, rel) -> list[dict]:
    """Each study's summary with its figures (or why a figure is missing)."""
    from kws_hpc.report import studies as ST

    captions = {"history": "optimisation history", "importance": "parameter importances",
                "intermediate": "validation curves of the trials (intermediate values)"}
    out = []
    for i, study in enumerate(studies):
        summary = ST.summarize(study)
        stem = f"study{i}_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in study.study_name)
        found = ST.study_figures(study, fig_dir, stem, F.save)
        summary["figures"] = {f"{study.study_name}: {captions[k]}": (rel(v) if isinstance(v, Path) else v)
                              for k, v in found.items()}
        out.append(summary)
    return out


def make_report(runs, out=None, storage: Optional[str] = None, log: Callable[[str], None] = print,
                det_minutes: tuple = DET_MINUTES) -> Path:
    """Write the report of every run under `runs` (and every study in `storage`) into `out`.

    `out` defaults to `runs/report`; `storage` to `runs/studies.journal` when it exists. `det_minutes`:
    the keyword and the negative test stream the DET curves are measured on ((0, 0): none). Returns the
    path of index.html. A missing runs folder or one without run folders is a KwsError.
    """
    t0 = time.perf_counter()
    runs_dir = Path(runs).expanduser()
    if not runs_dir.is_dir():
        raise KwsError(f"runs folder {runs_dir} does not exist; train some runs first "
                       f"(kws-hpc train --out {runs_dir})")
    from kws_hpc.report.studies import trial_runs

    out = Path(out).expanduser() if out else runs_dir / "report"
    fig_dir = out / "figures"
    studies, studies_note = load_studies(runs_dir, storage)  # bad input fails before anything is written
    runs_ = find_runs(runs_dir, tuple(t for study in studies for t in trial_runs(study)))
    fig_dir.mkdir(parents=True, exist_ok=True)
    written: set = set()

    def rel(p: Path) -> Path:  # every figure passes here: the ones not passing are stale
        written.add(p.name)
        return p.relative_to(out)

    studies = study_summaries(studies, fig_dir, rel)
    ctx = context(runs_, runs_dir, fig_dir, rel)
    ctx.update(studies=studies, studies_note=studies_note, out=out,
               det=det_context(ctx["best"], out, det_minutes, log))
    if ctx["det"].get("models"):
        ctx["figures"]["det"] = {"miss rate vs false alarms per hour, test streams": rel(F.det_curves(
            ctx["det"]["models"], ctx["det"]["per_false_alarm"], BUDGETS, fig_dir / "det.png"))}
    sections = [S.overview(ctx), S.comparison(ctx), S.live_det(ctx), S.families(ctx),
                S.per_model(ctx, "curves", "Learning curves", "curves", "learning curves",
                            "Loss and accuracy per epoch of each model's best run."),
                S.per_model(ctx, "confusion", "Confusion matrices", "confusion", "confusion matrix",
                            "Rows are true classes; the row-normalised matrix shows recall on its diagonal."),
                S.per_class(ctx),
                S.per_model(ctx, "pca", "Penultimate features (PCA)", "pca", "PCA figure",
                            "Test clips projected on the first two principal components of the vector the "
                            "classifier reads, coloured by true class; black-edged crosses are "
                            "misclassified clips."),
                S.per_model(ctx, "true_vs_pred", "True vs predicted", "true-vs-pred",
                            "true-vs-predicted plot", "Each test clip at (true class, predicted class) with "
                            "jitter; off-diagonal points are errors."),
                S.splits(ctx), S.studies(ctx), S.all_runs(ctx)]
    title = "Keyword spotting: GRU vs LSTM"
    subtitle = f"Runs: {runs_dir.resolve()} · generated {time.strftime('%Y-%m-%d %H:%M:%S')}"
    write_text(out / "index.html", render_html(title, subtitle, sections))
    write_text(out / "report.md", render_markdown(title, subtitle, sections))
    write_outputs(out, ctx, runs_dir, storage)
    for stale in fig_dir.glob("*.png"):  # figures of runs no longer in the report
        if stale.name not in written:
            stale.unlink()
    log(f"report of {len(runs_)} run(s) and {len(studies)} study(ies) in "
        f"{time.perf_counter() - t0:.1f} s: {out}")
    return out / "index.html"


def context(runs: list[Run], runs_dir: Path, fig_dir: Path, rel) -> dict:
    """Everything the sections need: runs, groups, best runs, paired test, figures, what is missing."""
    complete = [r for r in runs if r.complete]
    best = best_by_family(runs)
    featured = featured_runs(runs)
    missing = [f"Run {r.signature} ({r.family}, {r.dir}) is {r.state_text()}."
               for r in runs if r.status == "incomplete"]
    pruned = [r for r in runs if r.pruned]
    if pruned:
        missing.append(f"{len(pruned)} run(s) were pruned by Optuna on purpose (listed under All runs); "
                       "they have no test results.")
    fams = {r.family for r in complete}
    for fam in ("gru", "lstm"):
        if fam not in fams:
            missing.append(f"No complete {fam.upper()} run: the GRU-vs-LSTM comparison shows what there is.")
    figures = model_figures(featured, fig_dir, rel)
    figures["curves"] = {}
    figures["compare"] = {}
    if featured:
        figures["curves"]["best run of each family and variant"] = rel(
            F.learning_curves(featured, fig_dir / "learning_curves.png"))
        figures["compare"]["F1 per class"] = rel(F.per_class_f1(featured, fig_dir / "per_class_f1.png"))
        figures["compare"]["accuracy vs cost, every complete run"] = rel(
            F.tradeoff(complete, fig_dir / "tradeoff.png"))
    return {"runs": runs, "runs_dir": runs_dir, "best": best, "featured": featured,
            "groups": group_runs(runs),
            "hparams": {r.signature: hparams(r) for r in runs}, "paired": paired_test(best),
            "figures": figures, "stores": store_summaries(runs, fig_dir, rel), "missing": missing}


def write_outputs(out: Path, ctx: dict, runs_dir: Path, storage: Optional[str]) -> None:
    """results.json (everything, numbers as in each result.json) and results.csv (one row per run)."""
    rows = [run_row(r) for r in ctx["runs"]]
    studies = [{**s, "figures": {k: str(v) for k, v in s["figures"].items()}} for s in ctx["studies"]]
    stores = []
    for s in ctx["stores"]:
        entry = {k: v for k, v in s.items() if k not in ("figure", "summary")}
        if "summary" in s:
            summ = s["summary"]
            entry.update(counts=summ["counts"], labels=summ["labels"], skipped=summ.get("skipped", {}))
        stores.append(entry)
    doc = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs_dir": str(runs_dir.resolve()),
        "storage": storage,
        "runs": [{**row, "result": r.result} for row, r in zip(rows, ctx["runs"])],
        "groups": ctx["groups"], "best": {f: r.signature for f, r in ctx["best"].items()},
        "paired_test": ctx["paired"], "det": ctx["det"], "studies": studies, "stores": stores,
        "figures": sorted(str(v) for group in ctx["figures"].values() for v in group.values()
                          if isinstance(v, Path)),
        "missing": ctx["missing"],
    }
    write_text(out / "results.json", json.dumps(doc, indent=2, default=str) + "\n")
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buf.getvalue())
