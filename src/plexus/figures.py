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

from plexus.atomic import atomic_path  # noqa: E402

DEFAULT_STYLE = {"dpi": 150, "font_size": 9, "cmap": "viridis"}


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
    """Mean OOF Kaggle Dice over probability cutoff (rows) x minimum area (columns)."""
    style = apply_style(style)
    table = grid.pivot(index="cutoff", columns="min_area", values="score").sort_index()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    image = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap=style["cmap"],
                      extent=_extent(table.columns.to_numpy(), table.index.to_numpy()))
    ax.plot(best["min_area"], best["cutoff"], marker="*", color="white", markersize=12,
            markeredgecolor="black", label=f"best {best['score']:.3f}")
    ax.set_xlabel("minimum mask area (px at 420×580)")
    ax.set_ylabel("probability cutoff")
    ax.set_title(f"{title}: OOF score over cutoff × minimum area")
    ax.legend(loc="upper right", frameon=True)
    fig.colorbar(image, ax=ax, label="mean Kaggle Dice")
    return fig


def _extent(x, y):
    dx = (x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    dy = (y[1] - y[0]) / 2 if len(y) > 1 else 0.05
    return (x[0] - dx, x[-1] + dx, y[0] - dy, y[-1] + dy)


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
