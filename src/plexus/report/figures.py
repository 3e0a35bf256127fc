"""Paper figures, rendered from the CSV/JSON/NPZ files under ``results/`` alone.

Every function takes data already read from those files and a style dict
(``dpi``, ``font_size``, ``cmap`` from the config's ``figures`` section), and
:func:`save` writes each figure as PNG and PDF atomically.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from plexus.io.atomic import atomic_path  # noqa: E402

DEFAULT_STYLE = {"dpi": 150, "font_size": 9, "cmap": "viridis"}

#: the colour-blind-safe qualitative palette of Wong (2011, Nature Methods 8:441), in the order and
#: shades of seaborn 0.13.2's ``"colorblind"`` palette (which these figures drew with before), as RGB
COLORBLIND = tuple(to_rgb(c) for c in (
    "#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC", "#CA9161", "#FBAFE4", "#949494", "#ECE133", "#56B4E9"))


def colorblind(n: int) -> list[tuple[float, float, float]]:
    """The first ``n`` colours of :data:`COLORBLIND`, cycling past its 10."""
    return [COLORBLIND[i % len(COLORBLIND)] for i in range(n)]


def apply_style(style: dict | None = None) -> dict:
    style = {**DEFAULT_STYLE, **(style or {})}
    plt.rcParams.update({
        "font.size": style["font_size"],
        "axes.titlesize": style["font_size"] + 1,
        "axes.labelsize": style["font_size"],
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": style["dpi"],
        "savefig.dpi": style["dpi"],
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,
        # no dates or random ids in the PDFs: reruns give identical files
        "svg.hashsalt": "plexus",
    })
    return style


def save(fig, paths) -> None:
    """Save ``fig`` to each path (format from its suffix) atomically, then close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], metadata=_metadata(path))
    plt.close(fig)


def _metadata(path):
    return {"CreationDate": None} if str(path).endswith(".pdf") else {}


def tuning_heatmap(grid: pd.DataFrame, best: dict, title: str, style: dict | None = None):
    """Mean OOF Kaggle Dice over probability cutoff (rows, rising upwards) x minimum area (columns)."""
    style = apply_style(style)
    table = grid.pivot(index="cutoff", columns="min_area", values="score").sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _heatmap(ax, table, style["cmap"], "mean Kaggle Dice",
             xticklabels=_every(table.columns, "{:.0f}"), yticklabels=_every(table.index, "{:.2f}"))
    # cell (row i, column j) spans [j, j + 1] x [i, i + 1]: its centre is at index + 0.5
    col = int(np.argmin(np.abs(table.columns.to_numpy(np.float64) - best["min_area"])))
    row = int(np.argmin(np.abs(table.index.to_numpy(np.float64) - best["cutoff"])))
    ax.plot(col + 0.5, row + 0.5, marker="*", color="white", markersize=12, markeredgecolor="black",
            linestyle="none", label=f"best {best['score']:.3f}")
    ax.set_xlabel("minimum mask area (px at 420×580)")
    ax.set_ylabel("probability cutoff")
    ax.set_title(f"{title}: OOF score over cutoff × minimum area")
    ax.legend(loc="upper right", frameon=True)
    return fig


def _heatmap(ax, table: pd.DataFrame, cmap, label: str, *, vmin=None, vmax=None, notes: pd.DataFrame | None = None,
             linewidths: float = 0.0, xticklabels=None, yticklabels=None):
    """``table`` as a grid of cells, row 0 at the top: cell (i, j) spans [j, j + 1] x [i, i + 1].

    NaN cells stay blank. Tick labels (default: the table's columns and index as text) sit at the
    cell centres; a colorbar labelled ``label`` sits beside ``ax``. ``notes`` (text per cell, the
    table's shape) are written in each non-blank cell, dark on light colours and white on dark ones.
    Returns the QuadMesh."""
    values = np.ma.masked_invalid(table.to_numpy(np.float64))
    n_rows, n_cols = values.shape
    mesh = ax.pcolormesh(np.arange(n_cols + 1), np.arange(n_rows + 1), values, cmap=cmap, vmin=vmin, vmax=vmax,
                         edgecolors="white", linewidth=linewidths)
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)  # the first row at the top
    xticklabels = [str(c) for c in table.columns] if xticklabels is None else xticklabels
    yticklabels = [str(i) for i in table.index] if yticklabels is None else yticklabels
    ax.set_xticks(np.arange(n_cols) + 0.5, xticklabels)
    ax.set_yticks(np.arange(n_rows) + 0.5, yticklabels)
    for spine in ax.spines.values():
        spine.set_visible(False)
    colorbar = ax.figure.colorbar(mesh, ax=ax, label=label)
    colorbar.outline.set_linewidth(0)
    if notes is not None:
        colors = mesh.cmap(mesh.norm(values))
        for (i, j), text in np.ndenumerate(notes.to_numpy(object)):
            if not values.mask[i, j] and text:
                ax.text(j + 0.5, i + 0.5, str(text), ha="center", va="center",
                        color=".15" if _luminance(colors[i, j]) > 0.408 else "white")
    return mesh


def _luminance(color) -> float:
    """Relative luminance of an RGB(A) colour (WCAG 2), which picks dark or light annotation text."""
    rgb = np.asarray(color, dtype=np.float64)[:3]
    rgb = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(rgb @ [0.2126, 0.7152, 0.0722])


def _every(values, fmt: str, most: int = 8) -> list[str]:
    """Tick labels for at most about ``most`` of ``values`` (the rest blank)."""
    step = max(1, int(np.ceil(len(values) / most)))
    return [fmt.format(v) if i % step == 0 else "" for i, v in enumerate(values)]


COMPARISON_METRICS = {
    "kaggle_untuned": "Kaggle Dice, untuned", "kaggle_tuned": "Kaggle Dice, tuned",
    "kaggle_postprocessed": "Kaggle Dice, post-processed", "kaggle_cross_fitted": "Kaggle Dice, cross-fitted",
    "dice": "Dice (images with a nerve)", "iou": "IoU (images with a nerve)",
    "sensitivity": "sensitivity (images with a nerve)", "precision": "precision (images with a nerve)",
    "presence_auc": "presence AUC",
}


#: the legend text of the all-background baseline drawn in the comparison panels
BASELINE_LABEL = "all-empty prediction"


def comparison_figure(table: pd.DataFrame, style: dict | None = None, metrics: dict | None = None,
                      baselines: dict | None = None, baseline_label: str = BASELINE_LABEL):
    """Each metric of the comparison table, one panel each: models and ensembles with 95% CIs.

    ``metrics``: column -> panel title (default :data:`COMPARISON_METRICS`, the binary task's).
    Every panel shares one x axis (the same score scale throughout). ``baselines``: column -> the
    all-background prediction's score on the same images (:func:`plexus.report.comparison.empty_baselines`),
    drawn as a dashed grey vertical line labelled ``baseline_label`` in each panel whose metric has one."""
    apply_style(style)
    metrics = COMPARISON_METRICS if metrics is None else metrics
    baselines = {m: float(v) for m, v in (baselines or {}).items() if m in metrics and np.isfinite(v)}
    names = list(table["name"])
    palette = dict(zip(names, colorblind(len(names))))
    # one panel per metric, wrapped into rows of at most 3, each 1.9 in high and 1.6 times as wide
    n_cols = min(3, len(metrics))
    n_rows = int(np.ceil(len(metrics) / n_cols))
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(n_cols * 1.9 * 1.6, n_rows * 1.9), sharex=True, sharey=True,
                             squeeze=False)
    for ax in grid.flat[len(metrics):]:
        fig.delaxes(ax)
    axes = list(grid.flat[:len(metrics)])
    for ax, (column, label) in zip(axes, metrics.items()):
        rows = zip(names, *(table[c].to_numpy(np.float64) for c in (column, f"{column}_low", f"{column}_high")))
        for y, (name, value, low, high) in enumerate(rows):
            if np.isfinite(value):
                ax.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="o", color=palette[name],
                            capsize=3, markersize=4)
        if column in baselines:
            ax.axvline(baselines[column], color="0.35", ls="--", lw=1.0, zorder=0,
                       label=f"{baseline_label}: {baselines[column]:.3f}")
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(label)
    columns = [c for m in metrics for c in (m, f"{m}_low", f"{m}_high")]
    values = table[columns].to_numpy(np.float64)
    finite = [*values[np.isfinite(values)], *baselines.values()]
    low, high = (min(0.0, *finite), max(1.0, *finite)) if finite else (0.0, 1.0)
    pad = 0.03 * (high - low)
    for i, ax in enumerate(axes):
        ax.set_xlim(low - pad, high + pad)  # one scale for every panel (the axes are shared)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("score (95% CI)")
        ax.set_ylabel("model / ensemble")
        # as a wrapped facet grid: the x label only under a panel with none below it, the y label
        # (and the shared model names) only in the first column
        ax.xaxis.label.set_visible(i + n_cols >= len(axes))
        ax.yaxis.label.set_visible(i % n_cols == 0)
        ax.tick_params(labelleft=i % n_cols == 0)
        if ax.get_legend_handles_labels()[0]:  # the panel's baseline line, named with its score
            ax.legend(loc="best", fontsize="x-small", frameon=False, handlelength=1.5)
    fig.tight_layout()
    fig.subplots_adjust(hspace=0.75, wspace=0.25)  # room for each panel's x label and title
    note = f" (dashed: the {baseline_label})" if baselines else ""
    fig.suptitle(f"Models and ensembles on the same out-of-fold images{note}", y=1.02)
    return fig


def per_image_figure(per_image: dict[str, pd.DataFrame], style: dict | None = None, score: str = "Kaggle Dice",
                     value: str = "cross_fitted"):
    """Every model's and ensemble's per-image ``value`` side by side, one column each.

    Each image is a grey dot (jittered sideways, the same offset in every column); each subject's
    mean is a coloured marker, joined across the columns by a thin line of its colour, so a subject
    that every entry finds hard stands out; the entry's mean over images is a black bar. ``per_image``
    maps a name to its frame (``image_id``, ``subject`` and ``value``), in the order drawn.
    """
    style = apply_style(style)
    names = list(per_image)
    fig, ax = plt.subplots(figsize=(max(3.2, 1.1 * len(names) + 1.6), 3.6), layout="constrained")
    first = per_image[names[0]]
    subjects = sorted(first["subject"].astype(str).unique())
    cmap = plt.get_cmap("tab20" if len(subjects) > 10 else "tab10")
    colors = {subject: cmap(i % cmap.N) for i, subject in enumerate(subjects)}
    offsets = np.random.default_rng(0).uniform(-0.18, 0.18, len(first))
    offset_of = dict(zip(first["image_id"].astype(str), offsets))
    means = {}
    for x, name in enumerate(names):
        frame = per_image[name]
        ids = frame["image_id"].astype(str)
        ax.scatter(x + ids.map(offset_of).fillna(0.0).to_numpy(), frame[value], s=6, color="0.6", alpha=0.5,
                   linewidths=0, zorder=1)
        means[name] = frame.groupby(frame["subject"].astype(str))[value].mean()
        ax.hlines(frame[value].mean(), x - 0.3, x + 0.3, color="black", lw=2, zorder=3)
    for subject in subjects:
        ys = [means[name].get(subject, np.nan) for name in names]
        ax.plot(range(len(names)), ys, "-o", color=colors[subject], lw=0.8, ms=4, zorder=2, alpha=0.9)
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel(f"{score}, {value.replace('_', '-')} (per image)")
    ax.set_title(f"per-image {score} of every entry, on the same images")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.6", marker="o", ls="", ms=3, label="one image"),
               Line2D([], [], color="0.3", marker="o", ls="-", lw=0.8, ms=4, label="one subject's mean"),
               Line2D([], [], color="black", lw=2, label="mean over images")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
              fontsize=style["font_size"] - 1)
    return fig


def pairwise_figure(pairwise: pd.DataFrame, style: dict | None = None, score: str = "Kaggle Dice"):
    """Mean per-image difference (row minus column) of every pair, significant cells starred."""
    style = apply_style(style)
    names = list(dict.fromkeys([*pairwise["a"], *pairwise["b"]]))
    if not names:  # a single model or ensemble: nothing to compare
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, "one model or ensemble: no pair to compare", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title("Paired differences")
        return fig
    diff = pd.DataFrame(np.nan, index=names, columns=names)
    notes = pd.DataFrame("", index=names, columns=names)
    for row in pairwise.itertuples():
        for a, b, sign in ((row.a, row.b, 1), (row.b, row.a, -1)):
            diff.loc[a, b] = sign * row.difference
            notes.loc[a, b] = f"{sign * row.difference:+.3f}" + ("*" if row.significant else "")
    limit = max(float(np.nanmax(np.abs(diff.to_numpy()))) if len(pairwise) else 0.0, 1e-3)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.4, 0.9 * len(names) + 1.4))
    _heatmap(ax, diff, "RdBu", "mean per-image difference", vmin=-limit, vmax=limit, notes=notes, linewidths=0.5)
    column = pairwise["score"].iloc[0] if len(pairwise) else "score"
    ax.set_title(f"Paired differences of the {column.replace('_', '-')} {score} (* 95% CI excludes 0)")
    ax.set_xlabel("compared with")
    ax.set_ylabel("model / ensemble")
    return fig


def score_vs_min_area(grid: pd.DataFrame, best: dict, title: str, style: dict | None = None):
    """The seed blog's 1-D view: score vs minimum area, one series per cutoff."""
    style = apply_style(style)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cutoffs = np.sort(grid["cutoff"].unique())
    colors = plt.get_cmap(style["cmap"])(np.linspace(0, 1, len(cutoffs)))
    for color, cutoff in zip(colors, cutoffs):
        rows = grid[grid["cutoff"] == cutoff].sort_values("min_area")
        ax.plot(rows["min_area"], rows["score"], "o-", ms=2.5, lw=0.8, color=color)
    ax.axvline(best["min_area"], color="black", ls="--", lw=0.8,
               label=f"chosen: {best['min_area']} px, cutoff {best['cutoff']:.2f}")
    sm = plt.cm.ScalarMappable(cmap=style["cmap"], norm=plt.Normalize(cutoffs.min(), cutoffs.max()))
    fig.colorbar(sm, ax=ax, label="probability cutoff")
    ax.set_xlabel("minimum mask area (px at 420×580)")
    ax.set_ylabel("mean Kaggle Dice (OOF)")
    ax.set_title(f"{title}: score vs minimum mask area")
    ax.legend(loc="lower right")
    return fig


# --------------------------------------------------------------------------
# Training, robustness and qualitative figures
# --------------------------------------------------------------------------

ORIGINAL_PIXELS = "px at 420×580"
CONDITION_LABELS = {
    "clean": "train clean, evaluate noisy",
    "noisy": "train noisy, evaluate noisy",
}
SCORE_LABELS = {
    "kaggle_dice": "mean Kaggle Dice (empty/empty = 1)",
    "dice": "mean plain Dice (empty/empty = 0)",
}


def _fold_colors(n: int):
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def learning_curves(histories: dict[int, pd.DataFrame], title: str, style: dict | None = None,
                    events: dict[int, list[dict]] | None = None, validation: str = "oof",
                    read_by: list[str] | None = None, weights: str = "final"):
    """Loss (training solid, validation dashed) and validation Dice vs epoch, one colour per fold.

    ``histories`` maps fold -> ``history.csv`` frame (``epoch, train_loss,
    val_loss, val_dice, seconds``). ``events`` maps fold -> its collapse events
    (``train_info.json``'s ``collapse_events``): each is a cross on the training loss at
    the epoch the collapse was caught, a dotted line at the epoch recovered to. ``validation``
    (``train_info.json``'s: ``inner`` or ``oof``) names what the dashed line and the Dice were
    measured on; ``read_by`` (its ``validation_read_by``: an empty list when no decision reads
    them) and ``weights`` (``final``, ``best_inner`` or ``refit``: which weights were kept) say
    what the numbers were for.
    """
    from matplotlib.lines import Line2D

    apply_style(style)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(8.4, 3.4), layout="constrained")
    folds = sorted(histories)
    for color, fold in zip(_fold_colors(len(folds)), folds):
        h = histories[fold].sort_values("epoch")
        ax_loss.plot(h["epoch"], h["train_loss"], "-", color=color, lw=1.1)
        ax_loss.plot(h["epoch"], h["val_loss"], "--", color=color, lw=1.1)
        ax_dice.plot(h["epoch"], h["val_dice"], "-", color=color, lw=1.1, label=f"fold {fold}")
        best = h.loc[h["val_dice"].idxmax()]
        ax_dice.plot(best["epoch"], best["val_dice"], "o", color=color, ms=3.5)
        for event in (events or {}).get(fold, []):
            caught = h[h["epoch"] == event["epoch"]]["train_loss"]
            if len(caught):
                ax_loss.plot(event["epoch"], caught.iloc[0], "x", color="tab:red", ms=7, mew=2)
            if event["action"] == "recovered":
                ax_loss.axvline(event["best_epoch"], color=color, ls=":", lw=1)
    ax_loss.set_xlabel("epoch (count)")
    ax_loss.set_ylabel("loss (training objective, unitless)")
    if validation == "inner":
        what = "inner validation"
    elif read_by is not None and not read_by:
        what = "OOF monitor"  # nothing reads it: the whole training part was trained on
    else:
        what = "validation (OOF fold)"
    ax_loss.set_title(f"training and {what} loss")
    handles = [Line2D([], [], color="0.3", ls="-", label="training"),
               Line2D([], [], color="0.3", ls="--", label=what)]
    if any((events or {}).get(fold) for fold in folds):
        handles.append(Line2D([], [], color="tab:red", marker="x", ls="", mew=2, label="collapse caught"))
    ax_loss.legend(handles=handles, loc="upper right", frameon=False)
    ax_dice.set_xlabel("epoch (count)")
    ax_dice.set_ylabel("Kaggle Dice (cutoff 0.5, unitless)")
    kept = {"final": "final epoch kept", "best_inner": "best inner epoch kept", "refit": "refit kept"}.get(weights)
    ax_dice.set_title(f"{what} Dice (dot: its best epoch; {kept})" if kept else f"{what} Dice (dot: its best epoch)")
    ax_dice.legend(loc="lower right", frameon=False, ncol=2 if len(folds) > 5 else 1)
    for ax in (ax_loss, ax_dice):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"{title}: learning curves of {len(folds)} cross-validation folds")
    return fig


def _mean_sd(frame: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """Mean, sample sd (0 for a single row) and count of ``value`` per ``by``."""
    stats = frame.groupby(by, sort=True)[value].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)
    return stats


def _condition_order(conditions) -> list:
    known = [c for c in CONDITION_LABELS if c in set(conditions)]
    return known + sorted(set(conditions) - set(known), key=str)


def noise_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None):
    """Score vs Gaussian noise sigma, one line per training condition, mean ± sd over folds.

    ``scores``: ``condition, sigma, fold, kaggle_dice, dice, n_images`` with
    condition ``clean`` (trained on clean images) or ``noisy`` (trained with
    noise); every row is evaluated on images with noise ``sigma``. Left panel:
    Kaggle Dice; right panel: plain Dice. Each mean line carries the legend label
    of its condition; the band is ± one sample sd over folds.
    """
    apply_style(style)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), layout="constrained")
    colors = {"clean": "tab:blue", "noisy": "tab:orange"}
    extra = iter(["tab:green", "tab:red", "tab:purple", "tab:brown"])
    conditions = _condition_order(scores["condition"].unique())
    n_folds = scores["fold"].nunique()
    for condition in conditions:
        rows = scores[scores["condition"] == condition]
        color = colors.get(condition) or next(extra, "0.3")
        label = CONDITION_LABELS.get(condition, str(condition))
        for ax, value in zip(axes, ("kaggle_dice", "dice")):
            stats = _mean_sd(rows, "sigma", value)
            x = stats.index.to_numpy(dtype=float)
            mean, sd = stats["mean"].to_numpy(), stats["std"].to_numpy()
            ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
            ax.plot(x, mean, "o-", color=color, ms=3.5, lw=1.2, label=label)
    for ax, value in zip(axes, ("kaggle_dice", "dice")):
        ax.set_xlabel("Gaussian noise σ (8-bit intensity units)")
        ax.set_ylabel(SCORE_LABELS[value])
    axes[0].set_title("Kaggle Dice (OOF)")
    axes[1].set_title("plain Dice (OOF)")
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center",
               ncol=len(conditions), frameon=False)
    fig.suptitle(title or f"Robustness to Gaussian noise: mean ± sd over {n_folds} folds")
    return fig


def _size_key(size) -> str:
    return str(size)


def train_size_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None):
    """Score vs number of training images (log x), mean ± sd over (seed, fold) per size.

    ``scores``: ``size, seed, fold, n_train, kaggle_dice, dice``. Each size spec
    is one point at the mean ``n_train`` of its rows; ``size == "full"`` (the
    main model on the whole training part) is marked with a star. Faint dots are
    the single runs.
    """
    apply_style(style)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), layout="constrained")
    frame = scores.assign(_size=scores["size"].map(_size_key))
    is_full = frame["_size"] == "full"
    for ax, value in zip(axes, ("kaggle_dice", "dice")):
        stats = frame.groupby("_size").agg(
            n_train=("n_train", "mean"), mean=(value, "mean"), sd=(value, "std"), runs=(value, "count"))
        stats["sd"] = stats["sd"].fillna(0.0)
        stats = stats.sort_values("n_train")
        full = stats.loc[stats.index == "full"]
        ax.scatter(frame["n_train"].to_numpy(dtype=float), frame[value].to_numpy(dtype=float), s=6,
                   color="0.6", alpha=0.5, lw=0,
                   label="single runs (seed, fold)", zorder=1)
        ax.errorbar(stats["n_train"].to_numpy(dtype=float), stats["mean"].to_numpy(dtype=float),
                    yerr=stats["sd"].to_numpy(dtype=float), fmt="o-", color="tab:blue",
                    ms=4, lw=1.2, capsize=3, label="mean ± sd per size", zorder=2)
        if len(full):
            ax.plot(full["n_train"].to_numpy(dtype=float), full["mean"].to_numpy(dtype=float), "*",
                    color="tab:red", ms=12,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=3,
                    label=f"full training part ({int(round(full['n_train'].iloc[0]))} images)")
        ax.set_xscale("log")
        ax.set_xlabel("training images (count, log scale)")
        ax.set_ylabel(SCORE_LABELS[value])
    axes[0].set_title("Kaggle Dice (OOF)")
    axes[1].set_title("plain Dice (OOF)")
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center",
               ncol=3, frameon=False)
    n_runs = frame.loc[~is_full].groupby("_size").size()
    runs = f"{n_runs.min()}" if len(n_runs) and n_runs.min() == n_runs.max() else "several"
    fig.suptitle(title or f"Score vs training-set size: mean ± sd over {runs} runs (seeds × folds) per size")
    return fig


def pick_examples(per_image: pd.DataFrame, n_each: int = 1) -> dict[str, list[str]]:
    """Best, median and worst images by Kaggle Dice among images with a nerve.

    Only rows with ``true_area > 0`` count. Ties are broken by ``image_id``
    (ascending): the worst are the first rows sorted by ``(kaggle_dice,
    image_id)``, the best the first sorted by ``(-kaggle_dice, image_id)``, the
    median ones the ``n_each`` rows around the middle of the ascending order.
    Returns ``{"best": [...], "median": [...], "worst": [...]}`` (image ids as str).
    """
    if n_each < 1:
        raise ValueError(f"n_each must be >= 1, got {n_each}")
    rows = per_image.loc[per_image["true_area"] > 0, ["image_id", "kaggle_dice"]].copy()
    if rows.empty:
        raise ValueError("no image with a non-empty true mask")
    rows["image_id"] = rows["image_id"].astype(str)
    ascending = rows.sort_values(["kaggle_dice", "image_id"], kind="mergesort")["image_id"].tolist()
    rows["_neg"] = -rows["kaggle_dice"]
    descending = rows.sort_values(["_neg", "image_id"], kind="mergesort")["image_id"].tolist()
    n = len(ascending)
    start = (n - 1) // 2 - (n_each - 1) // 2
    if n >= 3 * n_each:
        start = min(max(start, n_each), n - 2 * n_each)
    start = min(max(start, 0), max(n - n_each, 0))
    return {
        "best": descending[:n_each],
        "median": ascending[start:start + n_each],
        "worst": ascending[:n_each],
    }


def _overlay(ax, image, mask, color, *, fill_alpha=0.35, outline=None):
    from matplotlib.colors import ListedColormap

    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    mask = np.asarray(mask) > 0
    if mask.any():
        ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([color]), alpha=fill_alpha,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.0)
    if outline is not None and np.asarray(outline).any():
        ax.contour((np.asarray(outline) > 0).astype(float), levels=[0.5], colors=["lime"],
                   linewidths=0.8, linestyles="--")


def qualitative_panel(images, truths, finals, dices, image_ids, labels, decision: str,
                      style: dict | None = None, title: str | None = None, raws=None):
    """Rows of examples; columns: image, image + truth, image + the final decision.

    ``finals`` are the masks the submission would write for these images (the decided pipeline:
    cutoff, minimum area, presence gate, candidates), so a panel never shows a prediction that the
    post-processing removed as if it counted; ``raws`` (optional) the plain ``p > cutoff`` masks,
    whose pixels the post-processing removed are outlined in orange. ``dices`` are the images'
    Kaggle Dice of that final decision, ``labels`` e.g. best/median/worst, ``decision`` a short
    description of the pipeline (the third column's title). The first panel of each row is titled
    ``"{label} · {image_id} · Dice {dice:.2f}"``; the decision panel outlines the truth (dashed). A
    figure legend below the panels says which colour and line is which (:func:`qualitative_legend`).
    """
    apply_style(style)
    # a list (images of several sizes) or a stack; each row is drawn at its own size
    images = [np.asarray(image) for image in images]
    truths = [np.asarray(truth) for truth in truths]
    finals = [np.asarray(final).astype(bool) for final in finals]
    n = len(images)
    if not (len(truths) == len(finals) == len(dices) == len(image_ids) == len(labels) == n) or n == 0:
        raise ValueError("images, truths, finals, dices, image_ids and labels need the same non-zero length")
    raws = None if raws is None else [np.asarray(raw).astype(bool) for raw in raws]
    h, w = images[0].shape[:2]
    panel_w = 2.6
    fig, axes = plt.subplots(n, 3, figsize=(3 * panel_w, n * panel_w * h / w + 0.6),
                             squeeze=False, layout="constrained")
    for i in range(n):
        ax_img, ax_true, ax_pred = axes[i]
        ax_img.imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        _overlay(ax_true, images[i], truths[i], "lime")
        _overlay(ax_pred, images[i], finals[i], "red", outline=truths[i])
        removed = 0
        if raws is not None:
            dropped = raws[i] & ~finals[i]
            removed = int(dropped.sum())
            if removed:
                ax_pred.contour(dropped.astype(float), levels=[0.5], colors=["orange"], linewidths=0.8)
        ax_img.set_title(f"{labels[i]} · {image_ids[i]} · Dice {float(dices[i]):.2f}", loc="left")
        ax_true.set_title(f"ground truth ({int(np.asarray(truths[i]).astype(bool).sum())} px)")
        note = f", {removed} px removed" if raws is not None else ""
        ax_pred.set_title(f"{decision}\n({int(finals[i].sum())} px{note})", fontsize="small")
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([0, images[i].shape[1] - 1])
            ax.set_yticks([0, images[i].shape[0] - 1])
            ax.tick_params(labelsize="x-small", length=2)
            if i < n - 1:
                ax.set_xticklabels([])
            if j > 0:
                ax.set_yticklabels([])
    for ax in axes[-1]:
        same = len({image.shape[:2] for image in images}) == 1
        ax.set_xlabel(f"x (px of the {h}×{w} image)" if same else "x (px of each image)", fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel("y (px)", fontsize="small")
    fig.legend(handles=qualitative_legend(raws is not None), loc="outside lower center",
               ncol=2, frameon=False, fontsize="small")
    fig.suptitle(title or "OOF examples of one model: image, truth, its final decision")
    return fig


#: the qualitative panel's legend entries: (kind, colour, text)
QUALITATIVE_LEGEND = (
    ("fill", "lime", "truth (green fill, middle column)"),
    ("fill", "red", "final decision (red fill, right column)"),
    ("dashed", "lime", "truth outline (green dashed, right column)"),
    ("line", "orange", "removed by post-processing (orange outline)"),
)


def qualitative_legend(removed: bool = True) -> list:
    """The handles of :func:`qualitative_panel`'s legend (the orange entry only when ``removed``)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for kind, color, text in QUALITATIVE_LEGEND:
        if kind == "fill":
            handles.append(Patch(facecolor=color, edgecolor=color, alpha=0.5, label=text))
        elif kind == "dashed":
            handles.append(Line2D([], [], color=color, ls="--", lw=0.8, label=text))
        elif removed:
            handles.append(Line2D([], [], color=color, lw=0.8, label=text))
    return handles


def area_histogram(per_image: pd.DataFrame, min_area: int, style: dict | None = None,
                   title: str | None = None):
    """Histograms of non-zero true and predicted mask areas (px at 420×580), with the min-area line.

    The legend gives the number of non-empty masks and of empty ones for truth
    and prediction.
    """
    apply_style(style)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    true = per_image["true_area"].to_numpy(dtype=float)
    pred = per_image["pred_area"].to_numpy(dtype=float)
    nonzero = np.concatenate([true[true > 0], pred[pred > 0]])
    if len(nonzero):
        bins = np.histogram_bin_edges(np.append(nonzero, min_area), bins=40)
    else:
        bins = np.linspace(0, max(min_area, 1) * 2, 41)
    for values, color, name in ((true, "tab:green", "true"), (pred, "tab:purple", "predicted")):
        ax.hist(values[values > 0], bins=bins, color=color, alpha=0.45,
                label=f"{name} masks: {int((values > 0).sum())} non-empty, {int((values == 0).sum())} empty")
        ax.hist(values[values > 0], bins=bins, color=color, histtype="step", lw=1.0)
    ax.axvline(min_area, color="black", ls="--", lw=1.0, label=f"chosen minimum area: {int(min_area)} px")
    ax.set_xlabel(f"mask area ({ORIGINAL_PIXELS})")
    ax.set_ylabel("images (count)")
    ax.set_title(title or f"Mask areas of {len(per_image)} OOF images: truth vs tuned prediction")
    fig.legend(handles=ax.get_legend_handles_labels()[0], loc="outside lower center", ncol=2,
               frameon=False)
    return fig
