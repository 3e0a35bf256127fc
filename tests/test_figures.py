import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from plexus.report import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _histories(n_folds=3, epochs=6):
    rng = np.random.default_rng(0)
    out = {}
    for fold in range(n_folds):
        e = np.arange(1, epochs + 1)
        out[fold] = pd.DataFrame({"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e,
                                  "val_dice": 0.5 + 0.05 * rng.random(epochs), "seconds": 1.0})
    return out


def _noise_scores():
    rng = np.random.default_rng(1)
    rows = []
    for condition in ("noisy", "clean"):  # deliberately not in display order
        for sigma in (0, 10, 20):
            for fold in range(4):
                score = 0.7 - 0.01 * sigma * (condition == "clean") + 0.05 * rng.random()
                rows.append({"condition": condition, "sigma": sigma, "fold": fold, "kaggle_dice": score,
                             "dice": score - 0.3, "n_images": 50})
    return pd.DataFrame(rows)


def _size_scores():
    rng = np.random.default_rng(2)
    rows = []
    for size, n in (("20", 20), ("0.5", 200), ("full", 400)):
        for seed in ((0,) if size == "full" else (1, 2)):
            for fold in range(3):
                n_train = n + int(rng.integers(-5, 6))
                rows.append({"size": size, "seed": seed, "fold": fold, "n_train": n_train,
                             "kaggle_dice": 0.4 + 0.05 * np.log10(n_train) + 0.02 * rng.random(),
                             "dice": 0.1 + 0.05 * np.log10(n_train)})
    return pd.DataFrame(rows)


def _per_image():
    return pd.DataFrame({
        "image_id": ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2"],
        "subject": [1, 1, 2, 2, 3, 3, 4, 4],
        "fold": [0, 0, 1, 1, 0, 0, 1, 1],
        "true_area": [0, 5000, 6000, 0, 7000, 4000, 8000, 5500],
        "pred_area": [0, 4500, 0, 3500, 7200, 4100, 0, 6000],
        "kaggle_dice": [1.0, 0.8, 0.0, 0.0, 0.9, 0.6, 0.0, 0.7],
    })


def _qualitative_inputs(n=3, h=16, w=20):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:h, :w]
    images = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    truths = np.stack([((yy - 8) ** 2 + (xx - 10 - i) ** 2 < 20) for i in range(n)]).astype(np.uint8)
    probs = np.stack([np.exp(-((yy - 8) ** 2 + (xx - 9) ** 2) / 30) for _ in range(n)]).astype(np.float16)
    return images, truths, probs


def _comparison():
    from plexus.report.comparison import comparison_table, pairwise_table

    rng = np.random.default_rng(0)
    frames = {}
    for shift, name in enumerate(["unet", "attn2head", "main"]):
        n = 40
        frame = pd.DataFrame({"image_id": [str(i) for i in range(n)], "subject": np.arange(n) // 4,
                              "true_area": np.where(np.arange(n) % 2, 5000, 0),
                              "presence_score": rng.random(n)})
        for column in ("untuned", "tuned", "postprocessed", "cross_fitted", "dice", "iou", "sensitivity",
                       "precision"):
            frame[column] = np.clip(0.5 + 0.05 * shift + 0.2 * rng.standard_normal(n), 0, 1)
        frames[name] = frame
    entries = {name: {"kind": "ensemble" if name == "main" else "model", "members": [name], "parameters": 1000,
                      "per_image": frame} for name, frame in frames.items()}
    return comparison_table(entries, n_boot=50), pairwise_table(frames, n_boot=50)


def test_tuning_heatmap_star_marks_the_best_cell():
    grid = pd.DataFrame([{"cutoff": c, "min_area": a, "score": 0.5 + c / 10 - a / 1e5}
                         for c in (0.3, 0.5, 0.7) for a in (0, 1000, 2000)])
    fig = figures.tuning_heatmap(grid, {"cutoff": 0.5, "min_area": 1000, "score": 0.54}, "unet")
    ax = fig.axes[0]
    [star] = [line for line in ax.lines if line.get_marker() == "*"]
    # rows run from the highest cutoff (top, row 0) down: 0.5 is row 1; 1000 is column 1
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (1.5, 1.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.70", "0.50", "0.30"]


def _mesh(ax):
    from matplotlib.collections import QuadMesh

    [mesh] = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return mesh


def test_tuning_heatmap_draws_the_table_first_row_on_top():
    """Cell (i, j) is the table's row i (cutoffs falling) and column j (areas rising), NaN blank; the
    ticks sit at the cell centres and name the rows and columns; row 0 is at the top."""
    cutoffs, areas = (0.3, 0.5, 0.7), (0, 1000, 2000, 3000)
    grid = pd.DataFrame([{"cutoff": c, "min_area": a, "score": np.nan if (c, a) == (0.5, 2000) else c + a / 1e4}
                         for c in cutoffs for a in areas])
    fig = figures.tuning_heatmap(grid, {"cutoff": 0.7, "min_area": 3000, "score": 1.0}, "unet")
    ax = fig.axes[0]
    drawn = _mesh(ax).get_array()
    expected = np.array([[c + a / 1e4 for a in areas] for c in cutoffs[::-1]])
    assert drawn.shape == (3, 4)
    assert drawn.mask.tolist() == [[False] * 4, [False, False, True, False], [False] * 4]
    np.testing.assert_allclose(drawn.filled(np.nan), np.where(drawn.mask, np.nan, expected))
    assert list(ax.get_xticks()) == [0.5, 1.5, 2.5, 3.5] and list(ax.get_yticks()) == [0.5, 1.5, 2.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1000", "2000", "3000"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.70", "0.50", "0.30"]
    assert ax.get_ylim() == (3.0, 0.0) and ax.get_xlim() == (0.0, 4.0)  # the first row at the top
    [star] = [line for line in ax.lines if line.get_marker() == "*"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (3.5, 0.5)  # cutoff 0.7 (top row), 3000 px (last column)
    [colorbar] = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert colorbar.get_ylabel() == "mean Kaggle Dice"
    matplotlib.pyplot.close(fig)


def test_pairwise_figure_cells_notes_and_labels():
    pairwise = _comparison()[1]
    fig = figures.pairwise_figure(pairwise)
    ax = fig.axes[0]
    names = list(dict.fromkeys([*pairwise["a"], *pairwise["b"]]))
    drawn = _mesh(ax).get_array()
    assert drawn.mask.tolist() == [[i == j for j in range(len(names))] for i in range(len(names))]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    notes = {(t.get_position()[1], t.get_position()[0]): t.get_text() for t in ax.texts}
    assert len(notes) == len(pairwise) * 2  # every off-diagonal cell, none on the diagonal
    for row in pairwise.itertuples():
        i, j = names.index(row.a), names.index(row.b)
        assert drawn[i, j] == pytest.approx(row.difference) and drawn[j, i] == pytest.approx(-row.difference)
        star = "*" if row.significant else ""
        assert notes[(i + 0.5, j + 0.5)] == f"{row.difference:+.3f}{star}"
        assert notes[(j + 0.5, i + 0.5)] == f"{-row.difference:+.3f}{star}"
    limit = np.nanmax(np.abs(drawn.filled(np.nan)))
    assert _mesh(ax).get_clim() == pytest.approx((-limit, limit))  # centred on 0
    assert _mesh(ax).get_cmap().name == "RdBu"
    [colorbar] = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert colorbar.get_ylabel() == "mean per-image difference"
    matplotlib.pyplot.close(fig)


def test_colorblind_palette_is_wong_and_cycles():
    hexes = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
             "#56b4e9"]
    assert [matplotlib.colors.to_hex(c) for c in figures.COLORBLIND] == hexes
    assert [matplotlib.colors.to_hex(c) for c in figures.colorblind(12)] == hexes + hexes[:2]
    assert figures.colorblind(0) == []


def test_figure_modules_import_neither_seaborn_nor_scipy_stats():
    """Each figure job is a fresh process: importing the figure modules and drawing a heatmap stays light."""
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd\n"
        "import plexus.report.figures as figures, plexus.report.class_figures\n"
        "heavy = lambda: sorted(m for m in ('seaborn', 'scipy.stats') if m in sys.modules)\n"
        "assert not heavy(), heavy()\n"
        "grid = pd.DataFrame([{'cutoff': c, 'min_area': a, 'score': c} for c in (0.3, 0.5) for a in (0, 9)])\n"
        "figures.tuning_heatmap(grid, {'cutoff': 0.5, 'min_area': 0, 'score': 0.5}, 'unet')\n"
        "assert not heavy(), heavy()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _all_figures():
    images, truths, probs = _qualitative_inputs()
    grid = pd.DataFrame([{"cutoff": c, "min_area": a, "score": 0.5 + c / 10 - a / 1e5}
                         for c in (0.3, 0.5, 0.7) for a in (0, 1000, 2000)])
    best = {"cutoff": 0.7, "min_area": 0, "score": 0.57}
    return {
        "learning_curves": lambda: figures.learning_curves(_histories(), "unet"),
        "noise": lambda: figures.noise_figure(_noise_scores()),
        "train_size": lambda: figures.train_size_figure(_size_scores()),
        "qualitative": lambda: figures.qualitative_panel(
            images, truths, probs > 0.5, [0.9, 0.5, 0.1], ["2_3", "5_7", "9_1"], ["best", "median", "worst"],
            "final: p>0.5", raws=probs > 0.3),
        "area_histogram": lambda: figures.area_histogram(_per_image(), 4200),
        "tuning_heatmap": lambda: figures.tuning_heatmap(grid, best, "unet"),
        "comparison": lambda: figures.comparison_figure(_comparison()[0]),
        "pairwise": lambda: figures.pairwise_figure(_comparison()[1]),
        "score_vs_min_area": lambda: figures.score_vs_min_area(grid, best, "unet"),
    }


@pytest.mark.parametrize("name", list(_all_figures()))
def test_figure_labelled_and_saved(name, tmp_path):
    fig = _all_figures()[name]()
    assert isinstance(fig, Figure)
    plot_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert plot_axes
    # every panel has a title (or the figure a suptitle) and the data axes are labelled
    assert fig.get_suptitle() or all(ax.get_title(loc="center") or ax.get_title(loc="left") for ax in plot_axes)
    labelled_x = [ax for ax in plot_axes if ax.get_xlabel()]
    labelled_y = [ax for ax in plot_axes if ax.get_ylabel()]
    assert labelled_x and labelled_y
    if name != "qualitative":  # image grid: only the outer panels carry axis labels
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in plot_axes)
    png, pdf = tmp_path / f"{name}.png", tmp_path / "sub" / f"{name}.pdf"
    figures.save(fig, [png, pdf])
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporaries left behind
    assert not matplotlib.pyplot.fignum_exists(fig.number)  # save closes the figure


def test_learning_curves_lines_per_fold():
    histories = _histories(n_folds=3, epochs=6)
    fig = figures.learning_curves(histories, "unet")
    ax_loss, ax_dice = fig.axes[:2]
    styles = [line.get_linestyle() for line in ax_loss.get_lines()]
    assert styles.count("-") == 3 and styles.count("--") == 3  # train solid, val dashed per fold
    dice_lines = [line for line in ax_dice.get_lines() if line.get_label().startswith("fold")]
    assert [line.get_label() for line in dice_lines] == ["fold 0", "fold 1", "fold 2"]
    np.testing.assert_allclose(dice_lines[1].get_ydata(), histories[1]["val_dice"])
    assert "epoch" in ax_loss.get_xlabel() and "Dice" in ax_dice.get_ylabel()
    assert "unet" in fig.get_suptitle()
    assert ax_loss.get_title() == "training and validation (OOF fold) loss"
    matplotlib.pyplot.close(fig)
    fig = figures.learning_curves(histories, "unet", validation="inner")
    assert fig.axes[0].get_title() == "training and inner validation loss"
    assert fig.axes[1].get_title() == "inner validation Dice (dot: its best epoch; final epoch kept)"
    matplotlib.pyplot.close(fig)
    fig = figures.learning_curves(histories, "unet", validation="oof", read_by=[])
    assert fig.axes[0].get_title() == "training and OOF monitor loss"
    assert fig.axes[1].get_title() == "OOF monitor Dice (dot: its best epoch; final epoch kept)"
    matplotlib.pyplot.close(fig)
    fig = figures.learning_curves(histories, "unet", validation="oof", read_by=[], weights="refit")
    assert fig.axes[1].get_title() == "OOF monitor Dice (dot: its best epoch; refit kept)"
    matplotlib.pyplot.close(fig)


def test_noise_figure_plots_fold_means():
    scores = _noise_scores()
    fig = figures.noise_figure(scores)
    ax_kaggle, ax_dice = fig.axes[:2]
    assert ax_kaggle.get_xlabel() == "Gaussian noise σ (8-bit intensity units)"
    for condition, label in (("clean", "train clean, evaluate noisy"), ("noisy", "train noisy, evaluate noisy")):
        for ax, value in ((ax_kaggle, "kaggle_dice"), (ax_dice, "dice")):
            (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
            expected = scores[scores["condition"] == condition].groupby("sigma")[value].mean()
            np.testing.assert_allclose(line.get_xdata(), expected.index.to_numpy())
            np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert legend_texts == ["train clean, evaluate noisy", "train noisy, evaluate noisy"]
    matplotlib.pyplot.close(fig)


def test_train_size_figure_log_x_and_group_means():
    scores = _size_scores()
    fig = figures.train_size_figure(scores)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "training images (count, log scale)"
    groups = scores.groupby("size").agg(n_train=("n_train", "mean"), mean=("kaggle_dice", "mean"),
                                       sd=("kaggle_dice", "std")).sort_values("n_train")
    line = ax.containers[0].lines[0]  # the errorbar's mean line
    np.testing.assert_allclose(line.get_xdata(), groups["n_train"])
    np.testing.assert_allclose(line.get_ydata(), groups["mean"])
    # error bars span mean +- sd over (seed, fold)
    segments = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * groups["sd"])
    # the full training part is the rightmost point, marked separately
    (star,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("full training part")]
    assert star.get_xdata()[0] == pytest.approx(groups["n_train"].max())
    assert star.get_xdata()[0] == pytest.approx(groups.loc["full", "n_train"])
    matplotlib.pyplot.close(fig)


def test_pick_examples_ignores_empty_truth():
    picked = figures.pick_examples(_per_image())
    # non-empty truths: 1_2 0.8, 2_1 0.0, 3_1 0.9, 3_2 0.6, 4_1 0.0, 4_2 0.7
    # ascending by (dice, id): 2_1, 4_1, 3_2, 4_2, 1_2, 3_1 -> median index (6-1)//2 = 2
    assert picked == {"best": ["3_1"], "median": ["3_2"], "worst": ["2_1"]}  # 1_1 (empty, 1.0) never best
    picked2 = figures.pick_examples(_per_image(), n_each=2)
    assert picked2["best"] == ["3_1", "1_2"]
    assert picked2["worst"] == ["2_1", "4_1"]  # tie at 0.0 broken by image id
    assert picked2["median"] == ["3_2", "4_2"]
    assert list(picked) == ["best", "median", "worst"]
    assert figures.pick_examples(_per_image().iloc[::-1]) == picked  # row order irrelevant
    with pytest.raises(ValueError):
        figures.pick_examples(_per_image().assign(true_area=0))


def test_qualitative_panel_titles_and_overlays():
    """The decision panel draws the final masks it is given and counts what post-processing removed."""
    images, truths, probs = _qualitative_inputs()
    raws = probs.astype(np.float32) > 0.3
    finals = raws.copy()
    finals[0] = False  # the decision emptied the first image (a minimum area, a presence gate)
    fig = figures.qualitative_panel(images, truths, finals, [0.9, 0.5, 0.12], ["2_3", "5_7", "9_1"],
                                    ["best", "median", "worst"], "final: p>0.3, area>=40", raws=raws)
    axes = np.array(fig.axes).reshape(3, 3)
    assert axes[2, 0].get_title(loc="left") == "worst · 9_1 · Dice 0.12"
    assert axes[0, 0].get_title(loc="left") == "best · 2_3 · Dice 0.90"
    assert "ground truth" in axes[0, 1].get_title()
    assert axes[0, 2].get_title() == f"final: p>0.3, area>=40\n(0 px, {int(raws[0].sum())} px removed)"
    assert axes[1, 2].get_title() == f"final: p>0.3, area>=40\n({int(finals[1].sum())} px, 0 px removed)"
    assert len(axes[0, 0].get_images()) == 1  # plain image
    assert len(axes[0, 1].get_images()) == 2  # image + translucent truth
    assert len(axes[0, 2].get_images()) == 1  # an empty decision: the image alone, the removed pixels outlined
    assert len(axes[1, 2].get_images()) == 2  # image + translucent final mask
    assert axes[2, 0].get_xlabel() and axes[2, 0].get_ylabel()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError):
        figures.qualitative_panel(images, truths, finals, [0.9], ["2_3"], ["best"], "final")


def test_area_histogram_counts_and_min_area_line():
    per_image = _per_image()
    fig = figures.area_histogram(per_image, 4200)
    ax = fig.axes[0]
    assert "420×580" in ax.get_xlabel() and "count" in ax.get_ylabel()
    vlines = [ln for ln in ax.get_lines() if "minimum area" in ln.get_label()]
    assert len(vlines) == 1 and vlines[0].get_xdata()[0] == 4200
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "true masks: 6 non-empty, 2 empty" in texts
    assert "predicted masks: 5 non-empty, 3 empty" in texts
    # bars count the non-zero areas only
    (bars,) = [c for c in ax.containers if c.patches[0].get_label() == "true masks: 6 non-empty, 2 empty"]
    assert sum(p.get_height() for p in bars.patches) == 6
    matplotlib.pyplot.close(fig)


def _legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_qualitative_panel_legend_says_which_colour_is_truth_and_decision():
    images, truths, probs = _qualitative_inputs()
    raws = probs.astype(np.float32) > 0.3
    fig = figures.qualitative_panel(images, truths, raws, [0.9, 0.5, 0.1], ["2_3", "5_7", "9_1"],
                                    ["best", "median", "worst"], "final: p>0.3", raws=raws)
    texts = _legend_texts(fig)
    assert texts == ["truth (green fill, middle column)", "final decision (red fill, right column)",
                     "truth outline (green dashed, right column)", "removed by post-processing (orange outline)"]
    assert "as submitted" not in fig.get_suptitle()  # one model's decision: only an ensemble's is submitted
    matplotlib.pyplot.close(fig)
    fig = figures.qualitative_panel(images, truths, raws, [0.9, 0.5, 0.1], ["2_3", "5_7", "9_1"],
                                    ["best", "median", "worst"], "final: p>0.3")
    assert len(_legend_texts(fig)) == 3 and not any("orange" in t for t in _legend_texts(fig))
    matplotlib.pyplot.close(fig)


def _baseline_lines(ax):
    return [line for line in ax.get_lines() if "all-empty" in line.get_label()]


def test_comparison_panels_share_x_and_draw_the_all_empty_baseline():
    from plexus.report.comparison import empty_baselines

    table = _comparison()[0]
    per_image = pd.DataFrame({"true_area": np.where(np.arange(40) % 4 == 0, 5000, 0)})  # 3/4 without a nerve
    baselines = empty_baselines(per_image)
    fig = figures.comparison_figure(table, baselines=baselines)
    axes = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in axes]
    assert titles == list(figures.COMPARISON_METRICS.values())
    # one x scale for every panel: the axes are shared and their limits equal
    assert len({ax.get_xlim() for ax in axes}) == 1
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    low, high = axes[0].get_xlim()
    assert low <= 0.0 and high >= 1.0
    for ax, column in zip(axes, figures.COMPARISON_METRICS):
        [line] = _baseline_lines(ax)
        assert line.get_xdata()[0] == pytest.approx(baselines[column])
        assert line.get_label() == f"all-empty prediction: {baselines[column]:.3f}"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [line.get_label()]
    assert _baseline_lines(axes[0])[0].get_xdata()[0] == pytest.approx(0.75)  # Kaggle Dice: the empty share
    assert _baseline_lines(axes[4])[0].get_xdata()[0] == 0.0  # Dice on the images with a nerve
    assert "all-empty" in fig.get_suptitle()
    matplotlib.pyplot.close(fig)
    # without a baseline: no line, no legend, the x axis still shared
    fig = figures.comparison_figure(table, metrics={"kaggle_tuned": "tuned", "presence_auc": "AUC"},
                                    baselines={"kaggle_tuned": 0.4, "dice": 0.0})
    tuned, auc = fig.axes
    assert [line.get_xdata()[0] for line in _baseline_lines(tuned)] == [0.4]
    assert not _baseline_lines(auc) and auc.get_legend() is None
    assert tuned.get_xlim() == auc.get_xlim()
    matplotlib.pyplot.close(fig)


def test_comparison_stage_draws_the_baseline_of_its_images(tmp_path):
    """The stage's models figure carries the all-empty line at the share of images without a nerve."""
    import json

    from plexus.stages.comparison import comparison_stage

    rng = np.random.default_rng(5)
    n = 24
    csvs = []
    for name in ("unet", "main"):
        frame = pd.DataFrame({"image_id": [str(i) for i in range(n)], "subject": np.arange(n) // 3,
                              "fold": np.arange(n) % 2, "true_area": np.where(np.arange(n) % 3 == 0, 0, 900),
                              "presence_score": rng.random(n)})
        for column in ("untuned", "tuned", "postprocessed", "cross_fitted", "dice", "iou", "sensitivity",
                       "precision"):
            frame[column] = rng.random(n)
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        csvs.append(tmp_path / f"{name}.csv")
    (tmp_path / "info.json").write_text(json.dumps({"n_parameters": 10}))
    infos = {"unet": tmp_path / "info.json"}
    drawn = []
    original = figures.comparison_figure

    def spy(table, style=None, metrics=None, baselines=None, **kwargs):
        drawn.append(baselines)
        return original(table, style, metrics, baselines=baselines, **kwargs)

    paths = {"comparison_csv": tmp_path / "c.csv", "comparison_md": tmp_path / "c.md",
             "pairwise_csv": tmp_path / "p.csv", "pairwise_md": tmp_path / "p.md",
             "figure": [tmp_path / "models.png"], "pairwise_figure": [tmp_path / "pairwise.png"],
             "per_image_figure": [tmp_path / "per_image.png"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "comparison_figure", spy)
        comparison_stage(["unet", "main"], ["model", "ensemble"], [["unet"], ["unet"]], csvs, infos, paths,
                         n_boot=20, seed=0)
    [baselines] = drawn
    assert baselines["kaggle_cross_fitted"] == pytest.approx(1 / 3)
    assert (tmp_path / "models.png").read_bytes()[:8] == PNG_MAGIC


def test_score_comparison_stage_draws_the_given_baseline_in_every_panel(tmp_path):
    """The classes/regions/instances comparison: the mean-score panels share x and carry the
    all-background line where the task gives one."""
    import json
    from types import SimpleNamespace

    from plexus.stages.comparison import score_comparison_stage

    rng = np.random.default_rng(7)
    n = 12
    paths = []
    for name in ("unet", "main"):
        frame = pd.DataFrame({"image_id": [str(i) for i in range(n)], "subject": np.arange(n) // 2,
                              "fold": np.arange(n) % 2})
        for column in ("untuned", "tuned", "postprocessed", "cross_fitted"):
            frame[column] = rng.random(n)
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    (tmp_path / "info.json").write_text(json.dumps({"n_parameters": 10}))
    out = {key: tmp_path / f"{key}.{key.rsplit('_', 1)[-1] if '_' in key else key}"
           for key in ("csv", "md", "pairwise_csv", "pairwise_md", "png", "pdf", "pairwise_png", "pairwise_pdf",
                       "per_image_png", "per_image_pdf")}
    job = SimpleNamespace(input=SimpleNamespace(per_image=paths, train_info=[tmp_path / "info.json"]),
                          output=SimpleNamespace(**out),
                          params=SimpleNamespace(names=["unet", "main"], kinds=["model", "ensemble"],
                                                 members=[["unet"], ["unet"]], models=["unet"],
                                                 settings={"n_boot": 20, "seed": 0}, style=None))
    drawn = []
    original = figures.comparison_figure

    def spy(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn.append(fig)
        return fig

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "comparison_figure", spy)
        patch.setattr(figures, "save", lambda fig, paths: None)  # keep the figure open to read it
        score_comparison_stage(job, "mean region Dice", baseline=0.375)
    [fig] = drawn
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["mean region Dice, untuned", "mean region Dice, tuned",
                                               "mean region Dice, cross-fitted"]
    for ax in axes:
        [line] = [line for line in ax.get_lines() if "all-background" in line.get_label()]
        assert line.get_xdata()[0] == 0.375
    assert len({ax.get_xlim() for ax in axes}) == 1
    matplotlib.pyplot.close(fig)


def test_per_image_figure_draws_images_subject_means_and_entry_means():
    rng = np.random.default_rng(3)
    ids = [f"s{s}_{i}" for s in range(3) for i in range(4)]
    frames = {name: pd.DataFrame({"image_id": ids, "subject": [i.split("_")[0] for i in ids],
                                  "cross_fitted": rng.uniform(0, 1, len(ids))}) for name in ("unet", "attn", "main")}
    fig = figures.per_image_figure(frames)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unet", "attn", "main"]
    dots = [c for c in ax.collections if len(c.get_offsets()) == len(ids)]
    assert len(dots) == 3
    np.testing.assert_allclose(sorted(dots[1].get_offsets()[:, 1]), sorted(frames["attn"]["cross_fitted"]))
    # one line per subject through its means, in entry order
    lines = [line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata()) == 3]
    assert len(lines) == 3
    s1 = frames["main"][frames["main"]["subject"] == "s1"]["cross_fitted"].mean()
    assert any(np.isclose(line.get_ydata()[2], s1) for line in lines)
    bars = [c for c in ax.collections if c not in dots]
    assert sorted(float(seg[0][1]) for bar in bars for seg in bar.get_segments()) == pytest.approx(
        sorted(f["cross_fitted"].mean() for f in frames.values()))
    matplotlib.pyplot.close(fig)
