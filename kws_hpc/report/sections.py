"""The report's sections, built from the gathered runs, comparison and studies (see report.py)."""

from __future__ import annotations

from pathlib import Path

from kws_hpc.report.html import Figure, Links, Note, Section, Table, Tables, png_width
from kws_hpc.report.compare import describe_mcnemar

WIDE_PX = 1000  # figures at least this wide (at 110 dpi) take the whole page width


def num(v, digits: int = 4) -> str:
    """A number for a table cell: ints with thousands separators, floats rounded, None as a dash."""
    if v is None:
        return "-"
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if v != v:  # NaN
        return "n/a"
    return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def pm(stat: dict, digits: int = 4, integer: bool = False) -> str:
    """mean +- std over seeds (just the value for a single run; `integer` counts print as ints)."""
    if stat["mean"] is None:
        return "-"
    if stat["std"] is None:
        m = stat["mean"]
        return num(int(m) if integer and float(m).is_integer() else m, digits)
    return f"{stat['mean']:.{digits}f}\u00a0±\u00a0{stat['std']:.{digits}f}"  # no-break: one line per cell


def hp_value(v) -> str:
    """A hyper-parameter value, short: 0.001 not 0.0010, 1e-05 not 0.0000."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def hp_text(hp: dict) -> str:
    return ", ".join(f"{k}={hp_value(v)}" for k, v in hp.items())


def figs(section: Section, found: dict, what: str, root) -> None:
    """Add figures {caption: Path relative to `root`, or a str saying why the figure is missing}."""
    for caption, item in found.items():
        if isinstance(item, str):
            section.add(Note(f"No {what} for {caption}: {item}."))
        else:
            section.add(Figure(item.as_posix(), caption, png_width(root / item) >= WIDE_PX))


def overview(ctx: dict) -> Section:
    s = Section("Overview", "overview")
    runs, complete = ctx["runs"], [r for r in ctx["runs"] if r.complete]
    fams = sorted({r.family for r in complete})
    pruned = sum(1 for r in runs if r.pruned)
    s.add(f"{len(runs)} run folder(s) under {ctx['runs_dir']}: {len(complete)} complete, "
          f"{len(runs) - len(complete) - pruned} incomplete, {pruned} pruned by Optuna. "
          "Model families with results: "
          f"{', '.join(f.upper() for f in fams) or 'none'}. Studies: {len(ctx['studies'])}.")
    s.add("The best run of each family is the one with the highest validation accuracy (the test split "
          "never picks a model); figures per model show those runs.")
    for note in ctx["missing"]:
        s.add(Note(note))
    return s


def comparison(ctx: dict) -> Section:
    s = Section("GRU vs LSTM", "comparison")
    best = ctx["best"]
    if not best:
        return s.add(Note("No complete run (with result.json) yet: nothing to compare."))
    cols = ["", *(r.name for r in best.values())]
    rows = [["test accuracy", *(num(r.result["test_accuracy"]) for r in best.values())],
            ["macro-F1", *(num(r.result["macro_f1"]) for r in best.values())],
            ["best val accuracy", *(num(r.result.get("best_val_acc")) for r in best.values())],
            ["parameters", *(num(r.result.get("params")) for r in best.values())],
            ["seconds / epoch", *(num(r.result.get("seconds_per_epoch"), 3) for r in best.values())],
            ["best epoch / epochs run",
             *(f"{r.result.get('best_epoch')} / {r.result.get('epochs_run')}" for r in best.values())],
            ["inference ms / clip", *(num(r.result.get("inference_ms_per_clip"), 3) for r in best.values())],
            ["device", *(r.result.get("device", "-") for r in best.values())],
            ["stopped by", *(r.result.get("stopped", "-") for r in best.values())],
            ["hyper-parameters", *(hp_text(ctx["hparams"][r.signature]) for r in best.values())]]
    s.add(Table(cols, rows, "Best run per family (by validation accuracy)"))
    test = ctx["paired"]
    if "skipped" in test:
        s.add(Note(f"No paired significance test: {test['skipped']}"))
    else:
        a, b = test["a"], test["b"]
        s.add(describe_mcnemar(test["mcnemar"], a, b))
        m = test["mcnemar"]
        method = "exact binomial" if m["method"] == "exact" else "chi-square, continuity corrected"
        s.add(Table(["", f"{b} right", f"{b} wrong"],
                    [[f"{a} right", m["both"], m["a_only"]], [f"{a} wrong", m["b_only"], m["neither"]]],
                    f"McNemar's paired test: statistic {num(m['statistic'], 3)}, p = {m['p_value']:.4g} "
                    f"({method})"))
    figs(s, ctx["figures"].get("compare", {}), "comparison figure", ctx["out"])
    return s


def families(ctx: dict) -> Section:
    s = Section("Runs by family", "families")
    s.add("One row per configuration, best validation accuracy first; runs that differ only in seed are "
          "pooled as mean ± std (sample standard deviation).")
    by_family: dict = {}
    many_stores = len({g["store_signature"] for g in ctx["groups"]}) > 1
    for g in ctx["groups"]:
        by_family.setdefault(g["family"], []).append(g)
    for fam, groups in sorted(by_family.items()):
        keys = list(dict.fromkeys(k for g in groups for k in g["hparams"]))
        varying = [k for k in keys if len({repr(g["hparams"].get(k)) for g in groups}) > 1]
        shared = {k: groups[0]["hparams"].get(k) for k in keys if k not in varying}
        rows = []
        for g in groups:
            m = g["metrics"]
            store = [g["store_signature"]] if many_stores else []
            rows.append([g["variant"], *store, *(hp_value(g["hparams"].get(k)) for k in varying),
                         len(g["runs"]), pm(m["test_accuracy"]), pm(m["macro_f1"]), pm(m["best_val_acc"]),
                         num(m["params"]["mean"] and int(m["params"]["mean"])), pm(m["seconds_per_epoch"], 3),
                         pm(m["best_epoch"], 1, integer=True), pm(m["inference_ms_per_clip"], 3)])
        s.add(Table(["variant", *(["store"] if many_stores else []), *varying, "seeds", "test accuracy",
                     "macro-F1", "val accuracy", "parameters", "s / epoch", "epochs to best",
                     "inference ms / clip"], rows, f"{fam.upper()}: {len(groups)} configuration(s)"))
        if shared:
            s.add(f"Shared by every {fam.upper()} configuration above: {hp_text(shared)}.")
    if not by_family:
        s.add(Note("No complete run yet."))
    return s


def per_model(ctx: dict, key: str, title: str, anchor: str, what: str, intro: str) -> Section:
    s = Section(title, anchor).add(intro)
    found = ctx["figures"].get(key, {})
    if not found:
        s.add(Note(f"No {what}: no complete run yet."))
    figs(s, found, what, ctx["out"])
    return s


def per_class(ctx: dict) -> Section:
    s = Section("Per-class metrics", "per-class")
    tables = []
    for run in ctx["featured"]:
        res = run.result
        rows = [[lab, num(v["precision"], 3), num(v["recall"], 3), num(v["f1"], 3), num(v["support"])]
                for lab, v in ((lab, res["per_class"][lab]) for lab in res["labels"])]
        pc = [res["per_class"][lab] for lab in res["labels"]]
        total = sum(v["support"] for v in pc) or 1
        weights = (("macro avg", [1 / len(pc)] * len(pc)),
                   ("weighted avg", [v["support"] / total for v in pc]))
        for name, w in weights:
            rows.append([name, *(num(sum(wi * v[k] for wi, v in zip(w, pc)), 3)
                                 for k in ("precision", "recall", "f1")), num(sum(v["support"] for v in pc))])
        rows.append(["accuracy", "", "", num(res["test_accuracy"], 3), num(sum(v["support"] for v in pc))])
        tables.append(Table(["class", "precision", "recall", "F1", "support"], rows,
                            f"{run.name}: test accuracy {res['test_accuracy']:.6f}"))
    s.add(Tables(tables))
    if not ctx["featured"]:
        s.add(Note("No complete run yet."))
    return s


def splits(ctx: dict) -> Section:
    s = Section("Data splits", "splits")
    for store in ctx["stores"]:
        if store.get("problem"):
            s.add(Note(f"Split counts of store {store['signature']} unavailable: {store['problem']}"))
            continue
        summ = store["summary"]
        counts = summ["counts"]
        names = [x for x in ("train", "val", "test") if x in counts]
        rows = [[lab, *(counts[x]["actual"].get(lab, 0) for x in names)] for lab in summ["labels"]]
        rows.append(["total", *(counts[x]["total"] for x in names)])
        rows.append(["quota per class", *(counts[x].get("quota") or "none" for x in names)])
        s.add(Table(["class", *names], rows,
                    f"Store {store['signature']} ({store['path']}): clips per class"))
        if summ.get("skipped"):
            left = ", ".join(f"{k} {v}" for k, v in sorted(summ["skipped"].items()))
            s.add(f"Clips left out: {left}.")
        figs(s, {f"Store {store['signature']}: clips per class and split (quota dashed)": store["figure"]},
             "split figure", ctx["out"])
    if not ctx["stores"]:
        s.add(Note("No complete run names a store: split counts unavailable."))
    return s


def studies(ctx: dict) -> Section:
    s = Section("Optuna studies", "studies")
    if ctx["studies_note"]:
        s.add(Note(ctx["studies_note"]))
    for st in ctx["studies"]:
        best = st["best"]
        states = ", ".join(f"{k} {v}" for k, v in sorted(st["states"].items())) or "no trials"
        rows = [["direction", "/".join(st["directions"])], ["trials", f"{st['trials']} ({states})"]]
        if best:
            rows += [["best trial", best["number"]], ["best value", num(best["value"])],
                     ["best run folder", best["run_dir"] or "-"],
                     *[[f"best {k}", hp_value(v)] for k, v in best["params"].items()]]
        s.add(Table(["study", st["name"]], rows, f"Study {st['name']}"))
        if not best:
            s.add(Note(f"Study {st['name']} has no complete trial: no best parameters."))
        figs(s, st["figures"], "study figure", ctx["out"])
    return s


def all_runs(ctx: dict) -> Section:
    s = Section("All runs", "runs")
    rows = []
    for r in ctx["runs"]:
        last_val = r.history[-1]["val_acc"] if r.history else None
        res = r.result or {}
        trial = f"{r.trial['study']} #{r.trial['number']}" if r.trial else "-"
        rows.append([r.signature, r.family, r.variant, r.seed, r.state_text(), num(res.get("test_accuracy")),
                     num(res.get("macro_f1")), num(last_val), trial, run_logs(r, ctx["out"]), str(r.dir)])
    s.add(Table(["run", "family", "variant", "seed", "status", "test accuracy", "macro-F1",
                 "last val accuracy", "Optuna trial", "log", "folder"], rows))
    board = sorted({str(r.dir.parent) for r in ctx["runs"] if r.tensorboard is not None})
    if board:
        s.add(f"Per-epoch curves of every run as they train: tensorboard --logdir {' '.join(board)} "
              "(a sweep's trials are grouped under their study's name).")
    return s


def run_logs(run, out) -> Links:
    """Links to a run's per-epoch log: metrics.csv, and its TensorBoard folder when it has one."""
    import os

    items = [(name, Path(os.path.relpath(path, out)).as_posix()) for name, path in
             (("metrics.csv", run.folder.metrics), ("tensorboard", run.tensorboard)) if path is not None
             and path.exists()]
    return Links(items)


def live_det(ctx: dict) -> Section:
    """The DET figure and the miss rate at a few false-alarm budgets of the best run of each family (and of
    the two averaged)."""
    s = Section("Live detection: misses vs false alarms per hour", "det")
    det = ctx["det"]
    if "skipped" in det:
        return s.add(Note(f"No DET curves: {det['skipped']}"))
    pos, neg = det["streams"]["positive"], det["streams"]["negative"]
    s.add(f"The best run of each family, converted as `kws-hpc export` does, ran the live detector (default "
          f"settings, voice gate on) over two streams of test-split speakers from {det['corpus']}: a "
          f"{pos['minutes']:g}-min stream with {pos['events']['keyword']} keywords (seed {pos['seed']}) and a "
          f"{neg['minutes']:g}-min stream without any ({neg['events']['other']} other words, "
          f"{neg['events']['noise']} noise bursts; seed {neg['seed']})"
          + (", and so did the two averaged (one graph of the mean of their posteriors, what `kws-hpc export "
             "GRU_RUN LSTM_RUN` writes)" if any(m["family"] == "gru+lstm" for m in det["models"].values()) else "")
          + ". Each threshold gives the miss rate on "
          f"the first and the false alarms per hour on the second; one false alarm there is "
          f"{num(det['per_false_alarm'], 2)} per hour, so a smaller budget means none at all.")
    for note in det["notes"]:
        s.add(Note(note))
    figs(s, ctx["figures"].get("det", {}), "DET figure", ctx["out"])
    budgets = list(next(iter(det["models"].values()))["at"]) if det["models"] else []
    rows = []
    for name, m in det["models"].items():
        cells = [f"{100 * p['miss_rate']:.1f} % (threshold {p['threshold']:g})" if p else "not reached"
                 for p in (m["at"][b] for b in budgets)]
        rows.append([name, *cells])
    s.add(Table(["model", *(f"miss rate at <= {float(b):g} FA/h" for b in budgets)], rows,
                "Lowest miss rate within each false-alarm budget (and the threshold that gives it)"))
    return s
