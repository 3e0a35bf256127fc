"""Stages of the instances task (plexus.tasks.instances), the DSB2018 conversion (plexus.data.dsb2018)
and their figures, on tiny inputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.data import dsb2018 as nuclei_data
from plexus.data.dsb2018 import Dsb2018Error, instance_labels
from plexus.evaluation.instances import average_precision, per_image_instance_metrics
from plexus.postprocess.dsb_submission import decode_submission
from plexus.postprocess.instances import (
    InstanceSettings,
    cross_fitted_instances,
    instance_grid,
    label_instances,
    tune_instances,
)
from plexus.postprocess.multiclass import upsample_probs
from plexus.report import instance_figures
from plexus.report.figures import save
from plexus.tasks import instances as stages

OPTIONS = {"cutoffs": [0.4, 0.5], "otsu": True, "hysteresis": [[0.3, 0.7]], "watershed": [False, True],
           "min_distances": [3], "min_sizes": [0, 6]}
TWO_CLASSES = {"background": 0, "nucleus": 1}
THREE_CLASSES = {"background": 0, "nucleus": 1, "boundary": 2}


# --------------------------------------------------------------------------- data


def test_boundary_pixels_of_two_touching_nuclei_by_hand():
    labels = np.array([
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ])
    expected = np.array([
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 0, 1, 1, 1, 0],  # nucleus 1's centre is inside; 1|2 touch at columns 3 and 4
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ], dtype=bool)
    np.testing.assert_array_equal(nuclei_data.boundary_pixels(labels), expected)
    target = nuclei_data.target_map(labels, boundary=True)
    np.testing.assert_array_equal(target, np.where(expected, 2, labels > 0))
    np.testing.assert_array_equal(nuclei_data.target_map(labels, boundary=False), labels > 0)
    # the image edge is no outline: a nucleus filling the image has none
    assert not nuclei_data.boundary_pixels(np.ones((3, 4), int)).any()


def _write_sample(root, split, image_id, image, masks=()):
    sample = root / split / image_id
    (sample / "images").mkdir(parents=True)
    Image.fromarray(image).save(sample / "images" / f"{image_id}.png")
    if split == "stage1_train":
        (sample / "masks").mkdir()
        for name, mask in masks:
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(sample / "masks" / f"{name}.png")


def _dsb_folder(root):
    a = np.zeros((6, 8), bool)
    a[1:4, 1:4] = True
    b = np.zeros((6, 8), bool)
    b[1:4, 4:6] = True  # touches a
    rgba = np.full((6, 8, 4), 255, np.uint8)
    rgba[..., :3] = 40
    _write_sample(root, "stage1_train", "img1", rgba, [("m2", b), ("m1", a)])
    gray = np.full((5, 5), 30, np.uint8)  # a grayscale image: the sheet points at an RGB copy
    c = np.zeros((5, 5), bool)
    c[2:4, 2:4] = True
    _write_sample(root, "stage1_train", "img2", gray, [("only", c)])
    _write_sample(root, "stage1_train", "img3", np.full((6, 8, 3), 9, np.uint8), [])  # no nucleus
    _write_sample(root, "stage1_test", "t1", np.full((7, 9, 3), 50, np.uint8))
    return a, b, c


def test_nuclei_sheet_writes_labels_targets_and_groups(tmp_path, capsys):
    a, b, c = _dsb_folder(tmp_path / "raw")
    out = tmp_path / "out"
    sheet = nuclei_data.nuclei_sheet_stage(tmp_path / "raw", group="size", boundary=True, sheet_tsv=out / "sheet.tsv",
                                      labels_dir=out / "labels", targets_dir=out / "targets",
                                      images_dir=out / "images")
    written = pd.read_csv(out / "sheet.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(written.columns) == ["image_id", "subject", "split", "image", "mask", "instances"]
    pd.testing.assert_frame_equal(written, sheet.astype(str))
    rows = written.set_index("image_id")
    assert rows.loc["img1", "subject"] == "6x8" and rows.loc["img2", "subject"] == "5x5"
    assert rows.loc["t1", "split"] == "test" and rows.loc["t1", "mask"] == "" and rows.loc["t1", "instances"] == ""
    # RGB and RGBA files are used as they are; the gray one through an RGB copy
    assert rows.loc["img1", "image"] == str((tmp_path / "raw/stage1_train/img1/images/img1.png").resolve())
    assert rows.loc["img2", "image"] == str((out / "images/img2.png").resolve())
    assert np.asarray(Image.open(rows.loc["img2", "image"])).shape == (5, 5, 3)

    labels = np.asarray(Image.open(rows.loc["img1", "instances"]))
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, np.where(a, 1, 0) + np.where(b, 2, 0))  # sorted file names: m1, m2
    target = np.asarray(Image.open(rows.loc["img1", "mask"]))
    assert target.dtype == np.uint8
    np.testing.assert_array_equal(target, nuclei_data.target_map(labels, True))
    assert target[2, 2] == 1 and target[2, 3] == 2 and target[2, 4] == 2  # centre, and the touching columns
    assert not np.asarray(Image.open(rows.loc["img3", "instances"])).any()

    nuclei_data.nuclei_sheet_stage(tmp_path / "raw", group="none", boundary=False, sheet_tsv=out / "sheet2.tsv",
                              labels_dir=out / "labels2", targets_dir=out / "targets2", images_dir=out / "images2")
    assert nuclei_data.NO_GROUP_MESSAGE in capsys.readouterr().out
    second = pd.read_csv(out / "sheet2.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert (second["subject"] == second["image_id"]).all()
    assert set(np.unique(np.asarray(Image.open(out / "targets2/img1.png")))) == {0, 1}


def test_nuclei_sheet_refuses_overlapping_masks_naming_both_files(tmp_path):
    a, b, _ = _dsb_folder(tmp_path / "raw")
    overlap = a.copy()
    overlap[:, 2] = True
    Image.fromarray(np.where(overlap, 255, 0).astype(np.uint8)).save(tmp_path / "raw/stage1_train/img1/masks/m3.png")
    with pytest.raises(Dsb2018Error, match=r"image img1: masks m1.png and m3.png overlap"):
        nuclei_data.nuclei_sheet_stage(tmp_path / "raw", group="size", boundary=True, sheet_tsv=tmp_path / "s.tsv",
                                  labels_dir=tmp_path / "l", targets_dir=tmp_path / "t", images_dir=tmp_path / "i")


def test_synthesize_stage_gives_one_size_per_subject(tmp_path):
    settings = {"n_subjects": 3, "images_per_subject": 2, "n_test_subjects": 1, "test_images_per_subject": 2,
                "seed": 0}
    summary = nuclei_data.synthesize_stage(tmp_path / "raw", settings, tmp_path / "fingerprint.json")
    sizes = pd.DataFrame(summary["stage1_train"]).groupby(["height", "width"]).size()
    assert len(sizes) == 3 and (sizes == 2).all()
    assert len(summary["stage1_test"]) == 2
    assert (tmp_path / "fingerprint.json").exists() and (tmp_path / "raw/synthetic_summary.json").exists()
    assert len(set(nuclei_data.synthetic_sizes(20))) == 20


# --------------------------------------------------------------------------- candidates


def test_candidate_grid_has_the_baseline_and_boundary_variants_without_watershed():
    options = {**OPTIONS, "cutoffs": [0.4, 0.6], "min_sizes": [8]}
    candidates = stages.candidate_grid(options, has_boundary=True)
    assert candidates[0] == (InstanceSettings(), False)  # added first: the grid lacked it
    plain = [s for s, boundary in candidates[1:] if not boundary]
    assert plain == list(instance_grid(cutoffs=[0.4, 0.6], otsu=True, hysteresis_pairs=[(0.3, 0.7)],
                                       min_sizes=[8], min_distances=[3], watershed=[False, True]))
    with_boundary = [s for s, boundary in candidates if boundary]
    assert with_boundary and not any(s.watershed for s in with_boundary)
    assert not any(b for _, b in stages.candidate_grid(options, has_boundary=False))
    # with cutoff 0.5 and min size 0 in the grid, the baseline is the grid's own entry
    candidates = stages.candidate_grid(OPTIONS, has_boundary=False)
    assert [s for s, _ in candidates] == list(instance_grid(
        cutoffs=[0.4, 0.5], otsu=True, hysteresis_pairs=[(0.3, 0.7)], min_sizes=[0, 6], min_distances=[3],
        watershed=[False, True]))
    record = stages.candidate_record(*candidates[5])
    assert stages.candidate_of(record) == candidates[5]


# --------------------------------------------------------------------------- tuning


def _disc_labels(shape, centres, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2) & (labels == 0)] = k
    return labels


def _fake_inputs(tmp_path, n_classes, n_images=6, model=(16, 16), seed=0):
    """Truth label maps, a train manifest, folds and two models' OOF files (softmax-like, at the model size)."""
    rng = np.random.default_rng(seed)
    rows, truths = [], []
    (tmp_path / "labels").mkdir()
    for i in range(n_images):
        shape = (20, 24) if i % 2 else (24, 20)
        centres = [(rng.uniform(4, shape[0] - 4), rng.uniform(4, shape[1] - 4)) for _ in range(3)]
        truth = _disc_labels(shape, centres, rng.uniform(2.5, 4))
        path = tmp_path / "labels" / f"im{i}.png"
        nuclei_data.write_instance_map(path, truth)
        truths.append(truth)
        rows.append({"image_id": f"im{i}", "height": shape[0], "width": shape[1], "instances": str(path)})
    train = pd.DataFrame(rows)
    train.to_csv(tmp_path / "train.csv", index=False)
    folds = pd.DataFrame({"image_id": train["image_id"], "subject": [f"s{i // 2}" for i in range(n_images)],
                          "fold": [i // 2 % 2 for i in range(n_images)]})
    folds.to_csv(tmp_path / "folds.csv", index=False)
    oofs = {}
    for m, model_name in enumerate(["a", "b"]):
        probs = []
        for truth in truths:
            fg = np.asarray(Image.fromarray((truth > 0).astype(np.float32)).resize(model[::-1], Image.BILINEAR))
            fg = np.clip(fg + rng.normal(0, 0.2 + 0.1 * m, fg.shape), 0, 1)
            if n_classes == 3:
                edge = np.asarray(Image.fromarray(nuclei_data.boundary_pixels(truth).astype(np.float32))
                                  .resize(model[::-1], Image.BILINEAR))
                prob = np.stack([1 - fg, fg * (1 - edge), fg * edge])
            else:
                prob = np.stack([1 - fg, fg])
            probs.append(prob)
        probs = np.stack(probs).astype(np.float16)
        paths = []
        for fold in (0, 1):
            held = folds["fold"].to_numpy() == fold
            path = tmp_path / f"oof_{model_name}_fold{fold}.npz"
            np.savez(path, image_id=folds["image_id"].to_numpy(str)[held], prob=probs[held])
            paths.append(str(path))
        oofs[model_name] = paths
    return train, folds, truths, oofs


def _mean_maps(oofs, train):
    """Per image the members' probabilities upsampled to the image's size and averaged (independently read)."""
    arrays = {}
    for paths in oofs.values():
        for path in paths:
            with np.load(path) as data:
                for image_id, prob in zip(data["image_id"], data["prob"]):
                    arrays.setdefault(str(image_id), []).append(prob)
    out = []
    for row in train.itertuples():
        members = [upsample_probs(p, (row.height, row.width)) for p in arrays[row.image_id]]
        out.append(sum(members) / len(members))
    return out


def _run_tune(tmp_path, oofs, classes):
    outputs = {k: tmp_path / f"{k}.{ext}" for k, ext in (("grid", "csv"), ("best", "json"), ("per_image", "csv"))}
    stages.tune_stage(oofs, tmp_path / "folds.csv", tmp_path / "train.csv", classes, OPTIONS,
                      grid_csv=outputs["grid"], best_json=outputs["best"], per_image_csv=outputs["per_image"])
    return (pd.read_csv(outputs["grid"]), json.loads(outputs["best"].read_text()),
            pd.read_csv(outputs["per_image"], dtype={"image_id": str}))


def test_tune_stage_equals_tune_instances_and_cross_fitting_without_boundary(tmp_path):
    train, folds, truths, oofs = _fake_inputs(tmp_path, n_classes=2)
    grid, best, per_image = _run_tune(tmp_path, oofs, TWO_CLASSES)
    foregrounds = [1 - m[0] for m in _mean_maps(oofs, train)]
    settings = list(instance_grid(cutoffs=[0.4, 0.5], otsu=True, hysteresis_pairs=[(0.3, 0.7)], min_sizes=[0, 6],
                                  min_distances=[3], watershed=[False, True]))
    chosen, table = tune_instances(foregrounds, truths, None, settings)
    np.testing.assert_allclose(grid["mean_ap"], table["mean_ap"], atol=1e-9)
    assert not grid["boundary"].any()
    assert InstanceSettings.from_dict(best["settings"]) == chosen and best["boundary"] is False
    assert best["score"] == pytest.approx(table["mean_ap"].max()) and best["score_name"] == "mean AP"
    assert best["task"] == "instances" and best["n_images"] == len(truths)

    crossfit, _ = cross_fitted_instances(foregrounds, truths, folds["fold"], settings)
    np.testing.assert_allclose(per_image["ap_cross_fitted"], crossfit["mean_ap"], atol=1e-9)
    baseline = [average_precision(t, label_instances(f))[0] for f, t in zip(foregrounds, truths)]
    np.testing.assert_allclose(per_image["ap_baseline"], baseline, atol=1e-9)
    assert best["untuned_score"] == pytest.approx(np.mean(baseline)) and best["score"] >= best["untuned_score"]
    assert best["cross_fitted_score"] == pytest.approx(crossfit["mean_ap"].mean())

    preds = [chosen.apply(f) for f in foregrounds]
    metrics = per_image_instance_metrics(truths, preds, list(train["image_id"]))
    np.testing.assert_allclose(per_image["ap"], metrics["mean_ap"])
    np.testing.assert_allclose(per_image["ap_75"], metrics["ap_0.75"])
    np.testing.assert_allclose(per_image["f1"], metrics["f1_0.5"])
    np.testing.assert_allclose(per_image["pixel_dice"], metrics["pixel_dice"])
    assert list(per_image["n_pred"]) == list(metrics["n_pred"])
    assert list(per_image["subject"]) == list(folds["subject"]) and list(per_image["fold"]) == list(folds["fold"])
    assert [c for c in per_image.columns if c.startswith("ap_") and c[3:].isdigit()] == \
        [f"ap_{t}" for t in range(50, 100, 5)]


def test_tune_stage_with_the_boundary_class(tmp_path):
    train, folds, truths, oofs = _fake_inputs(tmp_path, n_classes=3, seed=1)
    grid, best, per_image = _run_tune(tmp_path, oofs, THREE_CLASSES)
    maps = _mean_maps(oofs, train)
    fields = [*InstanceSettings().to_dict(), "boundary"]
    candidates = [stages.candidate_of(r) for r in grid[fields].to_dict("records")]
    assert candidates == stages.candidate_grid(OPTIONS, has_boundary=True)
    plain = ~grid["boundary"].to_numpy()
    _, table = tune_instances([1 - m[0] for m in maps], truths, None,
                              [s for s, boundary in candidates if not boundary])
    np.testing.assert_allclose(grid.loc[plain, "mean_ap"], table["mean_ap"], atol=1e-9)
    for (settings, _), score in zip([c for c in candidates if c[1]], grid.loc[~plain, "mean_ap"]):
        direct = np.mean([average_precision(t, label_instances(1 - m[0], boundary=m[2], **settings.to_dict()))[0]
                          for m, t in zip(maps, truths)])
        assert score == pytest.approx(direct)
    assert grid["mean_ap"].max() == pytest.approx(best["score"])
    assert grid.loc[grid["chosen"], "setting"].item() == best["setting"]
    assert grid.loc[grid["baseline"], "mean_ap"].item() == pytest.approx(per_image["ap_baseline"].mean())
    assert best["has_boundary_class"] is True


# --------------------------------------------------------------------------- test maps, table


def test_instance_maps_and_submission_round_trip(tmp_path):
    shapes = {"t1": (20, 24), "t2": (18, 18), "t3": (24, 20)}
    truths = {"t1": _disc_labels((20, 24), [(5, 5), (12, 15), (8, 12)], 3.5),
              "t2": np.zeros((18, 18), np.int32),
              "t3": _disc_labels((24, 20), [(6, 6), (6, 11.5)], 3)}  # two touching discs
    pd.DataFrame([{"image_id": k, "height": h, "width": w} for k, (h, w) in shapes.items()]).to_csv(
        tmp_path / "test.csv", index=False)
    probs = []
    for truth in truths.values():
        fg = np.asarray(Image.fromarray((truth > 0).astype(np.float32)).resize((16, 16), Image.BILINEAR))
        probs.append(np.stack([1 - fg, fg]))
    np.savez(tmp_path / "mean.npz", image_id=np.array(list(truths)), prob=np.stack(probs).astype(np.float16))
    best = {"settings": InstanceSettings(watershed=True, min_distance=3).to_dict(), "boundary": False}
    (tmp_path / "best.json").write_text(json.dumps(best))
    table = stages.instance_maps_stage([tmp_path / "mean.npz"], tmp_path / "test.csv", tmp_path / "best.json",
                                       TWO_CLASSES, tmp_path / "maps", tmp_path / "submission.csv")
    written = pd.read_csv(tmp_path / "submission.csv", keep_default_na=False)
    assert list(written.columns) == ["ImageId", "EncodedPixels"]
    pd.testing.assert_frame_equal(written, table)
    decoded = decode_submission(written, shapes)
    for image_id, shape in shapes.items():
        label = np.asarray(Image.open(tmp_path / "maps" / f"{image_id}.png"))
        assert label.dtype == np.uint16 and label.shape == shape
        np.testing.assert_array_equal(decoded[image_id], label)
    empty = written[written["ImageId"] == "t2"]
    assert len(empty) == 1 and empty["EncodedPixels"].item() == ""
    assert (written["ImageId"] == "t1").sum() == 3
    # a submission whose runs overlap is refused naming both rows
    bad = pd.concat([written, written[written["ImageId"] == "t1"].head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="overlap"):
        decode_submission(bad, shapes)


def test_instance_table_has_means_and_group_cis(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("unet", "main"):
        frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(12)], "subject": [f"s{k % 4}" for k in range(12)]})
        for metric in stages.TABLE_METRICS:
            frame[metric] = rng.uniform(0, 1, 12)
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    table = stages.instance_table_stage(paths, {"unet": "model", "main": "ensemble"}, tmp_path / "t.csv",
                                        tmp_path / "t.md", n_boot=200, seed=0)
    assert list(table["name"]) == ["unet", "main"] and (table["n_groups"] == 4).all()
    for name, path in paths.items():
        frame = pd.read_csv(path)
        row = table.set_index("name").loc[name]
        for metric in stages.TABLE_METRICS:
            assert row[metric] == pytest.approx(frame[metric].mean())
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    assert "AP cross-fitted" in (tmp_path / "t.md").read_text()


# --------------------------------------------------------------------------- figures


def test_outlines_by_hand():
    labels = np.array([[1, 1, 1, 0],
                       [1, 1, 1, 2],
                       [1, 1, 1, 2]])
    expected = np.array([[1, 1, 1, 0],
                         [1, 0, 1, 1],
                         [1, 1, 1, 1]], dtype=bool)  # the image edge outlines too
    np.testing.assert_array_equal(instance_figures.outlines(labels), expected)


def test_figures_have_their_labels_and_save(tmp_path):
    train, folds, truths, oofs = _fake_inputs(tmp_path, n_classes=3, seed=2)
    grid, best, per_image = _run_tune(tmp_path, oofs, THREE_CLASSES)
    fig = instance_figures.tuning_surface_figure(grid, title="unet")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["components", "watershed d=3", "boundary seeds"]
    assert "unet" in fig._suptitle.get_text() and "chosen" in fig._suptitle.get_text()
    assert fig.axes[0].get_ylabel() == "foreground threshold"
    save(fig, [tmp_path / "tuning.png"])

    curves = stages.ap_curves({"unet": per_image, "main": per_image.assign(ap_50=1.0)})
    assert len(curves) == 20 and curves["iou"].min() == 0.5 and curves["iou"].max() == 0.95
    fig = instance_figures.ap_vs_iou_figure(curves)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "IoU threshold"
    assert [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()] == ["unet", "main"]
    save(fig, [tmp_path / "ap.png"])

    ids = stages.pick_qualitative(per_image, 3)
    assert len(ids) == 3 and ids[0] == per_image.sort_values("ap", ascending=False)["image_id"].iloc[0]
    images = [np.full(t.shape + (3,), 60, np.uint8) for t in truths[:2]]
    fig = instance_figures.qualitative_figure(images, truths[:2], [np.zeros_like(t) for t in truths[:2]],
                                              ["im0", "im1"], [0.5, 0.0], title="q")
    assert len(fig.axes) == 6 and fig.axes[2].get_title() == "predicted: 0, AP 0.500"
    save(fig, [tmp_path / "q.png"])  # PDFs: the stage test below
    for name in ("tuning", "ap", "q"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="missing column"):
        instance_figures.tuning_surface_figure(grid.drop(columns="split"))


def test_figure_stage_writes_every_output(tmp_path):
    train, folds, truths, oofs = _fake_inputs(tmp_path, n_classes=3, seed=3)
    _run_tune(tmp_path, oofs, THREE_CLASSES)
    # the figure stage reads raw images from the manifest's image column
    images = []
    for row in train.itertuples():
        path = tmp_path / f"{row.image_id}_image.png"
        Image.fromarray(np.full((row.height, row.width, 3), 80, np.uint8)).save(path)
        images.append(str(path))
    train.assign(image=images).to_csv(tmp_path / "train.csv", index=False)
    figs = tmp_path / "figs"
    stages.tuning_figure_stage(tmp_path / "grid.csv", "main", [figs / "surface.png", figs / "surface.pdf"])
    # the decision (no TTA candidate here: the fake OOF files hold no prob_tta), then its panel
    job = SimpleNamespace(
        input=SimpleNamespace(per_image=tmp_path / "per_image.csv", best=tmp_path / "best.json"),
        output=SimpleNamespace(json=tmp_path / "decision.json", decisions=tmp_path / "decisions.csv",
                               per_image=tmp_path / "decision_per_image.csv"),
        params=SimpleNamespace(members=["a", "b"], settings={"candidates": [], "n_boot": 50, "seed": 0}))
    stages.TASK.postprocess(job)
    decision = json.loads((tmp_path / "decision.json").read_text())
    tuned = pd.read_csv(tmp_path / "per_image.csv")
    assert decision["pipeline"]["tta"] is False and decision["decisions"] == []
    assert decision["tuned_score"] == pytest.approx(tuned["ap"].mean())
    assert decision["cross_fitted_score"] == pytest.approx(tuned["ap_cross_fitted"].mean())
    stages.qualitative_stage(tmp_path / "decision_per_image.csv", tmp_path / "decision.json", oofs["a"],
                             tmp_path / "train.csv", THREE_CLASSES, "a", [figs / "panel.png", figs / "panel.pdf"])
    outputs = {(kind, ext): figs / f"{kind}.{ext}" for kind in ("surface", "panel") for ext in ("png", "pdf")}
    assert all(path.stat().st_size > 1000 for path in outputs.values())


def test_instance_labels_of_the_sheet_match_the_importer(tmp_path):
    a, b, c = _dsb_folder(tmp_path / "raw")
    out = tmp_path / "out"
    sheet = nuclei_data.nuclei_sheet_stage(tmp_path / "raw", group="size", boundary=True, sheet_tsv=out / "sheet.tsv",
                                      labels_dir=out / "labels", targets_dir=out / "targets",
                                      images_dir=out / "images")
    masks = sorted((tmp_path / "raw/stage1_train/img2/masks").iterdir())
    expected = instance_labels(masks, (5, 5))
    got = nuclei_data.read_instance_map(sheet.set_index("image_id").loc["img2", "instances"])
    np.testing.assert_array_equal(got, expected)
