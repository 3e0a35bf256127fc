"""Figures for multi-class / multi-channel segmentation studies, from long-format frames.

Every function takes one long-format :class:`pandas.DataFrame` (one row per
score), an optional style dict (as in :mod:`plexus.report.figures`) and an
optional title (replacing the default figure title), and returns a matplotlib
Figure; the caller writes it with :func:`plexus.report.figures.save`.

Classes (and model names, and removed channels other than ``"none"``) are
drawn in the order they first appear in the frame, so the caller controls the
order by sorting its rows. Means and sds are taken in two stages: first the
mean per run (fold, or seed and fold), then mean and sample sd (0 for a single
run) over runs. A missing column or an empty frame raises :class:`ValueError`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from plexus.report.figures import CONDITION_LABELS, apply_style, colorblind  # noqa: E402
from plexus.report.run_summary import BASELINE_NAME  # noqa: E402

METRIC_ORDER = ("dice", "iou", "sensitivity", "precision")
METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "sensitivity": "sensitivity", "precision": "precision"}
NO_CHANNEL_REMOVED = "none"
CONDITION_COLORS = {"clean": "tab:blue", "noisy": "tab:orange"}
NOISE_XLABEL = "noise sigma (native intensity units)"

SCORES_COLUMNS = ("name", "class", "metric", "mean", "lo", "hi")
NOISE_COLUMNS = ("condition", "sigma", "class", "fold", "dice")
TRAIN_SIZE_COLUMNS = ("n_train", "seed", "class", "fold", "dice")
MISSING_CHANNEL_COLUMNS = ("removed", "class", "fold", "dice")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _check(frame: pd.DataFrame, columns, what: str) -> None:
    """Raise ValueError naming the absent ``columns`` of ``frame``, or when it has no rows."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)} (needs {', '.join(columns)})")
    if frame.empty:
        raise ValueError(f"{what}: the frame has no rows")


def _appearance(values) -> list:
    """Distinct values in order of first appearance."""
    return list(pd.unique(pd.Series(list(values))))


def _palette(n: int) -> list:
    """``n`` colours of the colour-blind-safe palette (:data:`plexus.report.figures.COLORBLIND`), cycling."""
    return colorblind(n)


def _run_stats(frame: pd.DataFrame, by: list[str], runs: list[str], value: str) -> pd.DataFrame:
    """Columns ``by`` + mean, sample sd (0 for one run) and number of runs of the per-run means of ``value``."""
    per_run = frame.groupby(by + runs, sort=False, dropna=False)[value].mean().reset_index()
    stats = per_run.groupby(by, sort=False, dropna=False)[value].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats


def _runs_text(counts, unit: str) -> str:
    counts = [int(c) for c in counts]
    if counts and min(counts) == max(counts):
        return f"{counts[0]} {unit.removesuffix('s') if counts[0] == 1 else unit}"
    return f"several {unit}"


def _grouped_bars(ax, classes: list, hues: list, colors: dict, values: dict) -> None:
    """Bars at x = class index, one offset bar per hue; ``values[(hue, cls)] = (height, err_low, err_high)``.

    Each hue is one BarContainer (labelled with the hue, first patch too) and one
    ErrorbarContainer (``_nolegend_``); a missing (hue, class) pair gets no bar.
    """
    width = 0.8 / max(len(hues), 1)
    for j, hue in enumerate(hues):
        offset = (j - (len(hues) - 1) / 2) * width
        cells = [(i, values[(hue, cls)]) for i, cls in enumerate(classes) if (hue, cls) in values]
        if not cells:
            continue
        x = np.array([i + offset for i, _ in cells], dtype=float)
        height = np.array([v[0] for _, v in cells], dtype=float)
        low = np.maximum(np.array([v[1] for _, v in cells], dtype=float), 0.0)
        high = np.maximum(np.array([v[2] for _, v in cells], dtype=float), 0.0)
        ax.bar(x, height, width=width * 0.95, color=colors[hue], label=str(hue), zorder=2)
        ax.errorbar(x, height, yerr=np.vstack([low, high]), fmt="none", ecolor="0.15", elinewidth=0.9,
                    capsize=2.5, label="_nolegend_", zorder=3)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes],
                  rotation=30 if len(classes) > 4 else 0, ha="right" if len(classes) > 4 else "center")
    ax.set_xlim(-0.5, len(classes) - 0.5)
    ax.set_xlabel("class")
    ax.grid(axis="y", color="0.9", lw=0.6, zorder=0)


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------

def class_scores_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None):
    """Per-class scores of models / ensembles with 95% CIs, one panel per metric.

    ``scores``: ``name, class, metric, mean, lo, hi`` (one row per name, class and
    metric; ``lo``/``hi`` the 95% CI). Panels follow ``dice, iou, sensitivity,
    precision`` (those present; any other metric after them, in order of
    appearance). In each panel the bars are grouped by class, one colour per
    name (the same in every panel), with asymmetric error bars from ``lo`` to
    ``hi`` (a bound on the wrong side of the mean gives a zero-length arm); the
    y axis runs from 0 to 1, shared by every panel (as is the class axis). The figure legend names
    the models / ensembles. Rows of the all-background baseline (name ``all_background``, the
    results table's) are no bars: each is a dashed segment across its class's group, and the legend
    names it.
    """
    _check(scores, SCORES_COLUMNS, "class_scores_figure")
    if scores.duplicated(["name", "class", "metric"]).any():
        raise ValueError("class_scores_figure: more than one row for some (name, class, metric)")
    apply_style(style)
    present = _appearance(scores["metric"])
    metrics = [m for m in METRIC_ORDER if m in present] + [m for m in present if m not in METRIC_ORDER]
    is_baseline = scores["name"] == BASELINE_NAME
    baseline, scores = scores[is_baseline], scores[~is_baseline]
    names = _appearance(scores["name"])
    classes = _appearance(pd.concat([scores["class"], baseline["class"]]))
    colors = dict(zip(names, _palette(len(names))))
    ncols = min(len(metrics), 2)
    nrows = int(np.ceil(len(metrics) / ncols))
    panel_w = min(max(3.4, 0.9 + 0.2 * len(classes) * len(names)), 8.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, 2.8 * nrows + 0.6), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for ax in axes.flat[len(metrics):]:
        fig.delaxes(ax)
    for ax, metric in zip(axes.flat, metrics):
        rows = scores[scores["metric"] == metric]
        values = {(name, cls): (mean, mean - lo, hi - mean)
                  for name, cls, mean, lo, hi in zip(rows["name"], rows["class"], rows["mean"].astype(float),
                                                     rows["lo"].astype(float), rows["hi"].astype(float))}
        _grouped_bars(ax, classes, names, colors, values)
        _baseline_segments(ax, classes, baseline[baseline["metric"] == metric])
        label = METRIC_LABELS.get(metric, str(metric))
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel(f"{label} (mean, 95% CI)")
        ax.set_title(label)
        ax.tick_params(labelbottom=True, labelleft=True)  # shared axes: every panel keeps its tick labels
    handles = [Patch(color=colors[n], label=str(n)) for n in names]
    if len(baseline):
        handles.append(Line2D([], [], **BASELINE_STYLE, label=BASELINE_TEXT))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle(title or "Per-class scores of models and ensembles: mean with 95% CI")
    return fig


#: the legend text and line style of the all-background baseline in the per-class score panels
BASELINE_TEXT = "all-background prediction (dashed)"
BASELINE_STYLE = {"color": "0.2", "ls": "--", "lw": 1.2}


def _baseline_segments(ax, classes: list, rows: pd.DataFrame) -> None:
    """The all-background prediction's mean score of each class (``rows``: its rows of one metric) as a
    dashed horizontal segment across that class's group of bars; the first one labelled."""
    label = BASELINE_TEXT
    for cls, mean in zip(rows["class"], rows["mean"].astype(float)):
        if cls in classes and np.isfinite(mean):
            i = classes.index(cls)
            ax.plot([i - 0.45, i + 0.45], [mean, mean], **BASELINE_STYLE, label=label, zorder=4)
            label = "_nolegend_"


def _condition_order(conditions) -> list:
    """``clean``, ``noisy`` (those present) first, then the rest sorted by their text."""
    conditions = set(conditions)
    known = [c for c in CONDITION_LABELS if c in conditions]
    return known + sorted(conditions - set(known), key=str)


def class_noise_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None, *,
                       value: str = "dice", label: str = "Dice"):
    """Dice vs noise sigma, one panel per class, one line per training condition, mean ± sd over folds.

    ``scores``: ``condition, sigma, class, fold, dice``; ``sigma`` is the noise
    standard deviation in the images' native intensity units. Conditions
    ``clean`` and ``noisy`` come first and are labelled as in
    :func:`plexus.report.figures.noise_figure`; any other condition is labelled
    with its own text. Each mean line (``"o-"``) carries its condition's label;
    the band is ± one sample sd over folds. Panels share the y axis.
    """
    _check(scores, NOISE_COLUMNS[:-1] + (value,), "class_noise_figure")
    apply_style(style)
    classes = _appearance(scores["class"])
    conditions = _condition_order(scores["condition"].unique())
    extra = iter(["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"])
    colors = {c: CONDITION_COLORS.get(c) or next(extra, "0.3") for c in conditions}
    labels = {c: CONDITION_LABELS.get(c, str(c)) for c in conditions}
    ncols = min(len(classes), 3)
    nrows = int(np.ceil(len(classes) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows + 0.6), squeeze=False,
                             sharey=True, layout="constrained")
    for ax in axes.flat[len(classes):]:
        fig.delaxes(ax)
    stats = _run_stats(scores, ["class", "condition", "sigma"], ["fold"], value)
    for ax, cls in zip(axes.flat, classes):
        for condition in conditions:
            rows = stats[(stats["class"] == cls) & (stats["condition"] == condition)].sort_values("sigma")
            if rows.empty:
                continue
            x = rows["sigma"].to_numpy(dtype=float)
            mean, sd = rows["mean"].to_numpy(dtype=float), rows["std"].to_numpy(dtype=float)
            ax.fill_between(x, mean - sd, mean + sd, color=colors[condition], alpha=0.2, lw=0)
            ax.plot(x, mean, "o-", color=colors[condition], ms=3.5, lw=1.2, label=labels[condition])
        ax.set_xlabel(NOISE_XLABEL)
        ax.set_ylabel(f"{label} (mean ± sd over folds)")
        ax.yaxis.set_tick_params(labelleft=True)
        ax.set_title(str(cls))
    fig.legend(handles=[Line2D([], [], color=colors[c], marker="o", ms=3.5, lw=1.2, label=labels[c])
                        for c in conditions],
               loc="outside lower center", ncol=min(len(conditions), 4), frameon=False)
    n_folds = _runs_text(stats["count"], "folds")
    fig.suptitle(title or f"Per-class robustness to noise: {label}, mean ± sd over {n_folds}")
    return fig


def class_train_size_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None, *,
                            value: str = "dice", label: str = "Dice"):
    """Dice vs number of training images, one line per class, mean ± sd over (seed, fold) runs.

    ``scores``: ``n_train, seed, class, fold, dice``. Rows are grouped by their
    exact ``n_train``, or, when the frame has an optional ``size`` column (a
    size spec whose runs may differ slightly in ``n_train`` from fold to fold),
    by ``size``, drawn at the mean ``n_train`` of its rows. Each class is one
    errorbar line (``"o-"``, labelled with the class) through the means, with
    error bars ± one sample sd over the (seed, fold) runs. The x axis is
    logarithmic when every ``n_train`` is positive. The legend (titled
    ``class``) sits on the axes.
    """
    _check(scores, TRAIN_SIZE_COLUMNS[:-1] + (value,), "class_train_size_figure")
    apply_style(style)
    classes = _appearance(scores["class"])
    colors = dict(zip(classes, _palette(len(classes))))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    key = "size" if "size" in scores.columns else "n_train"
    per_run = scores.groupby(["class", key, "seed", "fold"], sort=False, dropna=False).agg(
        dice=(value, "mean"), x=("n_train", "mean")).reset_index()
    stats = per_run.groupby(["class", key], sort=False, dropna=False).agg(
        mean=("dice", "mean"), std=("dice", "std"), count=("dice", "count"), x=("x", "mean")).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    for cls in classes:
        rows = stats[stats["class"] == cls].sort_values("x")
        ax.errorbar(rows["x"].to_numpy(dtype=float), rows["mean"].to_numpy(dtype=float),
                    yerr=rows["std"].to_numpy(dtype=float), fmt="o-", color=colors[cls], ms=4, lw=1.2,
                    capsize=3, label=str(cls))
    log_x = bool((scores["n_train"].to_numpy(dtype=float) > 0).all())
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("training images (count, log scale)" if log_x else "training images (count)")
    ax.set_ylabel(f"{label} (mean ± sd over seeds × folds)")
    ax.legend(title="class", loc="lower right", frameon=False)
    runs = _runs_text(stats["count"], "runs")
    ax.set_title(title or f"Per-class {label} vs training-set size: mean ± sd over {runs} (seeds × folds)")
    return fig


def _removed_label(removed) -> str:
    return "none (all channels)" if removed == NO_CHANNEL_REMOVED else f"without {removed}"


def missing_channel_figure(scores: pd.DataFrame, style: dict | None = None, title: str | None = None):
    """Per-class Dice with one input channel removed, grouped bars, mean ± sd over folds.

    ``scores``: ``removed, class, fold, dice``; ``removed`` is the name of the
    channel left out at evaluation, or ``"none"`` when all channels are present.
    Bars are grouped by class, one colour per ``removed`` value with ``"none"``
    first (then the channels in order of appearance); each hue's BarContainer is
    labelled ``"none (all channels)"`` or ``"without {channel}"``, as are the
    figure-legend entries. Error bars are ± one sample sd over folds.
    """
    _check(scores, MISSING_CHANNEL_COLUMNS, "missing_channel_figure")
    apply_style(style)
    present = _appearance(scores["removed"])
    removed = [r for r in present if r == NO_CHANNEL_REMOVED] + [r for r in present if r != NO_CHANNEL_REMOVED]
    classes = _appearance(scores["class"])
    labels = {r: _removed_label(r) for r in removed}
    colors = dict(zip((labels[r] for r in removed), _palette(len(removed))))
    stats = _run_stats(scores, ["removed", "class"], ["fold"], "dice")
    values = {(labels[r], cls): (mean, sd, sd)
              for r, cls, mean, sd in zip(stats["removed"], stats["class"], stats["mean"], stats["std"])}
    width = min(max(4.8, 1.2 + 0.3 * len(classes) * len(removed)), 12.0)
    fig, ax = plt.subplots(figsize=(width, 3.8), layout="constrained")
    _grouped_bars(ax, classes, [labels[r] for r in removed], colors, values)
    top = float(np.nanmax((stats["mean"] + stats["std"]).to_numpy(dtype=float), initial=1.0))
    ax.set_ylim(0.0, max(1.0, top * 1.02))
    ax.set_ylabel("Dice (mean ± sd over folds)")
    fig.legend(handles=[Patch(color=colors[labels[r]], label=labels[r]) for r in removed],
               loc="outside lower center", ncol=min(len(removed), 4), frameon=False)
    n_folds = _runs_text(stats["count"], "folds")
    ax.set_title(title or f"Per-class Dice with one channel removed: mean ± sd over {n_folds}")
    return fig


def min_area_figure(grid: pd.DataFrame, best: dict, title: str, style: dict | None = None):
    """Mean OOF Dice of each class against its minimum area (``grid.csv``: class, min_area, dice),
    the tuned area of each class marked."""
    _check(grid, ("class", "min_area", "dice"), "tuning grid")
    apply_style(style)
    classes = _appearance(grid["class"])
    colors = dict(zip(classes, _palette(len(classes))))
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for cls in classes:
        part = grid[grid["class"] == cls].sort_values("min_area")
        ax.plot(part["min_area"], part["dice"], marker="o", markersize=3, color=colors[cls], label=cls)
        chosen = best["classes"][cls]
        ax.scatter([chosen["min_area"]], [chosen["dice"]], s=70, facecolors="none", edgecolors=colors[cls],
                   linewidths=1.5, zorder=3)
    ax.set_xlabel("minimum component area (pixels of the original image)")
    ax.set_ylabel("mean per-image Dice (OOF)")
    ax.set_title(title)
    ax.legend(title="class (circle: tuned)", fontsize="small")
    fig.tight_layout()
    return fig


#: the title of the label panels' legend: one colour per class, the same in both label-map columns
LABEL_LEGEND_TITLE = "colour = class, the same in the truth and final columns"


def label_legend(class_names, colors) -> list:
    """The legend handles of a label panel: the background (black; ignored truth pixels drawn so too),
    then one patch per foreground class in ``colors``."""
    background = f"{class_names[0]} (black; ignored truth pixels too)"
    return [Patch(facecolor=colors[0], edgecolor="0.5", label=background),
            *(Patch(color=colors[c], label=str(class_names[c])) for c in range(1, len(class_names)))]


def label_panel(images, truths, preds, image_ids, scores, labels, class_names, style: dict | None = None,
                title: str = ""):
    """Rows of (image, true label map, final label map) with each row's mean Dice: the decision of one
    model (argmax, then its tuned per-class minimum areas), not the raw probabilities. The legend
    (:func:`label_legend`) names the colour of each class, shared by the truth and final columns."""
    from matplotlib.colors import ListedColormap

    apply_style(style)
    n_classes = len(class_names)
    colors = ["black", *_palette(n_classes - 1)]
    cmap = ListedColormap(colors)
    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.5 * len(images)), squeeze=False)
    for row, (image, truth, pred, image_id, score, label) in enumerate(
            zip(images, truths, preds, image_ids, scores, labels)):
        shown = image if image.ndim == 2 else image[..., :3] if image.shape[-1] >= 3 else image[..., 0]
        axes[row, 0].imshow(shown, cmap="gray")
        axes[row, 0].set_title(f"{label}: {image_id}", fontsize="small")
        for col, (labelmap, name) in enumerate(((truth, "truth"), (pred, f"final, mean Dice {score:.2f}")), 1):
            axes[row, col].imshow(np.where(labelmap == 255, 0, labelmap), cmap=cmap, vmin=0, vmax=n_classes - 1,
                                  interpolation="nearest")
            axes[row, col].set_title(name, fontsize="small")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.legend(handles=label_legend(class_names, colors), loc="lower center", ncol=min(4, n_classes),
               fontsize="small", title=LABEL_LEGEND_TITLE, title_fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def study_figure(study: str, scores: pd.DataFrame, style: dict | None = None, *, value: str = "dice",
                 label: str = "Dice"):
    """The figure of one robustness study (``noise``, ``train_size``, ``missing_channel``) of a
    per-unit score table (a class or region per row, in ``class``)."""
    if study == "noise":
        return class_noise_figure(scores, style, value=value, label=label)
    if study == "train_size":
        return class_train_size_figure(scores, style, value=value, label=label)
    if study == "missing_channel":
        return missing_channel_figure(scores, style)
    raise ValueError(f"unknown study {study!r} (noise, train_size, missing_channel)")
