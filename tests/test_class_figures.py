import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from plexus.report import class_figures, figures

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["tumour", "oedema", "necrosis"]  # deliberately not alphabetical: drawn in order of appearance


def _scores():
    rng = np.random.default_rng(0)
    rows = []
    for metric in ("precision", "dice", "iou"):  # not in display order; sensitivity absent
        for name in ("unet", "ensemble"):
            for cls in CLASSES:
                mean = 0.3 + 0.6 * rng.random()
                rows.append({"name": name, "class": cls, "metric": metric, "mean": mean,
                             "lo": mean - 0.1 * rng.random(), "hi": min(mean + 0.1 * rng.random(), 1.0)})
    return pd.DataFrame(rows)


def _noise_scores():
    rng = np.random.default_rng(1)
    rows = []
    for condition in ("noisy", "clean"):  # not in display order
        for sigma in (40.0, 0.0, 120.0):  # not sorted
            for cls in CLASSES[:2]:
                for fold in range(3):
                    dice = 0.8 - 0.002 * sigma * (condition == "clean") + 0.05 * rng.random()
                    rows.append({"condition": condition, "sigma": sigma, "class": cls, "fold": fold, "dice": dice})
    return pd.DataFrame(rows)


def _size_scores():
    rng = np.random.default_rng(2)
    rows = []
    for n_train in (200, 10, 50):
        for seed in (0, 1):
            for cls in CLASSES:
                for fold in range(3):
                    rows.append({"n_train": n_train, "seed": seed, "class": cls, "fold": fold,
                                 "dice": 0.3 + 0.1 * np.log10(n_train) + 0.05 * rng.random()})
    return pd.DataFrame(rows)


def _channel_scores():
    rng = np.random.default_rng(3)
    rows = []
    for removed in ("t2", "none", "flair"):  # "none" not first in the data
        for cls in CLASSES:
            for fold in range(4):
                rows.append({"removed": removed, "class": cls, "fold": fold,
                             "dice": 0.7 - 0.2 * (removed != "none") + 0.1 * rng.random()})
    return pd.DataFrame(rows)


def _all_figures():
    return {
        "class_scores": lambda: class_figures.class_scores_figure(_scores()),
        "class_noise": lambda: class_figures.class_noise_figure(_noise_scores()),
        "class_train_size": lambda: class_figures.class_train_size_figure(_size_scores()),
        "missing_channel": lambda: class_figures.missing_channel_figure(_channel_scores()),
    }


def _bars(ax):
    """{hue label: {class: (height, bar centre)}} from the axes' bar containers."""
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    out = {}
    for container in ax.containers:
        if isinstance(container, BarContainer):
            out[container.get_label()] = {
                ticks[round(p.get_x() + p.get_width() / 2)]: (p.get_height(), p.get_x() + p.get_width() / 2)
                for p in container.patches}
    return out


def _error_spans(ax):
    """[(x, low, high)] of every error bar segment on the axes."""
    spans = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            for segment in container.lines[2][0].get_segments():
                spans.append((segment[0, 0], segment[0, 1], segment[1, 1]))
    return spans


def _legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@pytest.mark.parametrize("name", list(_all_figures()))
def test_figure_labelled_and_saved(name, tmp_path):
    fig = _all_figures()[name]()
    assert isinstance(fig, Figure)
    assert fig.axes
    assert fig.get_suptitle() or all(ax.get_title() for ax in fig.axes)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    png, pdf = tmp_path / f"{name}.png", tmp_path / "sub" / f"{name}.pdf"
    figures.save(fig, [png, pdf])
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert not matplotlib.pyplot.fignum_exists(fig.number)


def test_class_scores_panels_bars_and_intervals():
    scores = _scores()
    fig = class_figures.class_scores_figure(scores)
    assert len(fig.axes) == 3  # the empty fourth cell of the 2 x 2 grid is removed
    assert [ax.get_title() for ax in fig.axes] == ["Dice", "IoU", "precision"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["Dice (mean, 95% CI)", "IoU (mean, 95% CI)",
                                                    "precision (mean, 95% CI)"]
    for ax, metric in zip(fig.axes, ("dice", "iou", "precision")):
        assert ax.get_xlabel() == "class"
        assert ax.get_ylim() == (0.0, 1.0)
        assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
        bars = _bars(ax)
        assert list(bars) == ["unet", "ensemble"]
        assert len(ax.patches) == 6
        spans = sorted(_error_spans(ax))
        expected_spans = []
        for name in ("unet", "ensemble"):
            for cls in CLASSES:
                row = scores[(scores["name"] == name) & (scores["class"] == cls) & (scores["metric"] == metric)]
                height, x = bars[name][cls]
                assert height == pytest.approx(row["mean"].item())
                expected_spans.append((x, row["lo"].item(), row["hi"].item()))
        np.testing.assert_allclose(spans, sorted(expected_spans))
        # hue order within a class: unet left of ensemble
        assert all(bars["unet"][c][1] < bars["ensemble"][c][1] for c in CLASSES)
    assert _legend_texts(fig) == ["unet", "ensemble"]
    assert "95% CI" in fig.get_suptitle()
    matplotlib.pyplot.close(fig)


def test_class_scores_all_four_metrics_and_title():
    scores = _scores()
    extra = scores[scores["metric"] == "dice"].assign(metric="sensitivity")
    fig = class_figures.class_scores_figure(pd.concat([scores, extra]), title="my study")
    assert [ax.get_title() for ax in fig.axes] == ["Dice", "IoU", "sensitivity", "precision"]
    assert fig.get_suptitle() == "my study"
    matplotlib.pyplot.close(fig)


def test_class_noise_panels_lines_and_bands():
    scores = _noise_scores()
    fig = class_figures.class_noise_figure(scores)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == CLASSES[:2]
    labels = {"clean": "train clean, evaluate noisy", "noisy": "train noisy, evaluate noisy"}
    for ax, cls in zip(fig.axes, CLASSES[:2]):
        assert ax.get_xlabel() == "noise sigma (native intensity units)"
        assert "Dice" in ax.get_ylabel() and "sd" in ax.get_ylabel()
        assert [line.get_label() for line in ax.get_lines()] == [labels["clean"], labels["noisy"]]
        for condition, label in labels.items():
            (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
            rows = scores[(scores["condition"] == condition) & (scores["class"] == cls)]
            expected = rows.groupby("sigma")["dice"].agg(["mean", "std"])
            np.testing.assert_allclose(line.get_xdata(), [0.0, 40.0, 120.0])
            np.testing.assert_allclose(line.get_ydata(), expected["mean"])
        # bands: mean +- sd over folds, one per condition
        (band,) = [c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3],
                                                            matplotlib.colors.to_rgb("tab:blue"))]
        clean = scores[(scores["condition"] == "clean") & (scores["class"] == cls)].groupby("sigma")["dice"]
        vertices = band.get_paths()[0].vertices
        assert vertices[:, 1].max() == pytest.approx((clean.mean() + clean.std()).max())
        assert vertices[:, 1].min() == pytest.approx((clean.mean() - clean.std()).min())
    assert _legend_texts(fig) == [labels["clean"], labels["noisy"]]
    assert "3 folds" in fig.get_suptitle()
    matplotlib.pyplot.close(fig)


def test_class_noise_other_condition_and_missing_class_condition():
    scores = _noise_scores()
    scores = scores[~((scores["class"] == "oedema") & (scores["condition"] == "noisy"))]
    scores = pd.concat([scores, scores[scores["condition"] == "clean"].assign(condition="augmented")])
    fig = class_figures.class_noise_figure(scores)
    tumour, oedema = fig.axes
    assert [ln.get_label() for ln in tumour.get_lines()] == ["train clean, evaluate noisy",
                                                             "train noisy, evaluate noisy", "augmented"]
    assert [ln.get_label() for ln in oedema.get_lines()] == ["train clean, evaluate noisy", "augmented"]
    assert _legend_texts(fig)[-1] == "augmented"
    matplotlib.pyplot.close(fig)


def test_class_train_size_lines_per_class():
    scores = _size_scores()
    fig = class_figures.class_train_size_figure(scores)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "training images (count, log scale)"
    assert "Dice" in ax.get_ylabel()
    assert "6 runs" in ax.get_title()
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in errorbars] == CLASSES
    for container, cls in zip(errorbars, CLASSES):
        expected = scores[scores["class"] == cls].groupby("n_train")["dice"].agg(["mean", "std"])
        line = container.lines[0]
        np.testing.assert_allclose(line.get_xdata(), [10, 50, 200])
        np.testing.assert_allclose(line.get_ydata(), expected["mean"])
        segments = container.lines[2][0].get_segments()
        np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * expected["std"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == CLASSES
    assert ax.get_legend().get_title().get_text() == "class"
    matplotlib.pyplot.close(fig)


def test_class_train_size_averages_within_runs_first_and_linear_x_with_zero():
    scores = pd.DataFrame({"n_train": [0, 0, 0, 8, 8], "seed": [0, 0, 1, 0, 0], "class": "a",
                           "fold": [0, 0, 0, 0, 1], "dice": [0.2, 0.4, 0.5, 0.6, 0.8]})
    fig = class_figures.class_train_size_figure(scores, title="t")
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "training images (count)"
    assert ax.get_title() == "t"
    container = ax.containers[0]
    # n_train 0: runs (seed 0, fold 0) -> 0.3 and (seed 1, fold 0) -> 0.5
    np.testing.assert_allclose(container.lines[0].get_ydata(), [0.4, 0.7])
    segments = container.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments],
                               [2 * np.std([0.3, 0.5], ddof=1), 2 * np.std([0.6, 0.8], ddof=1)])
    matplotlib.pyplot.close(fig)


def test_class_train_size_optional_size_column_pools_folds():
    # a fractional size spec: n_train differs by fold; without "size" every n_train is its own point
    scores = pd.DataFrame({"size": ["0.5"] * 4 + ["full"] * 2, "n_train": [100, 102, 100, 102, 200, 204],
                           "seed": [1, 1, 2, 2, 0, 0], "class": "a", "fold": [0, 1, 0, 1, 0, 1],
                           "dice": [0.5, 0.6, 0.7, 0.8, 0.9, 0.7]})
    fig = class_figures.class_train_size_figure(scores)
    line = fig.axes[0].containers[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [101, 202])
    np.testing.assert_allclose(line.get_ydata(), [0.65, 0.8])
    matplotlib.pyplot.close(fig)
    fig = class_figures.class_train_size_figure(scores.drop(columns="size"))
    np.testing.assert_allclose(fig.axes[0].containers[0].lines[0].get_xdata(), [100, 102, 200, 204])
    matplotlib.pyplot.close(fig)


def test_missing_channel_bars_none_first():
    scores = _channel_scores()
    fig = class_figures.missing_channel_figure(scores)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "class" and ax.get_ylabel() == "Dice (mean ± sd over folds)"
    assert "4 folds" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    bars = _bars(ax)
    labels = {"none": "none (all channels)", "t2": "without t2", "flair": "without flair"}
    assert list(bars) == ["none (all channels)", "without t2", "without flair"]
    assert _legend_texts(fig) == ["none (all channels)", "without t2", "without flair"]
    assert len(ax.patches) == 9
    expected = scores.groupby(["removed", "class"])["dice"].agg(["mean", "std"])
    spans = sorted(_error_spans(ax))
    expected_spans = []
    for removed, label in labels.items():
        for cls in CLASSES:
            height, x = bars[label][cls]
            mean, sd = expected.loc[(removed, cls)]
            assert height == pytest.approx(mean)
            expected_spans.append((x, mean - sd, mean + sd))
    np.testing.assert_allclose(spans, sorted(expected_spans))
    assert all(bars["none (all channels)"][c][1] < bars["without t2"][c][1] for c in CLASSES)
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] >= 1.0
    matplotlib.pyplot.close(fig)


def test_single_fold_gives_zero_sd():
    scores = _channel_scores().query("fold == 0")
    fig = class_figures.missing_channel_figure(scores)
    assert all(low == pytest.approx(high) for _, low, high in _error_spans(fig.axes[0]))
    assert "over 1 fold" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)
    uneven = _channel_scores().query("fold > 0 or removed == 'none'")  # 4 folds for "none", 3 for the rest
    fig = class_figures.missing_channel_figure(uneven)
    assert "over several folds" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("function, frame, column", [
    (class_figures.class_scores_figure, _scores(), "hi"),
    (class_figures.class_scores_figure, _scores(), "class"),
    (class_figures.class_noise_figure, _noise_scores(), "sigma"),
    (class_figures.class_train_size_figure, _size_scores(), "seed"),
    (class_figures.missing_channel_figure, _channel_scores(), "removed"),
])
def test_missing_column_named(function, frame, column):
    with pytest.raises(ValueError, match=f"missing column\\(s\\) {column}"):
        function(frame.drop(columns=column))


def test_several_missing_columns_all_named():
    with pytest.raises(ValueError, match="missing column\\(s\\) fold, dice"):
        class_figures.missing_channel_figure(_channel_scores()[["removed", "class"]])


@pytest.mark.parametrize("name, frame", [
    ("class_scores_figure", _scores()), ("class_noise_figure", _noise_scores()),
    ("class_train_size_figure", _size_scores()), ("missing_channel_figure", _channel_scores()),
])
def test_empty_frame_rejected(name, frame):
    with pytest.raises(ValueError, match="no rows"):
        getattr(class_figures, name)(frame.iloc[:0])


def test_class_scores_duplicates_rejected():
    scores = _scores()
    with pytest.raises(ValueError, match="more than one row"):
        class_figures.class_scores_figure(pd.concat([scores, scores.iloc[:1]]))


def _with_baseline(scores):
    means = dict(zip(CLASSES, (0.2, 0.55, 0.9)))
    rows = [{"name": "all_background", "class": cls, "metric": metric, "mean": mean, "lo": mean - 0.05,
             "hi": mean + 0.05} for metric in ("dice", "dice_cross_fitted") for cls, mean in means.items()]
    return pd.concat([scores, pd.DataFrame(rows)], ignore_index=True), means


def test_class_scores_baseline_is_a_dashed_segment_per_class_not_a_bar():
    scores, means = _with_baseline(_scores())
    fig = class_figures.class_scores_figure(scores[scores["metric"] != "dice_cross_fitted"])
    dice, iou, precision = fig.axes
    assert list(_bars(dice)) == ["unet", "ensemble"]  # the baseline is no bar
    segments = [line for line in dice.get_lines() if line.get_linestyle() == "--"]
    assert len(segments) == 3
    for line, cls in zip(segments, CLASSES):
        i = CLASSES.index(cls)
        assert list(line.get_ydata()) == pytest.approx([means[cls]] * 2)
        assert min(line.get_xdata()) < i < max(line.get_xdata())  # across its class's group of bars
    assert [line.get_label() for line in segments] == ["all-background prediction (dashed)", "_nolegend_",
                                                       "_nolegend_"]
    assert not [line for line in iou.get_lines() if line.get_linestyle() == "--"]  # no baseline row for IoU
    assert _legend_texts(fig) == ["unet", "ensemble", "all-background prediction (dashed)"]
    # one class axis and one score axis for every panel
    assert len({ax.get_xlim() for ax in fig.axes}) == 1 and len({ax.get_ylim() for ax in fig.axes}) == 1
    assert all(dice.get_shared_x_axes().joined(dice, ax) for ax in fig.axes)
    assert all(ax.xaxis.get_tick_params()["labelbottom"] for ax in fig.axes)
    matplotlib.pyplot.close(fig)


def test_label_panel_legend_names_each_class_colour_for_truth_and_final():
    images = [np.zeros((8, 8), np.uint8)] * 2
    truths = [np.eye(8, dtype=np.uint8) * 2, np.full((8, 8), 255, np.uint8)]
    preds = [np.eye(8, dtype=np.uint8), np.zeros((8, 8), np.uint8)]
    fig = class_figures.label_panel(images, truths, preds, ["a", "b"], [0.5, 1.0], ["best", "worst"],
                                    ["background", "tumour", "oedema"], title="t")
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["background (black; ignored truth pixels too)",
                                                          "tumour", "oedema"]
    assert "truth and final" in legend.get_title().get_text()
    matplotlib.pyplot.close(fig)


def test_region_panel_and_rater_figure_legends_and_baseline():
    from plexus.report.tables import unit_table
    from plexus.tasks.regions import panel_figure, rater_figure

    maps = [np.arange(16).reshape(4, 4) % 3] * 2
    fig = panel_figure([np.zeros((4, 4))] * 2, maps, maps, ["a", "b"], [0.9, 0.1], ["best", "worst"],
                       ["whole", "core"])
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["background (black)", "whole", "core"]
    assert "truth and final" in legend.get_title().get_text()
    matplotlib.pyplot.close(fig)

    rng = np.random.default_rng(6)
    frame = pd.DataFrame([{"image_id": str(i), "subject": i, "fold": i % 2, "region": region,
                           "dice": rng.random(), "dice_cross_fitted": rng.random(),
                           "true_area": (i % 3) * 50} for i in range(9) for region in ("whole", "core")])
    rater2 = frame[frame["image_id"].isin(["0", "1", "2", "3"])][["image_id", "subject", "region"]].assign(
        dice=0.8)
    table = unit_table({"unet": frame, "main": frame.assign(dice=frame["dice"] / 2)}, ["whole", "core"],
                       "region", n_boot=20, seed=0, rater2=rater2)
    fig = rater_figure(table)
    whole, core = fig.axes
    assert [t.get_text() for t in whole.get_yticklabels()] == ["unet", "main"]  # the baseline is no point
    expected = table[(table["name"] == "all_background") & (table["scope"] == "rated") & (table["metric"] == "dice")]
    for ax, region in ((whole, "whole"), (core, "core")):
        mean = float(expected[expected["region"] == region]["mean"].iloc[0])
        [line] = [line for line in ax.get_lines() if line.get_label().startswith("all-background")]
        assert line.get_xdata()[0] == pytest.approx(mean)
        assert line.get_label() in [t.get_text() for t in ax.get_legend().get_texts()]
    assert whole.get_xlim() == core.get_xlim() and whole.get_shared_x_axes().joined(whole, core)
    matplotlib.pyplot.close(fig)
