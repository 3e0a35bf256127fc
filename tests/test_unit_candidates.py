"""The map candidates of the classes and regions tasks, one unit (class, region) at a time: Otsu and
hysteresis next to the largest component and filled holes (issue #27), hand-computed; the dense CRF
of the map and its image (classes: one K-label CRF of the softmax before the argmax; regions: the
binary task's two-label CRF of each region's map before its cutoff); the shared selection of a
candidate's best variant (plexus.tasks.base.choose_map_steps); and the decided steps applied where
the decision is applied (label maps of test images, the volumes' unit masks, the qualitative panels)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.postprocess.candidates import hysteresis, otsu_threshold
from plexus.postprocess.multiclass import class_thresholds
from plexus.tasks import classes as classes_task
from plexus.tasks import regions as regions_task
from plexus.tasks.base import choose_map_steps, map_step_candidates, step_variants

CLASSES = {"background": 0, "a": 1, "b": 2}
REGIONS = {"whole": ["a", "b"], "core": ["b"]}


class _Inputs(dict):
    """Snakemake-like inputs: keys and attributes."""

    def __getattr__(self, name):
        return self[name]


def _fold_oofs(tmp_path, probs, folds) -> list[str]:
    """One OOF file per fold (``oof{k}.npz``) of the images ``im{i}`` whose fold is ``folds[i]``."""
    paths = []
    for fold in range(3):
        rows_k = [i for i in range(len(folds)) if folds[i] == fold]
        np.savez(tmp_path / f"oof{fold}.npz", image_id=np.array([f"im{i}" for i in rows_k]),
                 prob=np.stack([probs[i] for i in rows_k]).astype(np.float16))
        paths.append(str(tmp_path / f"oof{fold}.npz"))
    return paths


# --------------------------------------------------------------------------- classes, by hand



def _submission_job(tmp_path, settings: dict) -> SimpleNamespace:
    """The submission job of one decision (``d.json``) on the test means ``mean.npz`` in ``tmp_path``."""
    return SimpleNamespace(input=SimpleNamespace(means=[tmp_path / "mean.npz"], test=tmp_path / "test.csv",
                                                 decision=tmp_path / "d.json"),
                           output=SimpleNamespace(labelmaps=tmp_path / "maps", csv=tmp_path / "sub.csv",
                                                  summary=tmp_path / "sub.json"),
                           params=SimpleNamespace(settings=settings))

def test_class_hysteresis_keeps_exactly_the_components_holding_a_seed():
    label = np.zeros((6, 9), np.uint8)
    label[1:3, 1:3] = 1  # class 1, component A: its p_1 reaches 0.9
    label[1:3, 6:8] = 1  # class 1, component B: p_1 at most 0.6
    label[4, 4] = 1  # class 1, component C: touches A? no (rows 1-2 vs 4): p_1 0.95 seeds it
    label[4:6, 7:9] = 2  # class 2: its own map has a seed
    prob = np.zeros((3, 6, 9), np.float32)
    prob[0] = 1.0
    prob[1][label == 1], prob[0][label == 1] = 0.6, 0.4
    prob[1, 1, 1], prob[0, 1, 1] = 0.9, 0.1
    prob[1, 4, 4], prob[0, 4, 4] = 0.95, 0.05
    prob[2][label == 2], prob[0][label == 2] = 0.85, 0.15
    prob[1, 4:6, 7:9] = 0.99  # class 1's map is high on class 2's pixels: they are not class 1, nothing changes
    out = class_thresholds(label, prob, hysteresis_high=0.8)
    expected = label.copy()
    expected[1:3, 6:8] = 0  # B holds no pixel with p_1 > 0.8
    np.testing.assert_array_equal(out, expected)
    # a level above every seed empties the classes; at 0.6 exactly B's pixels are not above it
    np.testing.assert_array_equal(class_thresholds(label, prob, hysteresis_high=0.99), np.zeros_like(label))
    np.testing.assert_array_equal(class_thresholds(label, prob, hysteresis_high=0.6), expected)
    np.testing.assert_array_equal(class_thresholds(label, prob, hysteresis_high=0.5), label)
    np.testing.assert_array_equal(class_thresholds(label, prob), label)  # no step: a copy


def test_class_hysteresis_components_are_8_connected():
    label = np.zeros((4, 4), np.uint8)
    label[0, 0] = label[1, 1] = label[3, 3] = 1  # (0,0)-(1,1) one component (diagonal), (3,3) another
    prob = np.stack([1 - 0.55 * (label == 1), 0.55 * (label == 1)]).astype(np.float32)
    prob[:, 0, 0] = 0.1, 0.9
    expected = label.copy()
    expected[3, 3] = 0
    np.testing.assert_array_equal(class_thresholds(label, prob, hysteresis_high=0.7), expected)


def test_class_otsu_keeps_a_class_only_above_its_own_otsu_threshold():
    # every pixel is class 1 by the argmax; p_1 takes two values: Otsu splits them
    prob = np.zeros((3, 4, 6), np.float32)
    prob[1], prob[0] = 0.55, 0.45
    prob[1, :, 3:], prob[0, :, 3:] = 0.95, 0.05
    label = np.ones((4, 6), np.uint8)
    assert 0.55 < otsu_threshold(prob[1]) < 0.95
    expected = np.zeros_like(label)
    expected[:, 3:] = 1
    np.testing.assert_array_equal(class_thresholds(label, prob, otsu=True), expected)
    with pytest.raises(ValueError, match="alternatives"):
        class_thresholds(label, prob, otsu=True, hysteresis_high=0.8)


def test_decided_label_thresholds_before_the_minimum_areas_and_needs_the_probabilities():
    label = np.zeros((5, 8), np.uint8)
    label[0:2, 0:2] = 1  # 4 px, seeded
    label[3:5, 5:8] = 1  # 6 px, not seeded
    prob = np.stack([1 - 0.6 * (label == 1), 0.6 * (label == 1), np.zeros((5, 8))]).astype(np.float32)
    prob[:, 0, 0] = 0.05, 0.95, 0.0
    pipeline = {"classes": {"a": {"min_area": 5}, "b": {"min_area": 0}}, "hysteresis_high": 0.8}
    # hysteresis drops the 6 px component, then the minimum area the 4 px one
    np.testing.assert_array_equal(classes_task.decided_label(label, pipeline, CLASSES, prob), np.zeros_like(label))
    pipeline["classes"]["a"]["min_area"] = 0
    expected = np.where(np.arange(8)[None, :] < 2, label, 0)
    np.testing.assert_array_equal(classes_task.decided_label(label, pipeline, CLASSES, prob), expected)
    with pytest.raises(ValueError, match="needs the class probabilities"):
        classes_task.decided_label(label, pipeline, CLASSES)


# --------------------------------------------------------------------------- regions, by hand


def test_region_hysteresis_is_the_binary_hysteresis_of_the_region_map_at_its_cutoff():
    rng = np.random.default_rng(3)
    prob = rng.random((20, 24)).astype(np.float32)
    for cutoff, high in ((0.5, 0.8), (0.3, 0.95), (0.6, 0.9)):
        np.testing.assert_array_equal(regions_task.final_mask(prob, cutoff, 0, hysteresis_high=high),
                                      hysteresis(prob, cutoff, high))
    # the minimum area and the other kept steps come after it, as for the plain cutoff
    from plexus.postprocess.components import remove_small_components

    np.testing.assert_array_equal(regions_task.final_mask(prob, 0.5, 4, hysteresis_high=0.8, largest_only=True),
                                  remove_small_components(hysteresis(prob, 0.5, 0.8), 4, largest_only=True))
    # a level at or below the cutoff leaves the region as it is
    for high in (0.5, 0.3):
        np.testing.assert_array_equal(regions_task.final_mask(prob, 0.5, 0, hysteresis_high=high), prob > 0.5)
    with pytest.raises(ValueError, match="alternatives"):
        regions_task.final_mask(prob, 0.5, 0, otsu=True, hysteresis_high=0.8)


def test_a_seed_level_applies_to_the_regions_whose_cutoff_is_below_it():
    prob = np.zeros((2, 5, 7), np.float32)
    prob[:, 1:3, 0:2] = 0.95  # a seeded blob
    prob[:, 1:4, 4:6] = 0.85  # an unseeded one (at 0.9)
    masks = regions_task.final_masks(prob, [0.5, 0.9], [0, 0], {"hysteresis_high": 0.9})
    np.testing.assert_array_equal(masks[0], prob[0] > 0.9)  # region 0: only the seeded blob, grown to 0.5
    np.testing.assert_array_equal(masks[1], prob[1] > 0.9)  # region 1: 0.9 is its cutoff, unchanged
    masks = regions_task.final_masks(prob, [0.5, 0.5], [0, 0], {"hysteresis_high": 0.9})
    np.testing.assert_array_equal(masks[1], prob[1] > 0.9)
    plain = regions_task.final_masks(prob, [0.5, 0.5], [0, 0], {"hysteresis_high": None})
    np.testing.assert_array_equal(plain[0], prob[0] > 0.5)


# --------------------------------------------------------------------------- the shared selection


def test_step_variants_one_per_level_and_otsu_and_hysteresis_exclude_each_other():
    assert step_variants("hysteresis", {}, [0.7, 0.8]) == [{"hysteresis_high": 0.7}, {"hysteresis_high": 0.8}]
    assert step_variants("hysteresis", {}, []) == []
    assert step_variants("otsu", {}) == [{"otsu": True}]
    assert step_variants("otsu", {"hysteresis_high": 0.8}) == []
    assert step_variants("hysteresis", {"otsu": True}, [0.8]) == []
    assert step_variants("largest_component", {"otsu": True}) == [{"largest_only": True}]
    assert step_variants("fill_holes", {"fill_holes": True}) == []


def _frame(n_folds=3, per_fold=6):
    fold = np.repeat(np.arange(n_folds), per_fold)
    base = 0.4 + 0.02 * np.arange(len(fold)) % 0.3
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(len(fold))], "subject": [f"s{k}" for k in
                                                                                        range(len(fold))],
                         "fold": fold, "postprocessed": base, "cross_fitted": base - 0.01}), base


def test_choose_map_steps_takes_each_candidates_best_level_on_the_images_it_decides_on():
    per_image, base = _frame()
    fold = per_image["fold"].to_numpy()
    # level 0.7: +0.1 on folds 0 and 1, nothing on fold 2; level 0.8: +0.05 on folds 0 and 1, +0.4 on fold 2
    gains = {None: np.zeros(len(fold)), 0.7: np.where(fold < 2, 0.1, 0.0), 0.8: np.where(fold < 2, 0.05, 0.4)}
    calls = []

    def scores(tta, setting, steps, rows):
        calls.append((setting, tuple(sorted(steps.items())), len(rows)))
        out = np.full(len(fold), np.nan)
        out[rows] = (base + gains[steps.get("hysteresis_high")])[rows]
        return out

    decisions = []
    out, pipeline = choose_map_steps(
        per_image, {"tta": False}, decisions, {0: False, 1: False, 2: False}, candidates=["otsu", "hysteresis"],
        variants=lambda c, setting, steps: step_variants(c, steps, [0.7, 0.8]) if c == "hysteresis" else [],
        scores=scores, final_setting="final", fold_setting=lambda tta, k: f"fold{k}",
        subjects=per_image["subject"].to_numpy(), fold_of=fold, boot={"n_boot": 200, "seed": 0})
    # on all images 0.8 is best (mean gain 0.167 against 0.067): kept, recorded with its level
    assert [d["candidate"] for d in decisions] == ["hysteresis"]  # otsu had no variant: not tried, no record
    [record] = decisions
    assert record["kept"] and record["setting"] == {"hysteresis_high": 0.8}
    assert record["score_with"] - record["score_without"] == pytest.approx(gains[0.8].mean())
    assert pipeline == {"tta": False, "otsu": False, "hysteresis_high": 0.8}
    np.testing.assert_allclose(out["postprocessed"], base + gains[0.8])
    # fold 2 decided on folds 0 and 1 takes 0.7 (no gain on fold 2); folds 0 and 1 take 0.8
    np.testing.assert_allclose(out["cross_fitted"], np.where(fold == 2, base, base + 0.05))
    # every (setting, steps) is scored once per image, whichever selections read it
    scored = {}
    for setting, steps, n in calls:
        scored[(setting, steps)] = scored.get((setting, steps), 0) + n
    assert max(scored.values()) <= len(fold)


def test_once_otsu_is_kept_hysteresis_is_not_tried():
    per_image, base = _frame()
    fold = per_image["fold"].to_numpy()

    def scores(tta, setting, steps, rows):
        gain = 0.2 * bool(steps.get("otsu")) + (0.3 if steps.get("hysteresis_high") else 0.0)
        out = np.full(len(fold), np.nan)
        out[rows] = base[rows] + gain
        return out

    decisions = []
    out, pipeline = choose_map_steps(
        per_image, {"tta": False}, decisions, {0: False, 1: False, 2: False},
        candidates=["otsu", "hysteresis", "largest_component"],
        variants=lambda c, setting, steps: step_variants(c, steps, [0.8]), scores=scores, final_setting="final",
        fold_setting=lambda tta, k: "final", subjects=per_image["subject"].to_numpy(), fold_of=fold,
        boot={"n_boot": 200, "seed": 0})
    assert [(d["candidate"], d["kept"]) for d in decisions] == [("otsu", True), ("largest_component", False)]
    assert pipeline == {"tta": False, "otsu": True, "hysteresis_high": None, "largest_only": False}
    np.testing.assert_allclose(out["cross_fitted"], base + 0.2)


def test_choose_map_steps_still_checks_the_scorer_against_the_tuning():
    per_image, base = _frame()
    with pytest.raises(ValueError, match="scores\\(\\) and tune disagree"):
        choose_map_steps(per_image, {"tta": False}, [], {}, candidates=["otsu"],
                         variants=lambda c, setting, steps: step_variants(c, steps),
                         scores=lambda tta, setting, steps, rows: np.where(np.isin(np.arange(len(base)), rows),
                                                                           base + 0.1, np.nan),
                         final_setting="final", fold_setting=None, subjects=per_image["subject"].to_numpy(),
                         fold_of=per_image["fold"].to_numpy(), boot={"n_boot": 100, "seed": 0})


# --------------------------------------------------------------------------- tiny studies, end to end


def _write(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def _class_image(rng, fp_level: float, with_object: bool = True):
    """A 12x14 truth of class a (a 4x4 square) and class b (a 2x3 bar), and softmax maps: the true
    objects at 0.95, a false class-a blob at ``fp_level`` (the argmax's class a all the same)."""
    label = np.zeros((12, 14), np.uint8)
    prob = np.zeros((3, 12, 14), np.float32)
    prob[0] = 0.9
    prob[1] = prob[2] = 0.05
    if with_object:
        y, x = rng.integers(1, 4), rng.integers(1, 4)
        label[y:y + 4, x:x + 4] = 1
        label[9:11, 1:4] = 2
    prob[:, label == 1] = np.array([0.03, 0.95, 0.02])[:, None]
    prob[:, label == 2] = np.array([0.03, 0.02, 0.95])[:, None]
    prob[:, 2:5, 9:12] = np.array([0.97 - fp_level, fp_level, 0.03])[:, None, None]  # never a true pixel
    return label, prob


def _classes_study(tmp_path, n=12):
    rng = np.random.default_rng(0)
    rows, probs, folds = [], [], []
    for i in range(n):
        label, prob = _class_image(rng, fp_level=0.6 if i % 2 else 0.75)
        _write(tmp_path / f"m{i}.png", label)
        probs.append(prob)
        rows.append({"image_id": f"im{i}", "subject": f"s{i}", "split": "train", "mask": str(tmp_path / f"m{i}.png"),
                     "height": 12, "width": 14})
        folds.append(i % 3)
    train = pd.DataFrame(rows)
    train.to_csv(tmp_path / "train.csv", index=False)
    order = np.argsort(folds, kind="stable")
    pd.DataFrame({"image_id": train["image_id"][order], "subject": train["subject"][order],
                  "fold": np.asarray(folds)[order]}).to_csv(tmp_path / "folds.csv", index=False)
    return _fold_oofs(tmp_path, probs, folds)


def _decide(task, tmp_path, paths, settings):
    tune_job = SimpleNamespace(
        input=_Inputs({"oof_m": paths, "folds": tmp_path / "folds.csv", "train": tmp_path / "train.csv"}),
        output=SimpleNamespace(grid=tmp_path / "g.csv", best=tmp_path / "b.json", per_image=tmp_path / "p.csv"),
        params=SimpleNamespace(members=["m"], settings=settings))
    task.tune(tune_job)
    job = SimpleNamespace(
        input=_Inputs({"oof_m": paths, "folds": tmp_path / "folds.csv", "train": tmp_path / "train.csv",
                       "per_image": tmp_path / "p.csv", "best": tmp_path / "b.json"}),
        output=SimpleNamespace(json=tmp_path / "d.json", decisions=tmp_path / "d.csv", per_image=tmp_path / "dp.csv"),
        params=SimpleNamespace(members=["m"], settings=settings))
    task.postprocess(job)
    return json.loads((tmp_path / "d.json").read_text()), pd.read_csv(tmp_path / "dp.csv")


def test_classes_keep_the_best_hysteresis_level_and_apply_it_to_the_test_label_maps(tmp_path):
    paths = _classes_study(tmp_path)
    settings = {"classes": CLASSES, "ignore": {}, "grid": [0], "n_boot": 200, "seed": 0, "min_gain": 0.0,
                "candidates": ["otsu", "hysteresis", "largest_component"], "hysteresis_highs": [0.3, 0.7, 0.8, 0.97]}
    decision, per_image = _decide(classes_task.TASK, tmp_path, paths, settings)
    records = {d["candidate"]: d for d in decision["decisions"]}
    assert list(records) == ["otsu", "hysteresis", "largest_component"]
    # 0.7 drops half the false blobs, 0.8 all, 0.97 the true objects too; 0.3 (below 1/3) is not tried
    assert not records["otsu"]["kept"]
    assert records["hysteresis"]["kept"] and records["hysteresis"]["setting"] == {"hysteresis_high": 0.8}
    assert not records["largest_component"]["kept"]  # one class-a component is left: nothing to gain
    assert decision["pipeline"]["hysteresis_high"] == 0.8 and decision["pipeline"]["otsu"] is False
    assert decision["score"] == pytest.approx(1.0) and per_image["postprocessed"].to_numpy() == pytest.approx(1.0)
    np.testing.assert_allclose(per_image["cross_fitted"], 1.0)  # every fold takes 0.8 on the other two
    # the test label maps apply the kept level: a blob at 0.75 goes (it would stay at 0.7)
    label, prob = _class_image(np.random.default_rng(5), fp_level=0.75)
    np.savez(tmp_path / "mean.npz", image_id=np.array(["t1"]), prob=prob[None].astype(np.float16))
    pd.DataFrame([{"image_id": "t1", "height": 12, "width": 14}]).to_csv(tmp_path / "test.csv", index=False)
    sub = _submission_job(tmp_path, {"classes": CLASSES})
    classes_task.TASK.submission(sub)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "maps" / "t1.png")), label)
    assert json.loads((tmp_path / "sub.json").read_text())["pipeline"]["hysteresis_high"] == 0.8
    # the volumes' unit masks apply it too (one mask per foreground class)
    [masks] = classes_task.TASK.decided_unit_masks({"classes": CLASSES}, {"m": [tmp_path / "mean.npz"]},
                                                  pd.DataFrame([{"image_id": "t1", "height": 12, "width": 14}]),
                                                  ["t1"], decision)
    np.testing.assert_array_equal(masks, np.stack([label == 1, label == 2]))


def test_classes_levels_at_or_below_one_over_k_are_not_tried(tmp_path):
    """A pixel of class c >= 1 of the argmax has p_c > 1/K: such a level would keep every component."""
    paths = _classes_study(tmp_path)
    settings = {"classes": CLASSES, "ignore": {}, "grid": [0], "n_boot": 200, "seed": 0,
                "candidates": ["hysteresis", "fill_holes"], "hysteresis_highs": [0.2, 1 / 3]}
    decision, _ = _decide(classes_task.TASK, tmp_path, paths, settings)
    assert [(d["candidate"], d["kept"]) for d in decision["decisions"]] == [("fill_holes", False)]
    assert decision["pipeline"]["hysteresis_high"] is None and decision["pipeline"]["fill_holes"] is False


def _region_image(rng, fp_level: float):
    """Region maps (whole, core) of a 12x14 image: the true objects at 0.95, a false blob of the
    whole region at ``fp_level`` (above the 0.5 cutoff)."""
    label = np.zeros((12, 14), np.uint8)
    y, x = rng.integers(1, 4), rng.integers(1, 4)
    label[y:y + 4, x:x + 4] = 1
    label[y + 1:y + 3, x + 1:x + 3] = 2
    whole, core = (label > 0), (label == 2)
    prob = np.stack([np.where(whole, 0.95, 0.05), np.where(core, 0.95, 0.05)]).astype(np.float32)
    prob[0, 2:5, 9:12] = fp_level
    return label, prob


def _regions_study(tmp_path, n=12):
    rng = np.random.default_rng(1)
    rows, probs = [], []
    for i in range(n):
        label, prob = _region_image(rng, 0.6 if i % 2 else 0.75)
        _write(tmp_path / f"m{i}.png", label)
        probs.append(prob)
        rows.append({"image_id": f"im{i}", "subject": f"s{i}", "split": "train", "mask": str(tmp_path / f"m{i}.png"),
                     "height": 12, "width": 14})
    train = pd.DataFrame(rows)
    train.to_csv(tmp_path / "train.csv", index=False)
    folds = [i // 4 for i in range(n)]
    pd.DataFrame({"image_id": train["image_id"], "subject": train["subject"], "fold": folds}).to_csv(
        tmp_path / "folds.csv", index=False)
    return _fold_oofs(tmp_path, probs, folds)


def _region_settings(**changes):
    return {"classes": CLASSES, "ignore": {}, "regions": REGIONS, "modes": {"m": "regions"}, "cutoffs": [0.5],
            "min_areas": [0], "n_boot": 200, "seed": 0, "min_gain": 0.0,
            "candidates": ["otsu", "hysteresis", "largest_component"], "hysteresis_highs": [0.4, 0.7, 0.8], **changes}


def test_regions_keep_the_best_hysteresis_level_and_apply_it_to_the_test_label_maps(tmp_path):
    paths = _regions_study(tmp_path)
    decision, per_image = _decide(regions_task.TASK, tmp_path, paths, _region_settings())
    records = {d["candidate"]: d for d in decision["decisions"]}
    assert list(records) == ["otsu", "hysteresis", "largest_component"]
    assert not records["otsu"]["kept"]  # Otsu falls between 0.05 and the blobs: they stay
    assert records["hysteresis"]["kept"] and records["hysteresis"]["setting"] == {"hysteresis_high": 0.8}
    assert decision["pipeline"]["hysteresis_high"] == 0.8
    assert decision["score"] == pytest.approx(1.0)
    np.testing.assert_allclose(per_image["cross_fitted"], 1.0)
    # the test label maps (nested: core inside whole) apply the kept level to each region
    label, prob = _region_image(np.random.default_rng(7), 0.75)
    np.savez(tmp_path / "mean.npz", image_id=np.array(["t1"]), prob=prob[None].astype(np.float16))
    test = pd.DataFrame([{"image_id": "t1", "height": 12, "width": 14}])
    test.to_csv(tmp_path / "test.csv", index=False)
    regions_task.labelmaps_stage([tmp_path / "mean.npz"], ["regions"], tmp_path / "test.csv", decision["pipeline"],
                                 CLASSES, REGIONS, tmp_path / "maps", tmp_path / "sub.csv")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "maps" / "t1.png")), label)
    [masks] = regions_task.TASK.decided_unit_masks(_region_settings(), {"m": [tmp_path / "mean.npz"]}, test,
                                                   ["t1"], decision)
    np.testing.assert_array_equal(masks, np.stack([label > 0, label == 2]))


def test_regions_levels_at_or_below_every_cutoff_are_not_tried(tmp_path):
    paths = _regions_study(tmp_path)
    decision, _ = _decide(regions_task.TASK, tmp_path, paths, _region_settings(hysteresis_highs=[0.3, 0.5]))
    assert [d["candidate"] for d in decision["decisions"]] == ["otsu", "largest_component"]
    assert decision["pipeline"]["hysteresis_high"] is None
    # largest_component alone drops the false blobs: kept, and recorded as such
    assert decision["decisions"][1]["kept"] and decision["pipeline"]["largest_only"] is True


# --------------------------------------------------------------------------- the dense CRF


GREY = np.array([40, 130, 220], np.uint8)  # the image's colour of the background, class a, class b


def test_crf_is_tried_first_among_the_map_steps_and_added_once():
    assert map_step_candidates(["tta", "otsu", "crf", "remove_small", "fill_holes"]) == ["crf", "otsu", "fill_holes"]
    assert map_step_candidates(["hysteresis", "largest_component"]) == ["hysteresis", "largest_component"]
    assert step_variants("crf", {}) == [{"crf": True}]
    assert step_variants("crf", {"crf": True}) == []
    # the crf replaces the map, not the cut: the thresholds are still tried on top of it
    assert step_variants("otsu", {"crf": True}) == [{"otsu": True}]
    assert step_variants("hysteresis", {"crf": True}, [0.8]) == [{"hysteresis_high": 0.8}]


def test_decided_label_with_crf_is_the_argmax_of_the_k_label_crf_then_the_other_steps():
    """Three bands (background, a, b) drawn in their colours; the softmax puts an isolated pixel of
    band a in class b (0.9). The crf gives it back to class a (its colour is a's); the minimum areas
    and the thresholds then work on the CRF's label map and marginals."""
    from plexus.postprocess.multiclass import argmax_labels, class_crf

    label = np.repeat(np.arange(3), 5)[None, :].repeat(12, axis=0).astype(np.uint8)
    image = GREY[label]
    prob = np.where(np.arange(3)[:, None, None] == label[None], 0.8, 0.1).astype(np.float32)
    prob[:, 6, 7] = 0.05, 0.05, 0.9
    plain = argmax_labels(prob)
    assert plain[6, 7] == 2 and (plain != label).sum() == 1
    pipeline = {"classes": {"a": {"min_area": 0}, "b": {"min_area": 0}}, "crf": True}
    settings = {"scale": 1}
    out = classes_task.decided_label(plain, pipeline, CLASSES, prob, image, settings)
    np.testing.assert_array_equal(out, label)
    np.testing.assert_array_equal(out, argmax_labels(class_crf(prob, image, settings)))
    # without the crf the pixel stays class b; a minimum area of 2 then removes it (background), with the
    # crf there is nothing to remove
    no_crf = {**pipeline, "crf": False, "classes": {"a": {"min_area": 0}, "b": {"min_area": 2}}}
    expected = label.copy()
    expected[6, 7] = 0
    np.testing.assert_array_equal(classes_task.decided_label(plain, no_crf, CLASSES, prob, image, settings), expected)
    np.testing.assert_array_equal(classes_task.decided_label(plain, {**no_crf, "crf": True}, CLASSES, prob, image,
                                                             settings), label)
    with pytest.raises(ValueError, match="crf needs the class probabilities and the image"):
        classes_task.decided_label(plain, pipeline, CLASSES, prob)


def test_region_crf_is_the_binary_crf_of_each_region_map_before_its_cutoff():
    """Each region's map is a two-label problem: its CRF marginals are the binary task's dense_crf of
    that map, and its decided mask the binary pipeline with crf at the region's cutoff, its minimum
    area as remove_below and the other kept steps."""
    from scipy import ndimage

    from plexus.postprocess.candidates import CRF_DEFAULTS, PostProcess, dense_crf

    rng = np.random.default_rng(5)
    prob = np.stack([ndimage.gaussian_filter(rng.random((20, 26)), 2) for _ in range(2)]).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    image = (rng.random((20, 26)) * 255).astype(np.uint8)
    settings = {"scale": 2, "iterations": 3}
    marginals = regions_task.region_crf(prob, image, settings)
    for r in range(2):
        assert np.array_equal(marginals[r], dense_crf(prob[r], image, **{**CRF_DEFAULTS, **settings}))
    cutoffs, areas = [0.4, 0.6], [0, 5]
    for steps in ({"crf": True}, {"crf": True, "largest_only": True, "fill_holes": True}, {"crf": True, "otsu": True}):
        masks = regions_task.final_masks(prob, cutoffs, areas, steps, image, settings)
        for r in range(2):
            binary = PostProcess(cutoff=cutoffs[r], remove_below=areas[r], crf=True, otsu=bool(steps.get("otsu")),
                                 largest_only=bool(steps.get("largest_only")), fill_holes=bool(steps.get("fill_holes")))
            np.testing.assert_array_equal(masks[r], binary.apply(prob[r], None, image, settings), err_msg=str(steps))
    # without crf the image is not read; with it, it is needed
    np.testing.assert_array_equal(regions_task.final_masks(prob, cutoffs, [0, 0], {"crf": False}), prob > [[[0.4]],
                                                                                                            [[0.6]]])
    with pytest.raises(ValueError, match="crf needs the image"):
        regions_task.final_masks(prob, cutoffs, areas, {"crf": True})


def test_the_postprocess_settings_of_classes_and_regions_carry_crf_and_its_settings():
    """A config that lists crf (as config/kaggle.yaml does for binary) makes classes and regions try
    it, at postprocess.crf."""
    from pathlib import Path

    import yaml

    from plexus.config import validate_config

    repo = Path(__file__).resolve().parents[1]
    for task, example in ((classes_task.TASK, "multiclass.yaml"), (regions_task.TASK, "regions.yaml")):
        config = yaml.safe_load((repo / "config" / "examples" / example).read_text())
        config.setdefault("postprocess", {}).update(candidates=["tta", "crf", "otsu", "remove_small"],
                                                    crf={"scale": 2})
        settings = task.settings("postprocess", validate_config(config))
        assert settings["candidates"] == ["tta", "crf", "otsu"]  # remove_small is binary's (tuned min sizes here)
        assert settings["crf"]["scale"] == 2 and settings["crf"]["iterations"] == 5


def _crf_class_image(rng, noisy: bool):
    """A 12x14 truth of class a (a 5x5 square) and class b (a 3x5 bar) drawn in their colours
    (:data:`GREY`), and softmax maps of 0.9 on the true class. ``noisy``: an isolated pixel of the
    square in class b and one of the background in class a (both 0.9; the image shows their true
    class: the CRF fixes them). Else: a true 1 px object of class b that the image does not show,
    predicted right (0.9; the CRF erases it)."""
    label = np.zeros((12, 14), np.uint8)
    y, x = rng.integers(1, 4), rng.integers(1, 4)
    label[y:y + 5, x:x + 5] = 1
    label[8:11, 8:13] = 2
    image = GREY[label]
    prob = np.where(np.arange(3)[:, None, None] == label[None], 0.9, 0.05).astype(np.float32)
    if noisy:
        prob[:, y + 2, x + 2] = 0.05, 0.05, 0.9
        prob[:, 1, 12] = 0.05, 0.9, 0.05
    else:
        label[1, 12] = 2
        prob[:, 1, 12] = 0.05, 0.05, 0.9
    return label, image, prob


def _crf_region_image(rng, noisy: bool):
    """A 12x14 label map (a 7x7 square of a around a 3x3 core of b) drawn in its colours, and region
    maps (whole, core) of 0.9 inside and 0.05 outside. ``noisy``: a false whole pixel in the background
    and a hole in the core (the image shows their truth: the CRF fixes them). Else: a true 1 px whole
    object that the image does not show, predicted right (the CRF erases it)."""
    label = np.zeros((12, 14), np.uint8)
    y, x = rng.integers(1, 4), rng.integers(1, 4)
    label[y:y + 7, x:x + 7] = 1
    label[y + 2:y + 5, x + 2:x + 5] = 2
    image = GREY[label]
    if not noisy:
        label[1, 12] = 1
    prob = np.stack([np.where(label > 0, 0.9, 0.05), np.where(label == 2, 0.9, 0.05)]).astype(np.float32)
    if noisy:
        prob[0, 1, 12] = 0.9
        prob[1, y + 3, x + 3] = 0.1
    return label, image, prob


def _crf_study(tmp_path, make, noisy: bool, folds, n=12):
    """Images, masks, a training manifest naming both (the image column the crf reads), folds and OOF files."""
    rng = np.random.default_rng(2)
    rows, probs = [], []
    for i in range(n):
        label, image, prob = make(rng, noisy)
        _write(tmp_path / f"m{i}.png", label)
        _write(tmp_path / f"i{i}.png", image)
        probs.append(prob)
        rows.append({"image_id": f"im{i}", "subject": f"s{i}", "split": "train", "image": str(tmp_path / f"i{i}.png"),
                     "present_image": 1, "mask": str(tmp_path / f"m{i}.png"), "height": 12, "width": 14})
    train = pd.DataFrame(rows)
    train.to_csv(tmp_path / "train.csv", index=False)
    order = np.argsort(folds, kind="stable")
    pd.DataFrame({"image_id": train["image_id"][order], "subject": train["subject"][order],
                  "fold": np.asarray(folds)[order]}).to_csv(tmp_path / "folds.csv", index=False)
    return _fold_oofs(tmp_path, probs, folds), train


def _test_image(tmp_path, make, seed: int):
    """One test image ``t1``: its mean.npz, its image file and a test manifest naming it."""
    label, image, prob = make(np.random.default_rng(seed), True)
    _write(tmp_path / "t1.png", image)
    np.savez(tmp_path / "mean.npz", image_id=np.array(["t1"]), prob=prob[None].astype(np.float16))
    test = pd.DataFrame([{"image_id": "t1", "image": str(tmp_path / "t1.png"), "present_image": 1, "height": 12,
                          "width": 14}])
    test.to_csv(tmp_path / "test.csv", index=False)
    return label, prob, test


def _class_settings(**changes):
    return {"classes": CLASSES, "ignore": {}, "grid": [0], "n_boot": 200, "seed": 0, "min_gain": 0.0,
            "candidates": ["otsu", "crf"], "hysteresis_highs": [], "crf": {"scale": 1}, **changes}


def test_classes_keep_the_crf_where_it_helps_and_apply_it_everywhere_the_decision_is_applied(tmp_path, monkeypatch):
    from plexus.postprocess.candidates import CRF_DEFAULTS
    from plexus.postprocess.multiclass import argmax_labels
    from plexus.report import class_figures, figures

    paths, _ = _crf_study(tmp_path, _crf_class_image, True, [i % 3 for i in range(12)])
    decision, per_image = _decide(classes_task.TASK, tmp_path, paths, _class_settings())
    # crf is tried first although listed after otsu, and kept: the CRF fixes every noisy pixel
    assert [(d["candidate"], d["kept"]) for d in decision["decisions"]] == [("crf", True), ("otsu", False)]
    assert decision["decisions"][0]["setting"] == {"crf": True}
    assert decision["pipeline"]["crf"] is True and decision["pipeline"]["otsu"] is False
    assert decision["crf_settings"] == {**CRF_DEFAULTS, "scale": 1}
    assert decision["tuned_score"] < 0.97 and decision["score"] == pytest.approx(1.0)
    np.testing.assert_allclose(per_image["cross_fitted"], 1.0)  # every fold keeps it on the other two
    assert pd.read_csv(tmp_path / "d.csv")["candidate"].tolist() == ["crf", "otsu"]
    # the test label maps (submission, and so plexus predict) read the test image and apply it
    label, prob, test = _test_image(tmp_path, _crf_class_image, 5)
    assert (argmax_labels(prob) != label).sum() == 2
    sub = _submission_job(tmp_path, {"classes": CLASSES})
    classes_task.TASK.submission(sub)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "maps" / "t1.png")), label)
    assert json.loads((tmp_path / "sub.json").read_text())["pipeline"]["crf"] is True
    # the volumes' unit masks
    [masks] = classes_task.TASK.decided_unit_masks({"classes": CLASSES}, {"m": [tmp_path / "mean.npz"]}, test, ["t1"],
                                                  decision)
    np.testing.assert_array_equal(masks, np.stack([label == 1, label == 2]))
    # the qualitative panel shows the CRF's label maps, which equal the truth here
    shown = {}
    monkeypatch.setattr(class_figures, "label_panel", lambda images, truths, preds, *a, **k: shown.update(
        truths=truths, preds=preds))
    monkeypatch.setattr(figures, "save", lambda fig, paths: None)
    np.savez(tmp_path / "train.npz", image_id=np.array([f"im{i}" for i in range(12)]),
             images=np.zeros((12, 1, 12, 14), np.uint8))
    classes_task.qualitative_stage(tmp_path / "dp.csv", tmp_path / "d.json", tmp_path / "train.npz", paths,
                                   tmp_path / "train.csv", CLASSES, "m", [tmp_path / "q.png"])
    assert len(shown["preds"]) == 3
    for pred, truth in zip(shown["preds"], shown["truths"]):
        np.testing.assert_array_equal(pred, truth)


def test_regions_keep_the_crf_where_it_helps_and_apply_it_per_region_everywhere(tmp_path, monkeypatch):
    from plexus.report import figures

    paths, _ = _crf_study(tmp_path, _crf_region_image, True, [i // 4 for i in range(12)])
    settings = _region_settings(candidates=["largest_component", "crf"], crf={"scale": 1})
    decision, per_image = _decide(regions_task.TASK, tmp_path, paths, settings)
    assert [(d["candidate"], d["kept"]) for d in decision["decisions"]] == [("crf", True), ("largest_component", False)]
    assert decision["pipeline"]["crf"] is True and decision["crf_settings"]["scale"] == 1
    assert decision["tuned_score"] < 0.97 and decision["score"] == pytest.approx(1.0)
    np.testing.assert_allclose(per_image["cross_fitted"], 1.0)
    # the test label maps: each region's map through its CRF, then its cutoff
    label, prob, test = _test_image(tmp_path, _crf_region_image, 7)
    plain = regions_task.final_masks(prob, [0.5, 0.5], [0, 0])
    assert not np.array_equal(plain, np.stack([label > 0, label == 2]))
    sub = _submission_job(tmp_path, settings)
    regions_task.TASK.submission(sub)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "maps" / "t1.png")), label)
    [masks] = regions_task.TASK.decided_unit_masks(settings, {"m": [tmp_path / "mean.npz"]}, test, ["t1"], decision)
    np.testing.assert_array_equal(masks, np.stack([label > 0, label == 2]))
    # the qualitative panel's final maps are the CRF's (equal to the truth here)
    shown = {}
    monkeypatch.setattr(regions_task, "panel_figure", lambda images, truths, finals, *a, **k: shown.update(
        truths=truths, finals=finals))
    monkeypatch.setattr(figures, "save", lambda fig, paths: None)
    np.savez(tmp_path / "train.npz", image_id=np.array([f"im{i}" for i in range(12)]),
             images=np.zeros((12, 1, 12, 14), np.uint8))
    job = SimpleNamespace(
        input=_Inputs({"oof_m": paths, "train": tmp_path / "train.csv", "decision": tmp_path / "d.json",
                       "decision_per_image": tmp_path / "dp.csv", "data": tmp_path / "train.npz"}),
        output=_Inputs({"panel": tmp_path / "q.png", "panel_pdf": tmp_path / "q.pdf"}),
        params=SimpleNamespace(members=["m"], settings=settings, style=None), wildcards=SimpleNamespace(model="m"))
    regions_task.TASK.figure_qualitative(job)
    assert len(shown["finals"]) == 3
    for final, truth in zip(shown["finals"], shown["truths"]):
        np.testing.assert_array_equal(final, truth)


@pytest.mark.parametrize("task", ["classes", "regions"])
def test_the_crf_is_not_kept_where_it_does_not_help(tmp_path, task):
    """Right predictions of 1 px true objects that the image does not show: the CRF erases them, the
    score drops, the rule refuses it, and the decision records no crf settings."""
    if task == "classes":
        paths, _ = _crf_study(tmp_path, _crf_class_image, False, [i % 3 for i in range(12)])
        decision, _ = _decide(classes_task.TASK, tmp_path, paths, _class_settings())
    else:
        paths, _ = _crf_study(tmp_path, _crf_region_image, False, [i // 4 for i in range(12)])
        decision, _ = _decide(regions_task.TASK, tmp_path, paths,
                              _region_settings(candidates=["crf"], crf={"scale": 1}))
    [record] = [d for d in decision["decisions"] if d["candidate"] == "crf"]
    assert not record["kept"] and record["score_with"] < record["score_without"] == pytest.approx(1.0)
    assert decision["pipeline"]["crf"] is False and decision["crf_settings"] is None
    assert decision["score"] == pytest.approx(1.0)
