"""Multi-class evaluation and post-processing: hand-made cases and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from plexus.data.resize import upsample
from plexus.evaluation.multiclass import (
    SCORE_COLUMNS,
    class_counts,
    class_scores,
    class_table,
    from_class_index,
    scores_frame,
    to_class_index,
)
from plexus.io import rle
from plexus.io.images import read_image
from plexus.postprocess.candidates import remove_small_components
from plexus.postprocess.multiclass import (
    ComponentTable,
    argmax_labels,
    cross_fitted_min_areas,
    dice_from_records,
    image_records,
    mean_dice_grid,
    remove_small,
    rle_rows,
    tune_from_records,
    tune_min_areas,
    upsample_probs,
    write_label_map,
)
from references import components, python_rle_encode

NAMES = ["background", "nerve", "artery"]
VALUES = [0, 128, 255]
GRID = [0, 1, 2, 3, 4, 6, 9, 15, 40]


def _random_label(rng, shape, n_classes=3, smooth=False):
    """A random label map: salt-and-pepper (many tiny components) or blocky (a few larger ones)."""
    if smooth:
        coarse = rng.integers(0, n_classes, (max(1, shape[0] // 3), max(1, shape[1] // 3)))
        label = np.kron(coarse, np.ones((3, 3), dtype=np.int64))
        label = np.pad(label, ((0, max(0, shape[0] - label.shape[0])), (0, max(0, shape[1] - label.shape[1]))))
        label = label[: shape[0], : shape[1]]
        noise = rng.random(shape) < 0.1
        label[noise] = rng.integers(0, n_classes, int(noise.sum()))
    else:
        p = np.r_[0.55, np.full(n_classes - 1, 0.45 / (n_classes - 1))]
        label = rng.choice(n_classes, size=shape, p=p)
    return label.astype(np.uint8)


def _perturbed(rng, label, n_classes=3, rate=0.25):
    out = label.copy()
    flip = rng.random(label.shape) < rate
    out[flip] = rng.integers(0, n_classes, int(flip.sum()))
    return out


def _pairs(seed, n_images=7, n_classes=3):
    """(pred, true) label maps of several sizes; some images lack a class in the prediction or truth."""
    rng = np.random.default_rng(seed)
    shapes = [(7, 9), (16, 20), (31, 23), (1, 12), (12, 1), (24, 24), (5, 5)]
    out = []
    for i in range(n_images):
        shape = shapes[i % len(shapes)]
        pred = _random_label(rng, shape, n_classes, smooth=bool(i % 2))
        true = _perturbed(rng, pred, n_classes)
        if i % 3 == 0:
            true[true == n_classes - 1] = 0  # the last class absent from the truth
        if i % 4 == 1:
            pred[pred == 1] = 0  # class 1 absent from the prediction
        out.append((pred, true))
    return out


# --- evaluation ------------------------------------------------------------------------------------


def test_class_counts_hand_made():
    pred = np.array([[0, 1, 1, 0],
                     [0, 1, 2, 2],
                     [0, 0, 2, 2],
                     [1, 0, 0, 0]])
    true = np.array([[0, 1, 1, 1],
                     [0, 1, 1, 2],
                     [0, 0, 2, 0],
                     [0, 0, 0, 2]])
    # class 1: predicted at (0,1) (0,2) (1,1) (3,0); true at (0,1) (0,2) (0,3) (1,1) (1,2)
    # class 2: predicted at (1,2) (1,3) (2,2) (2,3); true at (1,3) (2,2) (3,3)
    expected = np.array([[3, 1, 2, 5],
                         [2, 2, 1, 3]])
    counts = class_counts(pred, true, 3)
    assert counts.dtype == np.int64 and counts.shape == (2, 4)
    np.testing.assert_array_equal(counts, expected)
    scores = class_scores(pred, true, 3)
    assert set(scores) == {"dice", "iou", "sensitivity", "precision", "true_area", "pred_area"}
    np.testing.assert_allclose(scores["dice"], [2 * 3 / (4 + 5), 2 * 2 / (4 + 3)])
    np.testing.assert_allclose(scores["iou"], [3 / 6, 2 / 5])
    np.testing.assert_allclose(scores["sensitivity"], [3 / 5, 2 / 3])
    np.testing.assert_allclose(scores["precision"], [3 / 4, 2 / 4])
    np.testing.assert_array_equal(scores["true_area"], [5, 3])
    np.testing.assert_array_equal(scores["pred_area"], [4, 4])


def test_empty_classes_conventions():
    true = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 0], [0, 0]])
    scores = class_scores(pred, true, 4)  # class 1: truth only; classes 2, 3: absent from both
    np.testing.assert_array_equal(scores["dice"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(scores["iou"], [0.0, 1.0, 1.0])
    assert scores["sensitivity"][0] == 0.0 and np.isnan(scores["sensitivity"][1:]).all()
    assert np.isnan(scores["precision"]).all()
    scores = class_scores(true, pred, 4)  # class 1: prediction only
    assert scores["dice"][0] == 0.0 and scores["iou"][0] == 0.0
    assert np.isnan(scores["sensitivity"][0]) and scores["precision"][0] == 0.0
    everything = np.zeros((3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(class_scores(everything, everything, 3)["dice"], [1.0, 1.0])


def test_class_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        class_counts(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError, match="0..2"):
        class_counts(np.full((2, 2), 3), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="integer"):
        class_counts(np.zeros((2, 2)), np.zeros((2, 2), int), 3)


@pytest.mark.parametrize("seed", range(4))
def test_class_counts_match_pixel_loop(seed):
    for pred, true in _pairs(seed, n_classes=4):
        counts = class_counts(pred, true, 4)
        for c in range(1, 4):
            tp = sum(1 for p, t in zip(pred.ravel(), true.ravel()) if p == c and t == c)
            fp = sum(1 for p, t in zip(pred.ravel(), true.ravel()) if p == c and t != c)
            fn = sum(1 for p, t in zip(pred.ravel(), true.ravel()) if p != c and t == c)
            assert counts[c - 1].tolist() == [tp, fp, fn, tp + fn]


def test_scores_frame_long_format():
    pairs = _pairs(3, n_images=4)
    frame = scores_frame(["a", "b", "c", "d"], (p for p, _ in pairs), (t for _, t in pairs), NAMES)
    assert list(frame.columns) == list(SCORE_COLUMNS)
    assert len(frame) == 8
    assert frame["image_id"].tolist() == ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert frame["class"].tolist() == ["nerve", "artery"] * 4
    for i, (pred, true) in enumerate(pairs):
        scores = class_scores(pred, true, 3)
        rows = frame.iloc[2 * i: 2 * i + 2]
        for key, value in scores.items():
            np.testing.assert_array_equal(rows[key].to_numpy(), value)
    empty = scores_frame([], [], [], NAMES)
    assert list(empty.columns) == list(SCORE_COLUMNS) and len(empty) == 0
    with pytest.raises(ValueError):
        scores_frame(["a"], [pairs[0][0], pairs[1][0]], [pairs[0][1], pairs[1][1]], NAMES)


def test_class_table():
    assert class_table({"background": 0, "nerve": 128, "artery": 255}) == (NAMES, VALUES)
    with pytest.raises(ValueError, match="distinct"):
        class_table({"background": 0, "a": 1, "b": 1})
    with pytest.raises(ValueError, match="at least one class"):
        class_table({"background": 0})


def test_class_index_round_trip():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (9, 11)).astype(np.uint8)
    mask = from_class_index(label, VALUES)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, np.array(VALUES)[label])
    back = to_class_index(mask, VALUES, "m.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, label)
    # values in any order: the index is the position in the list
    order = [255, 0, 128]
    np.testing.assert_array_equal(to_class_index(from_class_index(label, order), order, "m.png"), label)
    # 16-bit values, and masks of other integer dtypes
    wide = [0, 300, 65535, 7]
    label4 = rng.integers(0, 4, (6, 5)).astype(np.uint8)
    mask16 = from_class_index(label4, wide)
    assert mask16.dtype == np.uint16
    np.testing.assert_array_equal(to_class_index(mask16, wide, "m.tif"), label4)
    np.testing.assert_array_equal(to_class_index(mask16.astype(np.int32), wide, "m.tif"), label4)
    np.testing.assert_array_equal(to_class_index(label4 == 1, [0, 1], "b.png"), (label4 == 1).astype(np.uint8))


def test_to_class_index_error_names_file_and_values():
    mask = np.array([[0, 128, 7], [255, 3, 7]], dtype=np.uint8)
    with pytest.raises(ValueError) as info:
        to_class_index(mask, VALUES, "case_17_mask.png")
    message = str(info.value)
    assert "case_17_mask.png" in message
    assert "3, 7" in message
    assert "[0, 128, 255]" in message
    many = np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000
    with pytest.raises(ValueError, match=r"x\.tif: mask values 1000, 2000, 3000, 4000, 5000 and 14 more"):
        to_class_index(many, [0, 65535], "x.tif")
    with pytest.raises(ValueError, match=r"m\.png: mask values -1 "):
        to_class_index(np.array([[0, -1]]), [0, 1], "m.png")
    with pytest.raises(ValueError, match="rgb.png: an RGB mask whose channels differ"):
        to_class_index(np.zeros((2, 2, 3), np.uint8), VALUES, "rgb.png")


def test_from_class_index_rejects_unknown_index():
    with pytest.raises(ValueError, match="3 values"):
        from_class_index(np.array([[0, 3]]), VALUES)


# --- probabilities to labels ------------------------------------------------------------------------


def test_upsample_probs_matches_binary_path():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 8, 10)).astype(np.float32)
    prob = np.exp(logits) / np.exp(logits).sum(axis=0)
    prob16 = prob.astype(np.float16)
    up = upsample_probs(prob16, (21, 29))
    assert up.dtype == np.float32 and up.shape == (3, 21, 29)
    for k in range(3):  # the binary path upsamples each map alone
        np.testing.assert_array_equal(up[k], upsample(prob16[k:k + 1], (21, 29)).numpy()[0])
    direct = F.interpolate(torch.from_numpy(prob16.astype(np.float32))[None], size=(21, 29), mode="bilinear",
                           align_corners=False)[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(up, direct, atol=1e-6)
    np.testing.assert_allclose(up.sum(axis=0), 1.0, atol=1e-2)  # linear: still a distribution (float16 input)
    same = upsample_probs(prob, (8, 10))
    np.testing.assert_array_equal(same, prob)
    assert not np.shares_memory(same, prob)


def test_argmax_labels():
    prob = np.zeros((3, 2, 3), dtype=np.float32)
    prob[0] = [[0.5, 0.2, 0.4], [0.1, 0.3, 0.2]]
    prob[1] = [[0.3, 0.7, 0.4], [0.1, 0.3, 0.3]]
    prob[2] = [[0.2, 0.1, 0.2], [0.8, 0.4, 0.5]]
    labels = argmax_labels(prob)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [[0, 1, 0], [2, 2, 2]])  # (0, 2): a tie goes to the lower class


# --- remove_small ---------------------------------------------------------------------------------


def _brute_remove_small(label, min_areas):
    out = label.copy()
    for c in range(1, len(min_areas)):
        for comp in components(label == c):
            if len(comp) < min_areas[c]:
                for pixel in comp:
                    out[pixel] = 0
    return out


@pytest.mark.parametrize("seed", range(6))
def test_remove_small_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    for shape in [(5, 7), (18, 22), (1, 15), (30, 30)]:
        label = _random_label(rng, shape, 4, smooth=bool(seed % 2))
        for min_areas in ([0, 2, 2, 2], [0, 1, 5, 0], [0, 3, 1, 12], [7, 0, 0, 4]):
            result = remove_small(label, min_areas)
            assert result.dtype == label.dtype
            np.testing.assert_array_equal(result, _brute_remove_small(label, min_areas))
        # each class alone is the binary path's remove_small_components on its mask
        for c in range(1, 4):
            areas = [0, 0, 0, 0]
            areas[c] = 4
            np.testing.assert_array_equal(remove_small(label, areas) == c, remove_small_components(label == c, 4))


def test_remove_small_diagonal_connectivity():
    label = np.array([[1, 0, 0, 2],
                      [0, 1, 2, 0],
                      [0, 2, 1, 0],
                      [2, 0, 0, 1]], dtype=np.uint8)
    # class 1 is one 4-pixel diagonal object (8-connected), class 2 the crossing anti-diagonal, also one;
    # the two classes touch each other diagonally but are never merged
    np.testing.assert_array_equal(remove_small(label, [0, 4, 4]), label)
    np.testing.assert_array_equal(remove_small(label, [0, 5, 4]), np.where(label == 1, 0, label))
    np.testing.assert_array_equal(remove_small(label, [0, 5, 5]), np.zeros_like(label))
    records = image_records(label, label, 3)
    np.testing.assert_array_equal(records[0].sizes, [4])
    np.testing.assert_array_equal(records[1].sizes, [4])


def test_remove_small_rejects_bad_input():
    with pytest.raises(ValueError, match="0..1"):
        remove_small(np.array([[0, 2]]), [0, 3])
    with pytest.raises(ValueError, match=">= 0"):
        remove_small(np.array([[0, 1]]), [0, -1])


# --- component records and tuning -------------------------------------------------------------------


def _brute_dice(pred, true, min_areas):
    return class_scores(remove_small(pred, min_areas), true, len(min_areas))["dice"]


def _brute_grid(pairs, grid, n_classes=3):
    """(K-1, G): mean Dice over images per class and grid value, from remove_small + class_scores."""
    out = np.zeros((n_classes - 1, len(grid)))
    for c in range(1, n_classes):
        for j, m in enumerate(grid):
            areas = [0] * n_classes
            areas[c] = m
            out[c - 1, j] = sum(_brute_dice(p, t, areas)[c - 1] for p, t in pairs) / len(pairs)
    return out


def _brute_best(row, grid):
    best = max(row)
    j = next(j for j, v in enumerate(row) if v >= best - 1e-12)
    return grid[j], row[j]


def test_image_records_hand_made():
    pred = np.array([[1, 1, 0, 0, 1],
                     [0, 0, 0, 0, 0],
                     [2, 0, 1, 1, 1]], dtype=np.uint8)
    true = np.array([[1, 0, 0, 0, 0],
                     [0, 0, 0, 1, 0],
                     [0, 0, 1, 1, 0]], dtype=np.uint8)
    records = image_records(pred, true, 3)
    assert len(records) == 2 and all(isinstance(r, ComponentTable) for r in records)
    np.testing.assert_array_equal(records[0].sizes, [1, 2, 3])  # ascending
    np.testing.assert_array_equal(records[0].overlaps, [0, 1, 2])
    assert records[0].true_area == 4
    np.testing.assert_array_equal(records[1].sizes, [1])
    np.testing.assert_array_equal(records[1].overlaps, [0])
    assert records[1].true_area == 0
    np.testing.assert_allclose(records[0].dice_grid([0, 2, 3, 4]), [6 / 10, 6 / 9, 4 / 7, 0.0])
    np.testing.assert_allclose(records[1].dice_grid([0, 1, 2]), [0.0, 0.0, 1.0])  # removed: empty/empty


@pytest.mark.parametrize("seed", range(5))
def test_dice_from_records_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    for pred, true in _pairs(seed):
        records = image_records(pred, true, 3)
        for _ in range(6):
            areas = [int(rng.integers(0, 20)), int(rng.integers(0, 12)), int(rng.integers(0, 12))]
            # all classes at once: classes are independent
            np.testing.assert_array_equal(dice_from_records(records, areas), _brute_dice(pred, true, areas))


@pytest.mark.parametrize("seed", range(5))
def test_tune_min_areas_matches_brute_force(seed):
    pairs = _pairs(seed)
    frame, best = tune_min_areas(iter(pairs), 3, GRID, NAMES)
    expected = _brute_grid(pairs, GRID)
    assert list(frame.columns) == ["class", "min_area", "dice"]
    assert frame["class"].tolist() == ["nerve"] * len(GRID) + ["artery"] * len(GRID)
    assert frame["min_area"].tolist() == GRID * 2
    np.testing.assert_allclose(frame["dice"].to_numpy().reshape(2, -1), expected, rtol=0, atol=1e-12)
    assert set(best) == {"nerve", "artery"}
    for c, name in enumerate(NAMES[1:]):
        min_area, dice = _brute_best(expected[c].tolist(), GRID)
        assert best[name]["min_area"] == min_area and isinstance(best[name]["min_area"], int)
        assert best[name]["dice"] == pytest.approx(dice, abs=1e-12)
        at_0 = sum(class_scores(p, t, 3)["dice"][c] for p, t in pairs) / len(pairs)
        assert best[name]["dice_at_0"] == pytest.approx(at_0, abs=1e-12)
    # the records path gives the same grid and choice
    records = [image_records(p, t, 3) for p, t in pairs]
    np.testing.assert_allclose(mean_dice_grid(records, GRID), expected, rtol=0, atol=1e-12)
    assert tune_from_records(records, GRID) == [0, best["nerve"]["min_area"], best["artery"]["min_area"]]


def test_tune_min_areas_four_classes_and_grid_without_zero():
    pairs = [(p, t) for p, t in _pairs(11, n_images=9, n_classes=4)]
    grid = [2, 5, 8, 13]
    frame, best = tune_min_areas(pairs, 4, grid, ["bg", "a", "b", "c"])
    expected = _brute_grid(pairs, grid, n_classes=4)
    np.testing.assert_allclose(frame["dice"].to_numpy().reshape(3, -1), expected, rtol=0, atol=1e-12)
    for c, name in enumerate(["a", "b", "c"]):
        assert best[name]["min_area"] == _brute_best(expected[c].tolist(), grid)[0]
        at_0 = sum(class_scores(p, t, 4)["dice"][c] for p, t in pairs) / len(pairs)
        assert best[name]["dice_at_0"] == pytest.approx(at_0, abs=1e-12)


def test_tune_ties_go_to_smallest_min_area():
    # one image, class 1 a single 3-pixel component that is all wrong: removing it at 4 or more
    # gives Dice 1 (empty/empty); every grid value from 4 on ties
    pred = np.zeros((4, 4), dtype=np.uint8)
    pred[0, :3] = 1
    true = np.zeros((4, 4), dtype=np.uint8)
    _, best = tune_min_areas([(pred, true)], 2, [0, 3, 4, 10, 50], ["bg", "x"])
    assert best["x"] == {"min_area": 4, "dice": 1.0, "dice_at_0": 0.0}
    # all equal: the smallest
    _, best = tune_min_areas([(true, true)], 2, [1, 3, 9], ["bg", "x"])
    assert best["x"]["min_area"] == 1 and best["x"]["dice"] == 1.0


def test_tune_rejects_bad_grid_and_no_images():
    pairs = _pairs(0, n_images=2)
    with pytest.raises(ValueError, match="increasing"):
        tune_min_areas(pairs, 3, [0, 5, 5], NAMES)
    with pytest.raises(ValueError, match=">= 0"):
        tune_min_areas(pairs, 3, [-1, 5], NAMES)
    with pytest.raises(ValueError, match="no images"):
        tune_min_areas([], 3, [0, 5], NAMES)
    with pytest.raises(ValueError, match="class names"):
        tune_min_areas(pairs, 3, [0, 5], NAMES[:2])


@pytest.mark.parametrize("seed", range(4))
def test_cross_fit_matches_brute_force(seed):
    pairs = _pairs(seed, n_images=12)
    folds = [i % 3 for i in range(len(pairs))]
    if seed % 2:
        folds = [f"f{(i * 7) % 4}" for i in range(len(pairs))]  # any hashable, any order
    records = [image_records(p, t, 3) for p, t in pairs]
    fit = cross_fitted_min_areas(records, folds, GRID)
    assert fit.dice.shape == (len(pairs), 2)
    for fold in set(folds):
        train = [pair for pair, f in zip(pairs, folds) if f != fold]
        expected_grid = _brute_grid(train, GRID)
        areas = [0] + [_brute_best(expected_grid[c].tolist(), GRID)[0] for c in range(2)]
        assert fit.min_areas[fold] == areas
        for i, (pred, true) in enumerate(pairs):
            if folds[i] == fold:
                np.testing.assert_array_equal(fit.dice[i], _brute_dice(pred, true, areas))
    frame = fit.to_frame([f"img{i}" for i in range(len(pairs))], NAMES)
    assert list(frame.columns) == ["image_id", "fold", "class", "min_area", "dice"]
    assert len(frame) == 2 * len(pairs)
    np.testing.assert_array_equal(frame["dice"].to_numpy(), fit.dice.ravel())
    assert frame.loc[3, "min_area"] == fit.min_areas[folds[1]][2]
    with pytest.raises(ValueError, match="two folds"):
        cross_fitted_min_areas(records, [0] * len(records), GRID)


# --- writing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("values", [VALUES, [0, 1000, 65535], [0, 1, 2, 3, 4]])
def test_write_label_map_round_trip(tmp_path, suffix, values):
    rng = np.random.default_rng(len(values))
    label = rng.integers(0, len(values), (13, 17)).astype(np.uint8)
    path = tmp_path / "out" / f"case{suffix}"
    write_label_map(path, label, values)
    raw = read_image(path)
    assert raw.dtype == (np.uint16 if max(values) > 255 else np.uint8)
    np.testing.assert_array_equal(raw, np.asarray(values)[label])
    np.testing.assert_array_equal(to_class_index(raw, values, str(path)), label)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_write_label_map_rejects_other_suffixes(tmp_path):
    with pytest.raises(ValueError, match="jpg"):
        write_label_map(tmp_path / "a.jpg", np.zeros((2, 2), np.uint8), VALUES)
    assert not (tmp_path / "a.jpg").exists()


def test_rle_rows_round_trip():
    rng = np.random.default_rng(5)
    label = _random_label(rng, (11, 14), 4)
    label[label == 2] = 0  # class 2 absent
    names = ["background", "a", "b", "c"]
    rows = rle_rows("img7", label, names)
    assert [row["class"] for row in rows] == ["a", "b", "c"]
    assert all(row["image_id"] == "img7" and set(row) == {"image_id", "class", "EncodedPixels"} for row in rows)
    assert rows[1]["EncodedPixels"] == ""
    rebuilt = np.zeros_like(label)
    for c, row in enumerate(rows, start=1):
        assert row["EncodedPixels"] == python_rle_encode((label == c).tolist())
        decoded = rle.decode(row["EncodedPixels"], label.shape)
        np.testing.assert_array_equal(decoded, (label == c).astype(np.uint8))
        rebuilt[decoded == 1] = c
    np.testing.assert_array_equal(rebuilt, label)
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == ["image_id", "class", "EncodedPixels"]


def test_nan_scores_skip_in_frame_mean():
    pred = np.zeros((2, 2), np.uint8)
    true = np.array([[0, 1], [0, 0]], np.uint8)
    frame = scores_frame(["x"], [pred], [true], ["bg", "a"])
    assert math.isnan(frame.loc[0, "precision"]) and frame.loc[0, "sensitivity"] == 0.0


def test_class_steps_keep_each_class_largest_component_and_fill_only_background():
    """By hand: class 1 has a 3x3 ring (its hole one background pixel) and a 2-pixel speck; class 2
    sits in a second ring's hole and must stay; class 2's own speck goes with largest_only."""
    from plexus.postprocess.multiclass import class_steps

    label = np.zeros((8, 12), np.uint8)
    label[1:4, 1:4] = 1
    label[2, 2] = 0  # a background hole
    label[7, 4:6] = 1  # a speck of class 1
    label[1:6, 6:11] = 1
    label[2:5, 7:10] = 0
    label[3, 8] = 2  # class 2 inside class 1's second ring (the ring is class 1's largest component)
    label[7, 0] = 2  # a speck of class 2 (its components: 1 px each, the first kept)
    largest = class_steps(label, 3, largest_only=True)
    expected = label.copy()
    expected[1:4, 1:4][label[1:4, 1:4] == 1] = 0  # the 8-px ring is smaller than the 16-px ring
    expected[7, 4:6] = 0
    expected[7, 0] = 0  # class 2: two 1-px components, the first in label order (row 3) kept
    np.testing.assert_array_equal(largest, expected)
    filled = class_steps(label, 3, fill_holes=True)
    expected = label.copy()
    expected[2, 2] = 1
    ring_hole = np.zeros_like(label, bool)
    ring_hole[2:5, 7:10] = True
    expected[ring_hole & (label == 0)] = 1  # the ring's hole: background pixels become class 1
    assert filled[3, 8] == 2  # another class's pixel is never changed
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(class_steps(label, 3), label)


def test_to_class_index_of_8_bit_masks_equals_a_dictionary_lookup():
    """The uint8 table path against a plain per-value mapping, on random masks; an unknown value is
    named whichever path reads it."""
    from plexus.labels import to_class_index

    rng = np.random.default_rng(7)
    for _ in range(20):
        values = sorted(rng.choice(256, size=int(rng.integers(2, 9)), replace=False).tolist())
        mask = rng.choice(np.asarray(values, np.uint8), size=(13, 17))
        expected = np.vectorize({v: i for i, v in enumerate(values)}.get)(mask).astype(np.uint8)
        np.testing.assert_array_equal(to_class_index(mask, values, "m.png"), expected)
        np.testing.assert_array_equal(to_class_index(mask.astype(np.uint16), values, "m.png"), expected)
        outside = next(v for v in range(256) if v not in values)
        mask[3, 4] = outside
        with pytest.raises(ValueError, match=rf"m\.png: mask values {outside} are not class values"):
            to_class_index(mask, values, "m.png")
