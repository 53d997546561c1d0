"""The report's figures: learning curves, confusion matrices, PCA of embeddings, true-vs-predicted,
per-class F1, accuracy-vs-cost, split counts, live DET curves. Each function draws one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws_hpc.io import atomic_path

FAMILY_COLORS = {"gru": "#1f77b4", "lstm": "#d62728"}
OTHER_COLORS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, tight: bool = False) -> Path:
    """Write a figure under a temporary name, rename it into place, and free it.

    `tight` crops to the drawn content (legends outside the axes); it costs a second draw.
    """
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return path


def run_colors(runs) -> list[str]:
    """One colour per run: the family colour for the first of each family, then others."""
    used, out = set(), []
    spare = iter(OTHER_COLORS * 4)
    for r in runs:
        c = FAMILY_COLORS.get(r.family)
        if c is None or c in used:
            c = next(spare)
        used.add(c)
        out.append(c)
    return out


def learning_curves(runs, path: Path) -> Path:
    """Loss and accuracy per epoch (train dashed, validation solid), one colour per run; best epoch dotted."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    handles = []
    for run, color in zip(runs, run_colors(runs)):
        h = run.history
        ep = [e["epoch"] for e in h]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(ep, [e[f"train_{key}"] for e in h], color=color, lw=1.3, ls="--", alpha=0.8)
            ax.plot(ep, [e[f"val_{key}"] for e in h], color=color, lw=2)
        best = (run.result or {}).get("best_epoch")
        if best and best in ep:
            ax_acc.plot([best], [h[ep.index(best)]["val_acc"]], "o", color=color, ms=7)
        handles.append(Line2D([], [], color=color, lw=2, label=run.name))
    handles += [Line2D([], [], color="0.3", lw=2, label="validation"),
                Line2D([], [], color="0.3", lw=1.3, ls="--", label="train"),
                Line2D([], [], color="0.3", marker="o", ls="", label="best epoch")]
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    return save(fig, path)


def _heatmap(ax, m, labels, fmt, title, vmax=None):
    n = len(labels)
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=vmax)
    ax.set(xticks=range(n), yticks=range(n), title=title, xlabel="predicted", ylabel="true")
    ax.set_xticklabels(labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    if n <= 20:
        top = m.max() if m.size else 0
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, fmt(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] > 0.6 * top else "black")
    return im


def confusion(run, path: Path) -> Path:
    """Confusion matrix as counts and row-normalised (recall on the diagonal), side by side."""
    plt = pyplot()
    labels = run.result["labels"]
    m = np.asarray(run.result["confusion"], dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    im0 = _heatmap(axes[0], m, labels, lambda v: f"{int(v)}", "counts")
    im1 = _heatmap(axes[1], norm, labels, lambda v: f"{v:.2f}", "row-normalised", vmax=1)
    fig.colorbar(im0, ax=axes[0], fraction=0.046)
    fig.colorbar(im1, ax=axes[1], fraction=0.046)
    fig.suptitle(f"{run.name}: test accuracy {run.result['test_accuracy']:.4f}")
    fig.tight_layout()
    return save(fig, path)


def _class_colors(n: int):
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def pca(run, preds: dict, path: Path, max_points: int = 4000) -> Path:
    """First two principal components of the penultimate vectors, coloured by true class; errors marked."""
    from sklearn.decomposition import PCA

    plt = pyplot()
    labels = run.result["labels"]
    emb = np.asarray(preds["embeddings"], dtype=np.float64)
    y, p = np.asarray(preds["y_true"]), np.asarray(preds["y_pred"])
    idx = np.arange(len(y))
    if len(idx) > max_points:  # keep the figure light on big test sets; every error stays
        rng = np.random.default_rng(0)
        wrong = idx[y != p]
        right = rng.choice(idx[y == p], size=max(0, max_points - len(wrong)), replace=False)
        idx = np.sort(np.concatenate([wrong, right]))
    model = PCA(n_components=2, random_state=0)
    xy = model.fit_transform(emb[idx]) if emb.shape[1] >= 2 else np.c_[emb[idx, 0], np.zeros(len(idx))]
    var = getattr(model, "explained_variance_ratio_", [0, 0])
    fig, ax = plt.subplots(figsize=(8, 6))
    colors = _class_colors(len(labels))
    bad = y[idx] != p[idx]
    for k, lab in enumerate(labels):
        sel = (y[idx] == k) & ~bad
        ax.scatter(xy[sel, 0], xy[sel, 1], s=18, color=colors[k], alpha=0.75, label=lab, edgecolors="none")
        sel = (y[idx] == k) & bad  # errors keep their true class colour, drawn as a black-edged cross
        ax.scatter(xy[sel, 0], xy[sel, 1], s=60, marker="X", color=colors[k], edgecolors="black", lw=0.8)
    ax.scatter([], [], s=60, marker="X", color="white", edgecolors="black", lw=0.8,
               label=f"misclassified ({int((y != p).sum())})")
    ax.set(title=f"{run.name}: PCA of penultimate features", xlabel=f"PC1 ({var[0]:.0%} of variance)",
           ylabel=f"PC2 ({var[1]:.0%} of variance)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, markerscale=1.5)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return save(fig, path, tight=True)


def true_vs_pred(run, preds: dict, path: Path) -> Path:
    """The reference's scatter of true vs predicted class index (with jitter), errors in red."""
    plt = pyplot()
    labels = run.result["labels"]
    y, p = np.asarray(preds["y_true"]), np.asarray(preds["y_pred"])
    rng = np.random.default_rng(0)
    jx, jy = rng.uniform(-0.3, 0.3, (2, len(y)))
    ok = y == p
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * n + 2), max(5.5, 0.45 * n + 1.5)))
    ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="0.8", lw=1, zorder=0)
    size = float(np.clip(2000 / max(1, len(y)), 4, 24))  # big dots for a few clips, small for thousands
    ax.scatter(y[ok] + jx[ok], p[ok] + jy[ok], s=size, color="#4c72b0", alpha=0.4,
               label=f"correct ({ok.sum()})")
    ax.scatter(y[~ok] + jx[~ok], p[~ok] + jy[~ok], s=2 * size, color="#d62728", alpha=0.85,
               label=f"wrong ({(~ok).sum()})")
    ax.set(xticks=range(n), yticks=range(n), xlim=(-0.6, n - 0.4), ylim=(-0.6, n - 0.4),
           xlabel="true class", ylabel="predicted class", title=f"{run.name}: true vs predicted (jittered)")
    ax.set_xticklabels(labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return save(fig, path)


def per_class_f1(runs, path: Path) -> Path:
    """F1 per class for several runs as grouped bars (where the models differ, class by class)."""
    plt = pyplot()
    labels = runs[0].result["labels"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(labels) * max(1, len(runs) / 2) + 2), 3.6))
    for i, (run, color) in enumerate(zip(runs, run_colors(runs))):
        f1 = [run.result["per_class"].get(lab, {}).get("f1", 0) for lab in labels]
        ax.bar(np.arange(len(labels)) + (i - (len(runs) - 1) / 2) * width, f1, width, color=color,
               label=f"{run.name} (macro {run.result['macro_f1']:.3f})")
    ax.set(xticks=range(len(labels)), ylabel="F1", ylim=(0, 1.05), title="F1 per class on the test split")
    ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def tradeoff(runs, path: Path) -> Path:
    """Test accuracy against seconds per epoch for every complete run; marker area ~ parameters."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    params = np.array([r.result.get("params") or 1 for r in runs], dtype=float)
    sizes = 30 + 270 * params / params.max()
    fams = sorted({r.family for r in runs})
    for k, fam in enumerate(fams):
        sel = [i for i, r in enumerate(runs) if r.family == fam]
        ax.scatter([runs[i].result.get("seconds_per_epoch") or 0 for i in sel],
                   [runs[i].result["test_accuracy"] for i in sel], s=sizes[sel], alpha=0.6,
                   color=FAMILY_COLORS.get(fam, OTHER_COLORS[k % len(OTHER_COLORS)]), label=fam.upper())
    ax.set(xlabel="seconds per epoch", ylabel="test accuracy",
           title="Accuracy vs training cost (marker area ~ parameters)")
    legend = ax.legend(fontsize=8)
    for handle in legend.legend_handles:  # same marker size for every family in the legend
        handle.set_sizes([50])
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def split_counts(summary: dict, path: Path) -> Path:
    """Clips per class in each split, with the per-class quota as a dashed line where one was set."""
    plt = pyplot()
    labels = summary["labels"]
    counts = summary["counts"]
    splits = [s for s in ("train", "val", "test") if s in counts]
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for ax, split, color in zip(axes[0], splits, ["#4c72b0", "#55a868", "#c44e52"]):
        c = counts[split]
        ax.bar(range(len(labels)), [c["actual"].get(lab, 0) for lab in labels], color=color)
        if c.get("quota"):
            ax.axhline(c["quota"], color="black", ls="--", lw=1, label=f"quota {c['quota']}")
            ax.legend(fontsize=8, loc="lower right")
        ax.set(title=f"{split}: {c['total']} clips", xticks=range(len(labels)))
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_xticklabels(labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("clips")
    fig.tight_layout()
    return save(fig, path)


def det_curves(models: dict, per_false_alarm: float, budgets, path: Path) -> Path:
    """Miss rate against false alarms per hour (log axis), one curve per model; budgets dotted.

    `models` maps a name to {"family", "curve": [[threshold, miss rate, false alarms per hour]]}. No false
    alarm at all (the stream resolves `per_false_alarm` per hour) is drawn left of every budget line, in a
    grey band.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    floor = min(per_false_alarm, *budgets) / 2
    for k, (name, m) in enumerate(models.items()):
        pts = sorted((max(fa, floor), miss) for _, miss, fa in m["curve"] if miss == miss)
        color = FAMILY_COLORS.get(m["family"], OTHER_COLORS[k % len(OTHER_COLORS)])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=3, lw=1.8, color=color, label=name)
    for b in budgets:
        ax.axvline(b, color="0.5", ls=":", lw=1)
        ax.annotate(f"{b:g}/h", (b, 1.0), fontsize=7, color="0.4", ha="left", va="bottom",
                    xytext=(2, 0), textcoords="offset points")
    ax.axvspan(floor * 0.7, floor * 1.3, color="0.9", zorder=0, label="no false alarm")
    ax.set_xscale("log")
    ax.set(xlabel="false alarms per hour (stream without keywords)", ylabel="miss rate (keyword stream)",
           ylim=(0, 1.02), title="Live detection: misses vs false alarms (every threshold)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save(fig, path)
