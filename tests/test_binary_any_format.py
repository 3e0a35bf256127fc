"""Task binary on any format whose masks have one foreground class: each image scored at its own
size, batches of one size, the submission at each test image's size, the task a two-class
dataset defaults to, and the head the task declares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.data import resize
from plexus.data.truth import ForegroundMasks, image_paths
from plexus.evaluation import metrics
from plexus.io import rle
from plexus.postprocess import submission, tuning
from plexus.postprocess.candidates import PostProcess
from plexus.tasks import load_task, task_of

SIZES = [(12, 16), (12, 16), (20, 14), (12, 16), (20, 14), (20, 14), (9, 11)]


def test_uniform_runs_cut_batches_at_size_changes_and_match_plain_batches_for_one_size():
    rng = np.random.default_rng(0)
    for _ in range(50):
        shapes = np.asarray([SIZES[i] for i in rng.integers(0, len(SIZES), rng.integers(1, 30))])
        batch = int(rng.integers(1, 7))
        runs = list(resize.uniform_runs(shapes, batch))
        assert [lo for lo, _, _ in runs] == [0] + [hi for _, hi, _ in runs[:-1]] and runs[-1][1] == len(shapes)
        for lo, hi, size in runs:
            assert 0 < hi - lo <= batch and (shapes[lo:hi] == size).all()
            # a run ends only at the batch size or where the next image's size differs
            assert hi - lo == batch or hi == len(shapes) or tuple(shapes[hi]) != size
    one = np.tile((420, 580), (23, 1))
    assert [(lo, hi) for lo, hi, _ in resize.uniform_runs(one, 4)] == [(lo, min(lo + 4, 23)) for lo in range(0, 23, 4)]


def _mixed_case(seed: int):
    rng = np.random.default_rng(seed)
    truths = []
    for h, w in SIZES:
        mask = np.zeros((h, w), np.uint8)
        if rng.random() < 0.7:
            r, c = rng.integers(0, h - 3), rng.integers(0, w - 3)
            mask[r:r + rng.integers(2, 6), c:c + rng.integers(2, 6)] = 1
        truths.append(mask)
    probs = [(rng.random((len(SIZES), 8, 8)) ** 2).astype(np.float16) for _ in range(2)]
    return probs, truths


class ListTruth:
    """Masks of several sizes, sliced like ForegroundMasks (a stack when one size, else a list)."""

    def __init__(self, masks):
        self.masks, self.shapes = masks, np.asarray([m.shape for m in masks])

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, index):
        chosen = self.masks[index]
        return np.stack(chosen) if len({m.shape for m in chosen}) == 1 else chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cutoff_counts_score_each_image_at_its_own_size(seed):
    """Brute force: each image's members upsampled alone to its own size, averaged, thresholded."""
    probs, truths = _mixed_case(seed)
    cutoffs = [0.05, 0.2, 0.5, 0.8]
    counts = tuning.cutoff_counts(probs, ListTruth(truths), cutoffs, batch_size=3)
    for i, truth in enumerate(truths):
        up = np.mean([resize.upsample(p[i:i + 1], truth.shape).numpy()[0] for p in probs], axis=0)
        for j, cutoff in enumerate(cutoffs):
            pred = up > np.float32(cutoff)
            assert counts.pred_area[i, j] == pred.sum()
            assert counts.intersection[i, j] == (pred & (truth > 0)).sum()
        assert counts.true_area[i] == truth.sum()
    grid, best, per_image = tuning.tune(probs, ListTruth(truths), cutoffs, [0, 5])
    expected = []
    for i, truth in enumerate(truths):
        up = np.mean([resize.upsample(p[i:i + 1], truth.shape).numpy()[0] for p in probs], axis=0)
        pred = up > np.float32(best["cutoff"])
        expected.append(metrics.kaggle_dice(pred if pred.sum() >= best["min_area"] else 0 * pred, truth))
    np.testing.assert_allclose(per_image["kaggle_dice"], expected)


def test_encode_masks_writes_each_test_image_at_its_own_size():
    probs, truths = _mixed_case(3)
    shapes = [m.shape for m in truths]
    pipeline = PostProcess(cutoff=0.3, min_area=2, fill_holes=True)
    for batch_size in (1, 4, 64):
        texts = submission.encode_masks(probs, 0.3, 2, shape=shapes, batch_size=batch_size, pipeline=pipeline)
        for i, (text, shape) in enumerate(zip(texts, shapes)):
            up = np.mean([resize.upsample(p[i:i + 1], shape).numpy()[0] for p in probs], axis=0)
            np.testing.assert_array_equal(rle.decode(text, shape), pipeline.apply(up))


def test_the_submission_keeps_text_ids_and_numbers_kaggle_ids():
    frame = submission.submission_frame(["0007", "1e5", "NA", "case_b"], ["", "1 2", "", "3 1"])
    assert frame["img"].tolist() == ["0007", "1e5", "NA", "case_b"]
    assert submission.submission_frame(["10", "9", "1"], ["a", "b", "c"])["img"].tolist() == ["1", "9", "10"]


def _folder_manifest(tmp_path, classes_values=(0, 255)):
    """A training manifest of the generic schema: PNG masks of two sizes, values ``classes_values``."""
    rng = np.random.default_rng(4)
    rows, masks = [], []
    for k, (h, w) in enumerate([(12, 16), (20, 14), (12, 16)]):
        label = np.zeros((h, w), np.uint8)
        label[2:2 + k + 2, 3:8] = 1
        values = np.asarray(classes_values, np.uint8)[label]
        Image.fromarray(values).save(tmp_path / f"m{k}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"i{k}.png")
        rows.append({"image_id": f"0{k}", "subject": "s", "height": h, "width": w, "image": str(tmp_path / f"i{k}.png"),
                     "mask": str(tmp_path / f"m{k}.png"), "present_image": 1})
        masks.append(label)
    return pd.DataFrame(rows), masks


def test_foreground_masks_read_each_mask_at_its_size_in_the_datasets_values(tmp_path):
    manifest, masks = _folder_manifest(tmp_path, (0, 255))
    truth = ForegroundMasks(manifest, ["02", "00", "01"], {"background": 0, "lesion": 255})
    assert truth.shapes.tolist() == [[12, 16], [12, 16], [20, 14]] and len(truth) == 3
    stacked = truth[0:2]
    assert isinstance(stacked, np.ndarray) and stacked.shape == (2, 12, 16)
    np.testing.assert_array_equal(stacked[0], masks[2])
    mixed = truth[1:3]
    assert isinstance(mixed, list) and [m.shape for m in mixed] == [(12, 16), (20, 14)]
    np.testing.assert_array_equal(mixed[1], masks[1])
    assert image_paths(manifest, ["01"]) == [str(tmp_path / "i1.png")]
    # the values are the config's: the same file read with another foreground value is refused by name
    with pytest.raises(ValueError, match="m0.png"):
        ForegroundMasks(manifest, ["00"], {"background": 0, "lesion": 1})[0:1]
    with pytest.raises(ValueError, match="two classes"):
        ForegroundMasks(manifest, ["00"], {"background": 0, "a": 1, "b": 2})


def _config(**changes):
    """tests/configs/tiny_binary.yaml (a two-class folders study, no task named) with ``changes``."""
    from pathlib import Path

    import yaml

    from plexus.config import validate_config

    config = yaml.safe_load((Path(__file__).parent / "configs/tiny_binary.yaml").read_text())
    return validate_config({**config, **changes})


def test_a_two_class_dataset_defaults_to_binary_and_three_classes_to_classes():
    assert task_of(_config()) == "binary"  # the default classes: background 0, foreground 255
    assert task_of(_config(classes={"background": 0, "a": 1, "b": 2})) == "classes"
    assert task_of(_config(classes={"background": 0, "a": 1, "void": 2}, ignore=["void"])) == "classes"
    assert task_of(_config(task="classes")) == "classes"
    sheet = _config()
    sheet["data"] = {**sheet["data"], "format": "sheet"}
    assert task_of(sheet) == "binary"
    kaggle = _config()
    kaggle["data"] = {**kaggle["data"], "format": "kaggle_nerve"}
    assert task_of(kaggle) == "binary"


def test_binary_names_what_it_cannot_read():
    from plexus.config_checks import config_errors

    errors = config_errors(_config(task="binary", classes={"background": 0, "a": 1, "b": 2}))
    assert any(e.startswith("classes: task 'binary'") and "a, b" in e for e in errors), errors
    errors = config_errors(_config(task="binary", classes={"background": 0, "a": 1, "void": 2}, ignore=["void"]))
    assert any(e.startswith("ignore: task 'binary'") for e in errors), errors
    # the presence head is the binary task's: refused for classes, accepted for a two-class folders study
    binary = _config()
    assert binary["models"]["unet2head"]["arch"] == "unet2head" and config_errors(binary) == []
    classes = {**binary, "task": "classes"}
    assert any("models.unet2head: the presence head" in e for e in config_errors(classes))


def test_the_head_follows_the_task():
    assert load_task("binary").output == "sigmoid"
    assert {load_task(name).output for name in ("classes", "regions", "instances")} == {"softmax"}


def test_a_sigmoid_head_refuses_arrays_of_three_classes(tmp_path):
    from plexus.io import atomic
    from plexus.stages.train import train_stage

    atomic.write_npz(tmp_path / "train.npz", image_id=np.array(["a", "b"]), images=np.zeros((2, 1, 8, 8), np.uint8),
                     masks=np.zeros((2, 8, 8), np.uint8), classes=np.array(["bg", "a", "b"]))
    pd.DataFrame({"image_id": ["a", "b"], "subject": ["1", "2"], "fold": [0, 1]}).to_csv(tmp_path / "folds.csv",
                                                                                        index=False)
    settings = {"arch": "unet", "input_size": [8, 8], "epochs": 1, "base_channels": 2, "depth": 1}
    with pytest.raises(ValueError, match="3 classes"):
        train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, settings, tmp_path / "out",
                    tmp_path / "ck.pt", run_name="m", output="sigmoid")
    with pytest.raises(ValueError, match="output must be"):
        train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, {}, tmp_path / "out", tmp_path / "ck.pt",
                    run_name="m", output="tanh")


def test_an_ensembles_panel_draws_the_decision_on_its_members_averaged_maps(tmp_path, monkeypatch):
    """Members 0.2 and 0.8 everywhere: their average, 0.5, is above the decided cutoff 0.4, so the
    ensemble's panel shows full masks; the first member alone shows none."""
    import json

    from plexus.io import atomic
    from plexus.report import figures
    from plexus.tasks.binary import qualitative_stage

    manifest, _ = _folder_manifest(tmp_path)
    manifest.to_csv(tmp_path / "train.csv", index=False)
    ids = manifest["image_id"].tolist()
    oofs = {}
    for member, value in (("low", 0.2), ("high", 0.8)):
        oofs[member] = [tmp_path / f"{member}.npz"]
        atomic.write_npz(oofs[member][0], image_id=np.asarray(ids), prob=np.full((3, 8, 8), value, np.float16))
    pd.DataFrame({"image_id": ids, "subject": "s", "fold": 0, "postprocessed": [0.5, 0.6, 0.7],
                  "true_area": [5, 5, 5]}).to_csv(tmp_path / "per_image.csv", index=False)
    decision = {"pipeline": PostProcess(cutoff=0.4, min_area=0).to_dict()}
    (tmp_path / "decision.json").write_text(json.dumps(decision))
    drawn = {}
    monkeypatch.setattr(figures, "qualitative_panel",
                        lambda *args, **kw: drawn.update(finals=args[2], ids=args[4]) or "fig")
    monkeypatch.setattr(figures, "save", lambda fig, paths: None)
    classes = {"background": 0, "lesion": 255}
    qualitative_stage(tmp_path / "per_image.csv", tmp_path / "decision.json", tmp_path / "train.csv", classes,
                      oofs, "ens", [tmp_path / "p.png", tmp_path / "p.pdf"])
    assert len(drawn["finals"]) == 3 and all(final.all() for final in drawn["finals"])
    sizes = manifest.set_index("image_id")[["height", "width"]]
    assert [final.shape for final in drawn["finals"]] == [tuple(sizes.loc[i]) for i in drawn["ids"]]  # own sizes
    qualitative_stage(tmp_path / "per_image.csv", tmp_path / "decision.json", tmp_path / "train.csv", classes,
                      oofs["low"], "low", [tmp_path / "p.png", tmp_path / "p.pdf"])
    assert not any(final.any() for final in drawn["finals"])


def test_a_second_rater_sits_beside_every_entry_on_the_images_it_rated(tmp_path):
    """Two of three images have a second rater. By hand: image 00's second mask covers half of the
    first's 10 pixels (Dice 2*5/(10+5) = 2/3); image 01 has both empty (1). The rater2 row's score
    is their mean; each entry's rated_score its mean Kaggle Dice on those two images only."""
    from plexus.evaluation.raters import foreground_matrix, rater2_frame
    from plexus.report import tables

    classes = {"background": 0, "lesion": 255}
    first, second = np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8)
    first[:2, :] = 255
    second[0, :] = 255
    rows = []
    for k, (a, b) in enumerate([(first, second), (np.zeros((4, 5)), np.zeros((4, 5))), (first, None)]):
        Image.fromarray(np.asarray(a, np.uint8)).save(tmp_path / f"m{k}.png")
        if b is not None:
            Image.fromarray(np.asarray(b, np.uint8)).save(tmp_path / f"r{k}.png")
        rows.append({"image_id": f"0{k}", "subject": f"s{k}", "mask": str(tmp_path / f"m{k}.png"),
                     "mask_rater2": str(tmp_path / f"r{k}.png") if b is not None else ""})
    rater2 = rater2_frame(pd.DataFrame(rows), classes, foreground_matrix(2), ["lesion"], "class")
    assert rater2["image_id"].tolist() == ["00", "01"]
    np.testing.assert_allclose(rater2["dice"], [2 / 3, 1.0])
    per_image = pd.DataFrame({"image_id": ["00", "01", "02"], "subject": ["s0", "s1", "s2"],
                              "kaggle_dice": [0.5, 0.9, 0.1]})
    entries = {"m": {"per_image": per_image}}
    table = pd.DataFrame({"name": ["m"], "kind": ["model"], "members": ["m"], "kept": ["none"],
                          "training_health": ["ok"], "n_images": [3], "n_subjects": [3]})
    out = tables.with_second_rater(table, entries, rater2)
    assert out["name"].tolist() == ["m", "rater2"] and out["kind"].tolist() == ["model", "human"]
    np.testing.assert_allclose(out["rated_score"], [0.7, (2 / 3 + 1) / 2])
    assert out["rated_images"].tolist() == [2, 2]
    assert tables.with_second_rater(table, entries, pd.DataFrame()) is table  # no second rater: as it was
