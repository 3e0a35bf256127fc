"""Task regions (plexus.tasks.regions): region Dice from label maps, the innermost-region label map,
the second rater's score, hand-computed; the per-region tuning against a brute-force search."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.labels import IGNORE_LABEL, region_matrix
from plexus.tasks import regions as task

CLASSES = {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
REGIONS = {"complete": ["necrosis", "edema", "non_enhancing", "enhancing"],
           "core": ["necrosis", "non_enhancing", "enhancing"], "enhancing": ["enhancing"]}
MATRIX = region_matrix(REGIONS, list(CLASSES))


def test_region_matrix_and_unknown_class():
    np.testing.assert_array_equal(MATRIX.astype(int), [[0, 1, 1, 1, 1], [0, 1, 0, 1, 1], [0, 0, 0, 0, 1]])
    with pytest.raises(ValueError, match="regions.core: 'tumour'"):
        region_matrix({"core": ["tumour"]}, list(CLASSES))


def test_region_truths_and_dice_from_label_maps_by_hand():
    # truth: edema ring around an enhancing pixel and a necrotic pixel; one ignored pixel
    truth = np.array([[0, 2, 2, 0],
                      [2, 4, 1, 2],
                      [0, 2, 2, IGNORE_LABEL]])
    regions, valid = task.region_truths(truth, MATRIX)
    assert regions[0].sum() == 8 and regions[1].sum() == 2 and regions[2].sum() == 1
    assert not valid[2, 3] and not regions[:, 2, 3].any()
    # a prediction of the core as a 2x2 square over (1,1),(1,2),(2,1),(2,2): tp 2, fp 2, fn 0
    prob = np.zeros((4, 3, 4), np.float32)
    prob[1, 1:3, 1:3] = 0.9
    counts = task.region_counts(prob[1], regions[1], valid, [0.5], [0, 3, 5])
    # min_area 0 and 3 keep the 4-pixel component: Dice 2*2 / (4 + 2); min_area 5 removes it: Dice 0
    np.testing.assert_array_equal(counts[0, 0], [2, 2, 0, 2])
    np.testing.assert_array_equal(counts[0, 1], [2, 2, 0, 2])
    np.testing.assert_array_equal(counts[0, 2], [0, 0, 2, 2])
    # the ignored pixel never counts, even inside a predicted component
    prob[0] = 0.9
    counts = task.region_counts(prob[0], regions[0], valid, [0.5], [0])
    np.testing.assert_array_equal(counts[0, 0], [8, 3, 0, 8])  # 11 counted pixels predicted, 8 true


def test_region_probs_sum_labels_or_pass_regions_through():
    prob = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3)).transpose(2, 0, 1).astype(np.float32)
    summed = task.region_probs(prob, MATRIX, "labels")
    np.testing.assert_allclose(summed[0], prob[1:].sum(0), rtol=1e-6)
    np.testing.assert_allclose(summed[1], prob[[1, 3, 4]].sum(0), rtol=1e-6)
    np.testing.assert_allclose(summed[2], prob[4], rtol=1e-6)
    direct = np.random.default_rng(1).random((3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(task.region_probs(direct, MATRIX, "regions"), direct)
    with pytest.raises(ValueError, match="3 maps"):
        task.region_probs(prob, MATRIX, "regions")


def test_nested_label_map_takes_the_innermost_region():
    masks = np.zeros((3, 3, 3), bool)
    masks[0] = True                # complete everywhere
    masks[1, 1, :] = True          # core: the middle row
    masks[2, 1, 1] = True          # enhancing: the centre
    masks[2, 0, 0] = True          # enhancing outside the core: still the innermost region there
    expected = np.array([[3, 1, 1], [2, 3, 2], [1, 1, 1]])
    np.testing.assert_array_equal(task.nested_label_map(masks, MATRIX), expected)
    assert task.nesting_order(MATRIX) == [0, 1, 2]
    # two regions of one label each: the later in regions: wins on overlap
    two = region_matrix({"a": ["edema"], "b": ["necrosis"]}, list(CLASSES))
    assert task.nested_label_map(np.ones((2, 1, 1), bool), two)[0, 0] == 2


def test_final_mask_removes_small_components():
    prob = np.zeros((5, 6), np.float32)
    prob[0, 0] = 0.9               # one pixel
    prob[2:5, 2:5] = 0.8           # nine pixels
    assert task.final_mask(prob, 0.5, 0).sum() == 10
    assert task.final_mask(prob, 0.5, 2).sum() == 9
    assert task.final_mask(prob, 0.85, 0).sum() == 1


def _write(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def _tiny_study(tmp_path, n=8, seed=0):
    """Label masks, two folds of OOF label probabilities (a noisy copy of the truth), the manifest."""
    rng = np.random.default_rng(seed)
    rows, probs, folds = [], [], []
    for i in range(n):
        label = np.zeros((12, 14), np.uint8)
        if i % 4:
            y, x = rng.integers(2, 7), rng.integers(2, 8)
            label[y:y + 5, x:x + 5] = 2
            label[y + 1:y + 4, x + 1:x + 4] = 1
            label[y + 2, x + 2] = 4
        _write(tmp_path / f"m{i}.png", label)
        onehot = np.eye(5, dtype=np.float32)[label].transpose(2, 0, 1)
        prob = np.clip(onehot * 0.7 + rng.random((5, 12, 14)).astype(np.float32) * 0.6, 0, None)
        probs.append(prob / prob.sum(0, keepdims=True))
        rows.append({"image_id": f"im{i}", "subject": f"s{i // 2}", "split": "train",
                     "mask": str(tmp_path / f"m{i}.png"), "height": 12, "width": 14})
        folds.append(i // 4)
    train = pd.DataFrame(rows)
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"image_id": train["image_id"], "subject": train["subject"], "fold": folds}).to_csv(
        tmp_path / "folds.csv", index=False)
    paths = []
    for fold in (0, 1):
        rows_k = [i for i in range(n) if folds[i] == fold]
        path = tmp_path / f"oof{fold}.npz"
        np.savez(path, image_id=np.array([f"im{i}" for i in rows_k]),
                 prob=np.stack([probs[i] for i in rows_k]).astype(np.float16))
        paths.append(str(path))
    return train, np.array(folds), probs, paths


def test_per_region_tuning_matches_a_brute_force_search(tmp_path):
    train, folds, probs, paths = _tiny_study(tmp_path)
    cutoffs, areas = [0.3, 0.5, 0.7], [0, 3, 10]
    best = task.tune_stage({"m": paths}, {"m": "labels"}, tmp_path / "folds.csv", tmp_path / "train.csv", CLASSES,
                           REGIONS, cutoffs, areas, grid_csv=tmp_path / "grid.csv", best_json=tmp_path / "best.json",
                           per_image_csv=tmp_path / "per_image.csv")
    per_image = pd.read_csv(tmp_path / "per_image.csv", dtype={"image_id": str})
    # brute force: every setting's masks built directly, Dice per image, the best mean per region
    truths = [np.asarray(Image.open(p)) for p in train["mask"]]
    prob16 = [p.astype(np.float16).astype(np.float32) for p in probs]

    def dice(pred, true):
        both = pred.sum() + true.sum()
        return 1.0 if both == 0 else 2 * (pred & true).sum() / both

    for r, name in enumerate(REGIONS):
        table = {}
        for c in cutoffs:
            for a in areas:
                scores = []
                for prob, label in zip(prob16, truths):
                    region_prob = (MATRIX[r][:, None, None] * prob).sum(0)
                    scores.append(dice(task.final_mask(region_prob, c, a), MATRIX[r][label]))
                table[(c, a)] = np.array(scores)
        means = {k: v.mean() for k, v in table.items()}
        chosen = max(means, key=lambda k: (means[k], -list(means).index(k)))  # first best
        assert (best["regions"][name]["cutoff"], best["regions"][name]["min_area"]) == chosen
        got = per_image[per_image["region"] == name].set_index("image_id").loc[train["image_id"]]
        np.testing.assert_allclose(got["dice"], table[chosen], atol=1e-9)
        np.testing.assert_allclose(got["dice_untuned"], table[(0.5, 0)], atol=1e-9)
        # cross-fitted: each fold at the setting best on the other fold
        for fold in (0, 1):
            other = {k: v[folds != fold].mean() for k, v in table.items()}
            pick = max(other, key=lambda k: (other[k], -list(other).index(k)))
            np.testing.assert_allclose(got["dice_cross_fitted"].to_numpy()[folds == fold], table[pick][folds == fold],
                                       atol=1e-9)


def test_second_rater_scores_by_hand(tmp_path):
    first = np.zeros((4, 4), np.uint8)
    first[1:3, 1:3] = 2
    first[1, 1] = 4
    second = first.copy()
    second[2, 2] = 0       # misses one edema pixel
    second[1, 1] = 2       # calls the enhancing pixel edema
    _write(tmp_path / "a.png", first)
    _write(tmp_path / "b.png", second)
    _write(tmp_path / "c.png", first)
    pd.DataFrame([{"image_id": "x", "subject": "s", "split": "train", "mask": str(tmp_path / "a.png"),
                   "mask_rater2": str(tmp_path / "b.png"), "height": 4, "width": 4},
                  {"image_id": "y", "subject": "s", "split": "train", "mask": str(tmp_path / "c.png"),
                   "mask_rater2": "", "height": 4, "width": 4}]).to_csv(tmp_path / "train.csv", index=False)
    frame = task.rater2_frame(tmp_path / "train.csv", CLASSES, REGIONS).set_index("region")
    assert set(frame["image_id"]) == {"x"}
    # complete: truth 4 px, rater 3 px inside it: Dice 6/7; core: truth 1 px (enhancing), rater none: 0;
    # enhancing: the same 0
    assert frame.loc["complete", "dice"] == pytest.approx(6 / 7)
    assert frame.loc["complete", "sensitivity"] == pytest.approx(3 / 4)
    assert frame.loc["complete", "precision"] == pytest.approx(1.0)
    assert frame.loc["core", "dice"] == 0 and frame.loc["enhancing", "dice"] == 0
    assert np.isnan(frame.loc["core", "precision"])


def test_config_errors_name_the_region_key():
    import yaml

    from plexus.config import validate_config
    from plexus.config_checks import config_errors

    config = validate_config(yaml.safe_load(open("config/examples/regions.yaml")))
    assert config_errors(config) == []
    config["regions"]["core"] = ["necrosis", "tumour"]
    assert any(e.startswith("regions.core: 'tumour' is not a learnt foreground class") for e in config_errors(config))
    config["regions"] = {}
    assert "regions: task 'regions' needs at least one region (name: [classes])" in config_errors(config)


def test_submission_rows_and_nested_maps(tmp_path):
    """Label maps and run-length rows of the decided pipeline, from fold-averaged test probabilities."""
    from plexus.io.rle import decode

    label = np.zeros((6, 7), np.uint8)
    label[1:5, 1:6] = 2
    label[2:4, 2:5] = 1
    label[3, 3] = 4
    prob = np.eye(5, dtype=np.float32)[label].transpose(2, 0, 1)
    np.savez(tmp_path / "mean.npz", image_id=np.array(["t1"]), prob=prob[None].astype(np.float16))
    pd.DataFrame([{"image_id": "t1", "height": 6, "width": 7}]).to_csv(tmp_path / "test.csv", index=False)
    pipeline = {"regions": {name: {"cutoff": 0.5, "min_area": 0} for name in REGIONS}}
    task.labelmaps_stage([tmp_path / "mean.npz"], ["labels"], tmp_path / "test.csv", pipeline, CLASSES, REGIONS,
                         tmp_path / "maps", tmp_path / "sub.csv")
    written = np.asarray(Image.open(tmp_path / "maps" / "t1.png"))
    expected = np.zeros_like(label)
    expected[label == 2], expected[label == 1], expected[label == 4] = 1, 2, 3
    np.testing.assert_array_equal(written, expected)
    rows = pd.read_csv(tmp_path / "sub.csv", keep_default_na=False).set_index("region")
    for r, name in enumerate(REGIONS):
        np.testing.assert_array_equal(decode(rows.loc[name, "EncodedPixels"], (6, 7)), MATRIX[r][label])
    shutil.rmtree(tmp_path / "maps")


def test_sheet_checks_the_second_rater_column(tmp_path):
    from plexus.data.sheet import SheetError, check_files, read_sheet

    _write(tmp_path / "img.png", np.zeros((4, 4)))
    _write(tmp_path / "m.png", np.zeros((4, 4)))
    _write(tmp_path / "small.png", np.zeros((3, 4)))
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("image_id\tsubject\tsplit\timage\tmask\tmask_rater2\n"
                     "a\ts\ttrain\timg.png\tm.png\tsmall.png\n"
                     "b\ts\ttrain\timg.png\tm.png\tmissing.png\n"
                     "c\ts\ttrain\timg.png\tm.png\t\n")
    frame = read_sheet(sheet)
    assert frame.set_index("image_id").loc["a", "mask_rater2"] == str(tmp_path / "small.png")
    with pytest.raises(SheetError) as error:
        check_files(frame)
    text = str(error.value)
    assert "row 2 (a), column mask_rater2" in text and "the mask is 3x4, the image is 4x4" in text
    assert "row 3 (b), column mask_rater2" in text and "missing.png: no such file" in text
    assert "row 4" not in text


def test_postprocess_and_summary_of_the_task_on_a_tiny_study(tmp_path):
    """The task's own stages on the tiny study: decision, then the table with the human reference."""
    train, folds, probs, paths = _tiny_study(tmp_path)
    second = tmp_path / "r2.png"
    shutil.copy(train["mask"].iloc[1], second)
    train.assign(mask_rater2=["", str(second)] + [""] * (len(train) - 2)).to_csv(tmp_path / "train.csv", index=False)
    settings = {"classes": CLASSES, "ignore": {}, "regions": REGIONS, "modes": {"m": "labels"},
                "cutoffs": [0.5], "min_areas": [0], "candidates": [], "n_boot": 100, "seed": 0}
    tune_job = SimpleNamespace(
        input=_Inputs({"oof_m": paths, "folds": tmp_path / "folds.csv", "train": tmp_path / "train.csv"}),
        output=SimpleNamespace(grid=tmp_path / "g.csv", best=tmp_path / "b.json", per_image=tmp_path / "p.csv"),
        params=SimpleNamespace(members=["m"], settings=settings))
    task.TASK.tune(tune_job)
    job = SimpleNamespace(input=SimpleNamespace(per_image=tmp_path / "p.csv", best=tmp_path / "b.json"),
                          output=SimpleNamespace(json=tmp_path / "d.json", decisions=tmp_path / "d.csv",
                                                 per_image=tmp_path / "dp.csv"),
                          params=SimpleNamespace(members=["m"], settings=settings))
    task.TASK.postprocess(job)
    decision = json.loads((tmp_path / "d.json").read_text())
    assert decision["pipeline"]["tta"] is False and decision["score_name"] == "mean region Dice"
    table_job = SimpleNamespace(input=SimpleNamespace(per_image=[tmp_path / "p.csv"], train=tmp_path / "train.csv"),
                                output=SimpleNamespace(csv=tmp_path / "t.csv", md=tmp_path / "t.md"),
                                params=SimpleNamespace(names=["m"], settings=settings))
    task.TASK.summary_table(table_job)
    table = pd.read_csv(tmp_path / "t.csv")
    human = table[(table["name"] == "rater2") & (table["metric"] == "dice")]
    assert set(human["scope"]) == {"rated"} and (human["mean"] == 1.0).all()  # a copy of the truth
    rated = table[(table["scope"] == "rated") & (table["name"] == "m")]
    assert set(rated.dropna(subset=["mean"])["n_images"]) == {1}
    # a metric undefined on every image (no truth: no sensitivity) keeps its row, NaN with 0 images
    assert (rated[rated["mean"].isna()]["n_images"] == 0).all()


class _Inputs(dict):
    """Snakemake-like inputs: keys and attributes."""

    def __getattr__(self, name):
        return self[name]


def test_second_rater_of_a_classes_study_scores_each_class(tmp_path):
    """The same scoring for the classes task: each foreground class its own unit; ignored pixels left out."""
    from plexus.evaluation.raters import foreground_matrix, rater2_frame

    first = np.zeros((3, 4), np.uint8)
    first[0, :2], first[1, :] = 128, 255
    first[2, 3] = 7                       # ignored
    second = first.copy()
    second[0, 1] = 0                      # one nerve pixel missed
    second[2, 3] = 128                    # a call on an ignored pixel counts nowhere
    _write(tmp_path / "a.png", first)
    _write(tmp_path / "b.png", second)
    train = pd.DataFrame([{"image_id": "x", "subject": "s", "mask": str(tmp_path / "a.png"),
                           "mask_rater2": str(tmp_path / "b.png")}])
    learnt = {"background": 0, "nerve": 128, "artery": 255}
    frame = rater2_frame(train, learnt, foreground_matrix(3), ["nerve", "artery"], "class",
                         ignore={"void": 7}).set_index("class")
    assert frame.loc["nerve", "dice"] == pytest.approx(2 * 1 / (1 + 2))
    assert frame.loc["nerve", "pred_area"] == 1 and frame.loc["nerve", "true_area"] == 2
    assert frame.loc["artery", "dice"] == 1.0


def test_member_arrays_names_the_members_that_lack_a_key(tmp_path):
    """One loader of every member's OOF maps for the classes, instances and regions tasks."""
    from plexus.io.contracts import member_arrays

    np.savez(tmp_path / "a.npz", image_id=np.array(["x", "y"]), prob=np.arange(2.0))
    np.savez(tmp_path / "b.npz", image_id=np.array(["y", "x"]), prob=np.arange(2.0), prob_tta=np.arange(2.0))
    got = member_arrays({"a": [tmp_path / "a.npz"], "b": [tmp_path / "b.npz"]}, ["y", "x"])
    np.testing.assert_array_equal(got[0], [1.0, 0.0])
    np.testing.assert_array_equal(got[1], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"no 'prob_tta' array in the OOF files of \['a', 'b'\]: rerun their "
                                         r"prediction with predict.tta set"):
        member_arrays({"a": [tmp_path / "a.npz"], "b": [tmp_path / "b.npz"]}, ["x"], "prob_tta")


def test_the_otsu_step_thresholds_each_region_at_its_own_otsu_level():
    from plexus.tasks.regions import final_mask, final_masks

    prob = np.full((8, 10), 0.2, np.float32)
    prob[2:6, 3:8] = 0.6  # bimodal: Otsu falls between 0.2 and 0.6, whatever the tuned cutoff
    assert not final_mask(prob, 0.7, 0).any()
    np.testing.assert_array_equal(final_mask(prob, 0.7, 0, otsu=True), prob > 0.5)
    # with the minimum area still applied after it, and per region through a decision's pipeline
    assert not final_mask(prob, 0.7, 21, otsu=True).any()
    stacked = final_masks(np.stack([prob, prob]), [0.7, 0.1], [0, 0], {"otsu": True})
    np.testing.assert_array_equal(stacked[0], prob > 0.5)
    np.testing.assert_array_equal(stacked[1], prob > 0.5)
