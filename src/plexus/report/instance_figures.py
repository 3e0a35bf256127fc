"""Figures of nuclei instance segmentation (DSB2018 mean AP), from the files of the tuning stage.

Every function takes data already read from ``results/`` and an optional style dict (as in
:mod:`plexus.report.figures`) and returns a matplotlib Figure; the caller writes it with
:func:`plexus.report.figures.save`.

* :func:`tuning_surface_figure`: the OOF mean AP of every post-processing candidate of
  ``results/tuning/{name}/grid.csv``: one heatmap panel per way of splitting objects
  (components, watershed at each seed spacing, boundary seeds), thresholds as rows and
  minimum sizes as columns; the chosen candidate is outlined and starred, the baseline
  (cutoff 0.5 + connected components) marked "B".
* :func:`ap_vs_iou_figure`: mean AP at each IoU threshold, one line per model/ensemble.
* :func:`qualitative_figure`: images with the true and the predicted instance outlines.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from plexus.report.figures import apply_style  # noqa: E402

GRID_COLUMNS = ("threshold", "split", "min_size", "mean_ap", "chosen", "baseline")
CURVE_COLUMNS = ("name", "iou", "ap")
TRUE_COLOR = (0.1, 0.9, 0.2)
PRED_COLOR = (1.0, 0.2, 0.8)


def _check(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)} (needs {', '.join(columns)})")
    if frame.empty:
        raise ValueError(f"{what}: the frame has no rows")


def _split_order(splits) -> list[str]:
    """Components first, then the watershed spacings ascending, then boundary seeds."""
    def key(split: str):
        if split == "components":
            return (0, 0)
        if split.startswith("watershed"):
            return (1, int(split.rsplit("=", 1)[-1]))
        return (2, 0)

    return sorted(pd.unique(pd.Series(list(splits))), key=key)


def tuning_surface_figure(grid: pd.DataFrame, title: str = "", style: dict | None = None):
    """Heatmaps of OOF mean AP: threshold (rows) x minimum size (columns), one panel per split method."""
    _check(grid, GRID_COLUMNS, "tuning grid")
    style = apply_style(style)
    thresholds = list(pd.unique(grid["threshold"]))  # grid order: cutoffs ascending, Otsu, hysteresis
    sizes = sorted(int(s) for s in pd.unique(grid["min_size"]))
    splits = _split_order(grid["split"])
    vmin, vmax = float(grid["mean_ap"].min()), float(grid["mean_ap"].max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    width = max(2.2, 0.55 * len(sizes) + 1.2)
    fig, axes = plt.subplots(1, len(splits), figsize=(width * len(splits) + 1.6, 0.45 * len(thresholds) + 2.0),
                             squeeze=False, sharey=True, layout="constrained")
    image = None
    for ax, split in zip(axes[0], splits):
        part = grid[grid["split"] == split]
        values = np.full((len(thresholds), len(sizes)), np.nan)
        for row in part.itertuples():
            values[thresholds.index(row.threshold), sizes.index(int(row.min_size))] = row.mean_ap
        image = ax.imshow(np.ma.masked_invalid(values), cmap=style["cmap"], vmin=vmin, vmax=vmax, aspect="auto")
        for (r, c), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(c, r, f"{value:.3f}", ha="center", va="center", fontsize=max(style["font_size"] - 2, 5),
                        color="white" if value < (vmin + vmax) / 2 else "black")
        for row in part.itertuples():
            r, c = thresholds.index(row.threshold), sizes.index(int(row.min_size))
            if row.chosen:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
                ax.plot(c + 0.38, r - 0.3, marker="*", color="red", markersize=9, linestyle="none")
            if row.baseline:
                ax.text(c - 0.42, r - 0.42, "B", color="red", ha="left", va="top", fontweight="bold",
                        fontsize=style["font_size"] - 1)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_yticks(range(len(thresholds)), thresholds)
        ax.set_xlabel("minimum object size (px)")
        ax.set_title(split)
    axes[0][0].set_ylabel("foreground threshold")
    fig.colorbar(image, ax=list(axes[0]), label="OOF mean AP (IoU 0.50:0.95)", shrink=0.9)
    chosen = grid[grid["chosen"].astype(bool)]
    text = (f"chosen: {chosen['threshold'].iloc[0]}, {chosen['split'].iloc[0]}, "
            f"min size {int(chosen['min_size'].iloc[0])} (mean AP {chosen['mean_ap'].iloc[0]:.3f})"
            if len(chosen) else "")
    fig.suptitle(f"{title + ': ' if title else ''}post-processing tuned on OOF predictions (B: baseline)\n{text}")
    return fig


def ap_vs_iou_figure(curves: pd.DataFrame, style: dict | None = None, title: str | None = None):
    """Mean AP (tuned post-processing) against the IoU threshold, one line per model/ensemble."""
    _check(curves, CURVE_COLUMNS, "AP curves")
    apply_style(style)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    names = list(pd.unique(curves["name"]))
    colors = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        part = curves[curves["name"] == name].sort_values("iou")
        mean = part["ap"].mean()
        ax.plot(part["iou"], part["ap"], marker="o", markersize=3, color=colors(k % 10),
                label=f"{name} (mean {mean:.3f})")
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("mean precision TP/(TP+FP+FN)")
    ax.set_ylim(0, 1)
    ax.set_xticks(np.round(np.arange(0.5, 1.0, 0.05), 2))
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(title or "OOF average precision vs IoU threshold")
    return fig


def outlines(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another value (background, another object or the image edge)."""
    labels = np.asarray(labels)
    padded = np.pad(labels, 1, mode="constant", constant_values=0)
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(labels.shape, dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        edge |= padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx] != centre
    return edge & (labels > 0)


def _display(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-9), 0, 1)


def _with_outline(image: np.ndarray, labels: np.ndarray, color) -> np.ndarray:
    out = _display(image).copy()
    out[outlines(labels)] = color
    return out


def _count(labels: np.ndarray) -> int:
    values = np.unique(labels)
    return int((values != 0).sum())


def qualitative_figure(images, truths, preds, image_ids, aps, title: str = "", style: dict | None = None):
    """One row per image: the image, its true instances' outlines, the predicted ones' (with the AP)."""
    if not (len(images) == len(truths) == len(preds) == len(image_ids) == len(aps)) or not len(images):
        raise ValueError("qualitative_figure needs as many images, truths, predictions, ids and APs, at least one")
    apply_style(style)
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(8.4, 2.8 * n), squeeze=False)
    for row, (image, true, pred, image_id, ap) in enumerate(zip(images, truths, preds, image_ids, aps)):
        short = str(image_id)[:10]
        panels = [(_display(image), f"{short} ({image.shape[0]}x{image.shape[1]})"),
                  (_with_outline(image, true, TRUE_COLOR), f"true: {_count(true)} nuclei"),
                  (_with_outline(image, pred, PRED_COLOR), f"predicted: {_count(pred)}, AP {ap:.3f}")]
        for ax, (shown, label) in zip(axes[row], panels):
            ax.imshow(shown, interpolation="nearest")
            ax.set_title(label)
            ax.set_axis_off()
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color=TRUE_COLOR, lw=2, label="true nuclei (green outlines, middle column)"),
                        Line2D([], [], color=PRED_COLOR, lw=2,
                               label="final instances (magenta outlines, right column)")],
               loc="lower center", ncol=2, frameon=False, fontsize="small")
    fig.suptitle(title or "OOF instances: true (green) and predicted (magenta) outlines", y=1.0)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
